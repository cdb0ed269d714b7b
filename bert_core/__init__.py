"""Framework-free spec of the multi-framework BERT library: config, outputs, weight table, checkpoint I/O, init.

Importing this package loads no deep-learning framework.
"""

from .batching import plan_batches, run_bucketed
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_head_weights,
    read_state_dict,
    save_pretrained,
    save_state_dict,
)
from .config import BertConfig, tiny_config
from .data import IGNORE_INDEX, DataCollatorForMLM, build_nsp_pairs, pad_examples
from .init import complete_weights, init_weights
from .outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    BertForPreTrainingOutput,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from .tokenization import AddedToken, BasicTokenizer, BatchEncoding, BertTokenizer, WordpieceTokenizer
from .tokenization_fast import BertTokenizerFast
from .weights import HEADS, LoadingInfo, WeightSpec, expected_weights, stored_weights

__all__ = [
    "plan_batches",
    "run_bucketed",
    "CheckpointError",
    "load_checkpoint",
    "load_head_weights",
    "read_state_dict",
    "save_pretrained",
    "save_state_dict",
    "BertConfig",
    "tiny_config",
    "IGNORE_INDEX",
    "DataCollatorForMLM",
    "build_nsp_pairs",
    "pad_examples",
    "complete_weights",
    "init_weights",
    "BaseModelOutput",
    "BaseModelOutputWithPastAndCrossAttentions",
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "BertForPreTrainingOutput",
    "CausalLMOutputWithCrossAttentions",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "NextSentencePredictorOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
    "AddedToken",
    "BasicTokenizer",
    "BatchEncoding",
    "BertTokenizer",
    "WordpieceTokenizer",
    "BertTokenizerFast",
    "HEADS",
    "LoadingInfo",
    "WeightSpec",
    "expected_weights",
    "stored_weights",
]

__version__ = "0.1.0"
