"""BERT on Keras 3 (TensorFlow backend): the nine HF heads, numerically equal to transformers 4.57.

``TFBert*`` aliases carry the names of transformers' (Keras 2) TF classes, so code written against them ports by
changing the import. Importing this package selects the TensorFlow Keras backend when none is chosen yet.
"""

from bert_core.backends import require_backend

require_backend("tf")  # a clear ImportError naming the extra, before the framework import fails


from .modeling import (
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

TFBertModel = BertModel
TFBertForPreTraining = BertForPreTraining
TFBertLMHeadModel = BertLMHeadModel
TFBertForMaskedLM = BertForMaskedLM
TFBertForNextSentencePrediction = BertForNextSentencePrediction
TFBertForSequenceClassification = BertForSequenceClassification
TFBertForMultipleChoice = BertForMultipleChoice
TFBertForTokenClassification = BertForTokenClassification
TFBertForQuestionAnswering = BertForQuestionAnswering

# after .modeling, whose import guard keeps TensorFlow's optional jax import out
from .inference import CompiledModel, compile_for_inference  # noqa: E402

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
    "CompiledModel",
    "TFBertModel",
    "TFBertForPreTraining",
    "TFBertLMHeadModel",
    "TFBertForMaskedLM",
    "TFBertForNextSentencePrediction",
    "TFBertForSequenceClassification",
    "TFBertForMultipleChoice",
    "TFBertForTokenClassification",
    "TFBertForQuestionAnswering",
]


def __getattr__(name):  # the tokenizer needs tensorflow-text: import it only when asked for
    if name == "TFBertTokenizer":
        from .tokenizer import TFBertTokenizer

        return TFBertTokenizer
    raise AttributeError(f"module 'bert_tf' has no attribute {name!r}")
