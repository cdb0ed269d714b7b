"""BERT on Flax NNX, numerically equal to HF transformers 4.57 BERT. Imports neither torch nor tensorflow."""

from bert_core.backends import require_backend

require_backend("flax")  # a clear ImportError naming the extra, before the framework import fails


from .modeling import (
    ALL_MODEL_CLASSES,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertKVCache,
    BertLMHeadModel,
    BertModel,
    BertPreTrainedModel,
    canonical_grads,
)

# Names of HF transformers' Flax classes, for users coming from FlaxBert*.
FlaxBertModel = BertModel
FlaxBertForPreTraining = BertForPreTraining
FlaxBertForCausalLM = BertLMHeadModel
FlaxBertForMaskedLM = BertForMaskedLM
FlaxBertForNextSentencePrediction = BertForNextSentencePrediction
FlaxBertForSequenceClassification = BertForSequenceClassification
FlaxBertForMultipleChoice = BertForMultipleChoice
FlaxBertForTokenClassification = BertForTokenClassification
FlaxBertForQuestionAnswering = BertForQuestionAnswering

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
    "BertKVCache",
    "BertPreTrainedModel",
    "canonical_grads",
    "ALL_MODEL_CLASSES",
    "FlaxBertModel",
    "FlaxBertForPreTraining",
    "FlaxBertForCausalLM",
    "FlaxBertForMaskedLM",
    "FlaxBertForNextSentencePrediction",
    "FlaxBertForSequenceClassification",
    "FlaxBertForMultipleChoice",
    "FlaxBertForTokenClassification",
    "FlaxBertForQuestionAnswering",
]
