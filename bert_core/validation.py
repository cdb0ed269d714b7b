"""Input checks every backend runs before computing (eagerly, outside any trace), with one wording for all.

Backends pass plain Python values (shapes as tuples, min/max ids as ints); nothing here imports a framework.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from .config import BertConfig

Shape = Tuple[int, ...]


def check_exclusive_inputs(has_input_ids: bool, has_inputs_embeds: bool) -> None:
    """Exactly one of input_ids / inputs_embeds must be given."""
    if has_input_ids and has_inputs_embeds:
        raise ValueError("You cannot specify both input_ids and inputs_embeds at the same time; pass one of them")
    if not has_input_ids and not has_inputs_embeds:
        raise ValueError("You have to specify either input_ids or inputs_embeds")


def check_rank(name: str, shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        raise ValueError(f"{name} must have rank {rank} ({what}), got shape {tuple(shape)}")


def check_token_ids(min_id: int, max_id: int, vocab_size: int, name: str = "input_ids") -> None:
    """Ids must lie in [0, vocab_size): name the offending id and the size instead of a kernel-level crash."""
    if max_id >= vocab_size:
        raise ValueError(f"{name} contains id {max_id}, out of range for vocab_size={vocab_size} (valid: 0..{vocab_size - 1})")
    if min_id < 0:
        raise ValueError(f"{name} contains negative id {min_id}; valid ids are 0..{vocab_size - 1}")


def check_token_type_ids(min_id: int, max_id: int, type_vocab_size: int) -> None:
    if max_id >= type_vocab_size or min_id < 0:
        bad = max_id if max_id >= type_vocab_size else min_id
        raise ValueError(
            f"token_type_ids contains {bad}, out of range for type_vocab_size={type_vocab_size} "
            f"(valid: 0..{type_vocab_size - 1})"
        )


def check_position_ids(min_id: int, max_id: int, max_position_embeddings: int) -> None:
    if max_id >= max_position_embeddings or min_id < 0:
        bad = max_id if max_id >= max_position_embeddings else min_id
        raise ValueError(
            f"position_ids contains {bad}, out of range for max_position_embeddings={max_position_embeddings}"
        )


def check_sequence_length(seq_len: int, past_length: int, max_position_embeddings: int) -> None:
    """past_length + seq_len must fit the position table."""
    total = seq_len + past_length
    if total > max_position_embeddings:
        extra = f" ({past_length} cached + {seq_len} new)" if past_length else ""
        raise ValueError(
            f"sequence length {total}{extra} exceeds max_position_embeddings={max_position_embeddings}; "
            f"truncate the input (e.g. tokenizer(..., truncation=True, max_length={max_position_embeddings}))"
        )


def check_same_shape(name: str, shape: Shape, ref_name: str, ref_shape: Shape) -> None:
    if tuple(shape) != tuple(ref_shape):
        raise ValueError(f"{name} has shape {tuple(shape)} but {ref_name} has shape {tuple(ref_shape)}; they must match")


def check_attention_mask(shape: Shape, batch: int, key_len: int) -> None:
    """A 2-D padding mask must be (batch, past_length + seq_len)."""
    if len(shape) == 2 and tuple(shape) != (batch, key_len):
        raise ValueError(
            f"attention_mask has shape {tuple(shape)} but the input needs ({batch}, {key_len}) "
            f"(batch, past_length + seq_len)"
        )
    if len(shape) not in (2, 3, 4):
        raise ValueError(f"attention_mask must have rank 2, 3 or 4, got shape {tuple(shape)}")


def check_head_mask(shape: Shape, num_layers: int, num_heads: int) -> None:
    """head_mask: (num_heads,) or (num_layers, num_heads)."""
    if tuple(shape) not in ((num_heads,), (num_layers, num_heads)):
        raise ValueError(
            f"head_mask has shape {tuple(shape)}; expected ({num_heads},) or ({num_layers}, {num_heads}) "
            f"(num_layers, num_heads)"
        )


def check_decoder_inputs(config: BertConfig, has_encoder_hidden_states: bool, has_past: bool) -> None:
    if has_encoder_hidden_states and not config.add_cross_attention:
        raise ValueError("encoder_hidden_states were given but config.add_cross_attention is False")
    if has_past and not config.is_decoder:
        raise ValueError("past_key_values were given but config.is_decoder is False (the cache is for decoders)")


def resolve_problem_type(config: BertConfig, labels_are_integer: bool) -> str:
    """Sequence classification loss as HF picks it: config.problem_type, else from num_labels and label dtype."""
    if config.problem_type is not None:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    if labels_are_integer:
        return "single_label_classification"
    return "multi_label_classification"


def check_multiple_choice_shape(name: str, shape: Optional[Sequence[int]], rank: int = 3) -> None:
    if shape is not None and len(shape) != rank:
        raise ValueError(
            f"{name} for multiple choice must be (batch, num_choices, seq_len){'' if rank == 3 else ', hidden'}, "
            f"got shape {tuple(shape)}"
        )


def check_qa_num_labels(config: BertConfig) -> None:
    """The QA head splits its logits into start and end: it needs exactly two labels."""
    if config.num_labels != 2:
        raise ValueError(
            f"BertForQuestionAnswering needs config.num_labels=2 (start and end logits), got num_labels={config.num_labels}"
        )
