"""Framework-free spec of the multi-framework BERT library: config, outputs, weight table, checkpoint I/O, init.

Importing this package loads no deep-learning framework.
"""

from .config import BertConfig, tiny_config
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
from .weights import HEADS, LoadingInfo, WeightSpec, expected_weights, stored_weights
from .init import init_weights, complete_weights
from .tokenization import AddedToken, BasicTokenizer, BatchEncoding, BertTokenizer, WordpieceTokenizer
from .tokenization_fast import BertTokenizerFast
from .data import IGNORE_INDEX, DataCollatorForMLM, build_nsp_pairs, pad_examples
from .batching import plan_batches, run_bucketed
from .checkpoint import CheckpointError, load_checkpoint, load_head_weights, read_state_dict, save_pretrained, save_state_dict

__version__ = "0.1.0"
