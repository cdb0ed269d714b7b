"""Input checks every backend runs before computing (eagerly, outside any trace), with one wording for all.

Backends pass plain Python values (shapes as tuples, min/max ids as ints); nothing here imports a framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from .config import BertConfig
from .data import IGNORE_INDEX

Shape = Tuple[int, ...]


@dataclass(frozen=True)
class ArrayInfo:
    """What the checks need to know of one input array, filled in by each backend (``_array_info``).

    shape: the dims, ``None`` for a dim unknown while tracing. kind: numpy dtype kind ("i", "u", "b", "f", "c"),
    "" when unknown. low / high: min and max of an integer array's values when they are concrete (eager, non-empty),
    else None (only the static checks then run).
    """

    shape: Tuple[Optional[int], ...]
    kind: str = ""
    low: Optional[int] = None
    high: Optional[int] = None

    @property
    def rank(self) -> int:
        return len(self.shape)


def _known(*dims: Optional[int]) -> bool:
    return all(d is not None for d in dims)


def _dims_match(shape: Sequence[Optional[int]], expected: Sequence[Optional[int]]) -> bool:
    """Equal where both dims are known (a traced None matches anything)."""
    return len(shape) == len(expected) and all(a is None or b is None or a == b for a, b in zip(shape, expected))


def _check_integer(name: str, info: ArrayInfo) -> None:
    if info.kind and info.kind not in "iu":
        what = {"f": "floating-point", "b": "boolean", "c": "complex"}.get(info.kind, f"dtype kind {info.kind!r}")
        raise TypeError(f"{name} must hold integer ids, got a {what} array; cast it to an integer dtype")


def check_inputs(
    config: BertConfig,
    *,
    input_ids: Optional[ArrayInfo] = None,
    attention_mask: Optional[ArrayInfo] = None,
    token_type_ids: Optional[ArrayInfo] = None,
    position_ids: Optional[ArrayInfo] = None,
    head_mask: Optional[ArrayInfo] = None,
    inputs_embeds: Optional[ArrayInfo] = None,
    encoder_hidden_states: Optional[ArrayInfo] = None,
    encoder_attention_mask: Optional[ArrayInfo] = None,
    has_cache: bool = False,
    past_length: Optional[int] = 0,
    key_length: Optional[int] = None,
) -> None:
    """Every check of a ``BertModel`` call, for all backends: one place, one wording.

    Args:
        config: the model's config.
        input_ids ... encoder_attention_mask: :class:`ArrayInfo` of each given input, None when not given.
        has_cache: ``past_key_values`` were given. past_length: tokens already cached (None: unknown while tracing).
        key_length: keys the attention mask must cover; default past_length + seq_len (a fixed-size cache passes its
            buffer length).

    Raises:
        ValueError (bad shapes, ranges, combinations) or TypeError (non-integer ids), naming the argument, the value
        and what was expected.
    """
    check_exclusive_inputs(input_ids is not None, inputs_embeds is not None)
    check_decoder_inputs(config, encoder_hidden_states is not None, has_cache)
    if input_ids is not None:
        check_rank("input_ids", input_ids.shape, 2, "batch, seq_len")
        _check_integer("input_ids", input_ids)
        batch, seq_len = input_ids.shape
        ref_name = "input_ids"
        if input_ids.low is not None:
            check_token_ids(input_ids.low, input_ids.high, config.vocab_size)
    else:
        check_rank("inputs_embeds", inputs_embeds.shape, 3, "batch, seq_len, hidden_size")
        batch, seq_len, hidden = inputs_embeds.shape
        ref_name = "inputs_embeds[..., 0]"
        if hidden is not None and hidden != config.hidden_size:
            raise ValueError(
                f"inputs_embeds has hidden size {hidden} (shape {tuple(inputs_embeds.shape)}) but "
                f"config.hidden_size={config.hidden_size}"
            )
    shape = (batch, seq_len)
    if _known(seq_len, past_length):
        check_sequence_length(seq_len, past_length, config.max_position_embeddings)
    if token_type_ids is not None:
        _check_shape("token_type_ids", token_type_ids.shape, [shape], f"{ref_name} {tuple(shape)}")
        _check_integer("token_type_ids", token_type_ids)
        if token_type_ids.low is not None:
            check_token_type_ids(token_type_ids.low, token_type_ids.high, config.type_vocab_size)
    if position_ids is not None:
        _check_shape(
            "position_ids",
            position_ids.shape,
            [shape, (1, seq_len)],
            f"(batch, seq_len) = {tuple(shape)} or (1, seq_len)",
        )
        _check_integer("position_ids", position_ids)
        if position_ids.low is not None and config.position_embedding_type == "absolute":
            check_position_ids(position_ids.low, position_ids.high, config.max_position_embeddings)
    if key_length is None and _known(seq_len, past_length):
        key_length = seq_len + past_length
    if attention_mask is not None:
        check_attention_mask(attention_mask.shape, batch, key_length, seq_len, config.num_attention_heads)
    if head_mask is not None:
        check_head_mask(head_mask.shape, config.num_hidden_layers, config.num_attention_heads)
    if encoder_hidden_states is not None:
        check_rank("encoder_hidden_states", encoder_hidden_states.shape, 3, "batch, encoder_seq_len, hidden_size")
        enc_batch, enc_len, enc_hidden = encoder_hidden_states.shape
        _check_shape(
            "encoder_hidden_states",
            encoder_hidden_states.shape,
            [(batch, enc_len, config.hidden_size)],
            f"(batch={batch}, encoder_seq_len, hidden_size={config.hidden_size})",
        )
        if encoder_attention_mask is not None:
            check_attention_mask(
                encoder_attention_mask.shape,
                batch,
                enc_len,
                seq_len,
                config.num_attention_heads,
                name="encoder_attention_mask",
            )


def _check_shape(
    name: str, shape: Sequence[Optional[int]], allowed: Sequence[Sequence[Optional[int]]], expected: str
) -> None:
    if not any(_dims_match(shape, a) for a in allowed):
        raise ValueError(f"{name} has shape {tuple(shape)}; expected {expected}")


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
        raise ValueError(
            f"{name} contains id {max_id}, out of range for vocab_size={vocab_size} (valid: 0..{vocab_size - 1})"
        )
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


def check_attention_mask(
    shape: Shape,
    batch: Optional[int],
    key_len: Optional[int],
    seq_len: Optional[int] = None,
    num_heads: Optional[int] = None,
    name: str = "attention_mask",
) -> None:
    """A mask is (batch, keys), (batch, seq_len, keys) or (batch, 1 | num_heads, seq_len, keys), keys =
    past_length + seq_len (dims unknown while tracing are not compared)."""
    if len(shape) not in (2, 3, 4):
        raise ValueError(f"{name} must have rank 2, 3 or 4, got shape {tuple(shape)}")
    if len(shape) == 2:
        allowed, expected = [(batch, key_len)], f"({batch}, {key_len}) (batch, past_length + seq_len)"
    elif len(shape) == 3:
        allowed, expected = [(batch, seq_len, key_len)], f"({batch}, {seq_len}, {key_len}) (batch, seq_len, keys)"
    else:
        allowed = [(batch, 1, seq_len, key_len), (batch, num_heads, seq_len, key_len)]
        expected = f"({batch}, 1 or {num_heads}, {seq_len}, {key_len}) (batch, heads, seq_len, keys)"
    if not any(_dims_match(shape, a) for a in allowed):
        raise ValueError(f"{name} has shape {tuple(shape)} but the input needs {expected}")


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


def check_generate_args(
    config: BertConfig,
    input_ids: ArrayInfo,
    attention_mask: Optional[ArrayInfo],
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    top_k: Optional[int],
    top_p: Optional[float],
    eos_token_id: Optional[int],
    pad_token_id: Optional[int],
) -> None:
    """The arguments of ``BertLMHeadModel.generate``, checked the same way in every backend."""
    if not config.is_decoder:
        raise ValueError("generate needs config.is_decoder=True (a causal mask); load the model with is_decoder=True")
    check_rank("input_ids", input_ids.shape, 2, "batch, prompt_len")
    _check_integer("input_ids", input_ids)
    if input_ids.shape[1] == 0:
        raise ValueError(
            f"generate needs a prompt of at least one token; got input_ids of shape {tuple(input_ids.shape)}"
        )
    if input_ids.low is not None:
        check_token_ids(input_ids.low, input_ids.high, config.vocab_size)
    if attention_mask is not None:
        _check_shape(
            "attention_mask", attention_mask.shape, [input_ids.shape], f"input_ids' shape {tuple(input_ids.shape)}"
        )
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    check_sequence_length(input_ids.shape[1] + max_new_tokens, 0, config.max_position_embeddings)
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")
    for name, value in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < config.vocab_size
        ):
            raise ValueError(f"{name} must be None or an id in 0..{config.vocab_size - 1}, got {value!r}")
    if eos_token_id is not None and pad_token_id is None and config.pad_token_id is None:
        raise ValueError("eos_token_id needs a pad_token_id (argument or config.pad_token_id) for finished rows")


#: head -> label name -> (rank relative to the input: "tokens" (B, S) | "rows" (B,), what the values index)
_LABELS = {
    "BertForPreTraining": {"labels": ("tokens", "vocab_size"), "next_sentence_label": ("rows", 2)},
    "BertLMHeadModel": {"labels": ("tokens", "vocab_size")},
    "BertForMaskedLM": {"labels": ("tokens", "vocab_size")},
    "BertForNextSentencePrediction": {"labels": ("rows", 2)},
    "BertForMultipleChoice": {"labels": ("rows", "num_choices")},
    "BertForTokenClassification": {"labels": ("tokens", "num_labels")},
    "BertForQuestionAnswering": {"start_positions": ("positions", None), "end_positions": ("positions", None)},
}


def check_labels(
    config: BertConfig,
    head: str,
    name: str,
    shape: Sequence[Optional[int]],
    kind: str,
    values=None,
    *,
    batch: Optional[int],
    seq_len: Optional[int],
    num_choices: Optional[int] = None,
) -> None:
    """The labels of a head's loss, checked host-side the same way in every backend (before any jitted step).

    Args:
        head: the head class name; name: the label argument ("labels", "next_sentence_label", "start_positions"...).
        shape, kind: the label array's shape (``None`` for traced dims) and numpy dtype kind.
        values: the labels as a numpy array when concrete (eager), else None (only shapes are checked).
        batch, seq_len: of the input ids (for multiple choice: the original batch; num_choices the choices).

    Raises:
        ValueError / TypeError naming the argument, the value or shape, and the valid range: class ids outside
        [0, n) other than -100 (a NaN loss, or -1 silently read as the last class, otherwise), wrong shapes, float
        class ids.
    """

    shape = tuple(shape)
    if head == "BertForSequenceClassification":
        problem = resolve_problem_type(config, kind in "iu" if kind else True)
        n = config.num_labels
        if problem == "single_label_classification":
            _check_label_shape(name, shape, [(batch,), (batch, 1)], f"(batch,) = ({batch},) class ids")
            _check_label_ids(name, kind, values, n, "num_labels")
        elif problem == "regression":
            allowed = [(batch,), (batch, 1)] if n == 1 else [(batch, n)]
            _check_label_shape(name, shape, allowed, f"({batch},) targets" if n == 1 else f"({batch}, {n}) targets")
        else:
            _check_label_shape(
                name,
                shape,
                [(batch, n)],
                f"({batch}, {n}) multi-hot targets for multi_label_classification (float labels with num_labels > 1); "
                "for single-label classification pass integer class ids of shape (batch,)",
            )
        return
    rule = _LABELS.get(head, {}).get(name)
    if rule is None:
        raise TypeError(f"{head} takes no {name!r}")
    layout, size = rule
    if layout == "tokens":
        _check_label_shape(name, shape, [(batch, seq_len)], f"(batch, seq_len) = ({batch}, {seq_len}) like input_ids")
    else:
        _check_label_shape(name, shape, [(batch,), (batch, 1)], f"(batch,) = ({batch},)")
    if layout == "positions":
        if kind and kind not in "iu":
            raise TypeError(f"{name} must hold integer token positions, got dtype kind {kind!r}")
        return  # HF clamps positions to [0, seq_len] and ignores seq_len
    n = {"vocab_size": config.vocab_size, "num_labels": config.num_labels, "num_choices": num_choices}.get(size, size)
    _check_label_ids(name, kind, values, n, size if isinstance(size, str) else "classes")


def _check_label_shape(name: str, shape, allowed, expected: str) -> None:
    if not any(_dims_match(shape, a) for a in allowed):
        raise ValueError(f"{name} has shape {tuple(shape)}; expected {expected}")


def _check_label_ids(name: str, kind: str, values, n: Optional[int], what: str) -> None:
    if kind and kind not in "iu":
        raise TypeError(
            f"{name} must hold integer class ids (or -100 to ignore), got a "
            f"{'floating-point' if kind == 'f' else repr(kind)} array"
        )
    if values is None or n is None:
        return
    values = np.asarray(values)
    bad = values[(values != IGNORE_INDEX) & ((values < 0) | (values >= n))]
    if bad.size:
        raise ValueError(
            f"{name} contains {int(bad.flat[0])}, out of range for {what}={n} (valid: 0..{n - 1}, or -100 to ignore)"
        )


def check_multiple_choice_inputs(
    input_ids: Optional[ArrayInfo] = None,
    attention_mask: Optional[ArrayInfo] = None,
    token_type_ids: Optional[ArrayInfo] = None,
    position_ids: Optional[ArrayInfo] = None,
    inputs_embeds: Optional[ArrayInfo] = None,
) -> int:
    """Multiple-choice inputs are (batch, num_choices, seq_len) (inputs_embeds: + hidden); returns num_choices."""
    check_exclusive_inputs(input_ids is not None, inputs_embeds is not None)
    for name, info in (
        ("input_ids", input_ids),
        ("attention_mask", attention_mask),
        ("token_type_ids", token_type_ids),
        ("position_ids", position_ids),
    ):
        check_multiple_choice_shape(name, None if info is None else info.shape)
    check_multiple_choice_shape("inputs_embeds", None if inputs_embeds is None else inputs_embeds.shape, rank=4)
    ref_name, ref = ("input_ids", input_ids) if input_ids is not None else ("inputs_embeds", inputs_embeds)
    for name, info in (
        ("attention_mask", attention_mask),
        ("token_type_ids", token_type_ids),
        ("position_ids", position_ids),
    ):
        if info is not None:
            _check_shape(
                name, info.shape, [ref.shape[:3]], f"{ref_name}'s (batch, num_choices, seq_len) {tuple(ref.shape[:3])}"
            )
    return ref.shape[1]


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
