"""PyTorch backend of the multi-framework BERT library (numerically equal to HF transformers 4.57 BERT)."""

from bert_core.backends import require_backend

require_backend("torch")  # a clear ImportError naming the extra, before the framework import fails


from bert_core.outputs import register_torch_pytree_nodes

# torch.compile / torch.export flatten our outputs; register them once, at import.
register_torch_pytree_nodes()

from .inference import compile_for_inference  # noqa: E402
from .modeling import (  # noqa: E402
    ALL_MODEL_CLASSES,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertLMHeadModel,
    BertModel,
    BertPreTrainedModel,
    canonical_grads,
)

__all__ = [
    "BertModel",
    "BertForPreTraining",
    "BertLMHeadModel",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertPreTrainedModel",
    "ALL_MODEL_CLASSES",
    "canonical_grads",
    "compile_for_inference",
]
