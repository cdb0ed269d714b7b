"""Compiled inference, the framework-free part: argument checks with one wording for every backend.

``bert_torch.compile_for_inference`` (``torch.compile``, inductor with freezing) and
``bert_tf.compile_for_inference`` (``tf.function(jit_compile=True)``, XLA) take the same name and check their
arguments here, so a wrong call reads the same in both. Flax needs no such option: ``bert_flax`` runs every forward
under ``jax.jit`` already, so ``compile=True`` is accepted there and changes nothing (:data:`FLAX_NOTE`).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

from . import validation

#: what ``compile=True`` means on each backend (pipelines, ``bert serve --compile``, ``bert predict --compile``)
COMPILE_HELP = (
    "compile the model for inference: torch.compile (inductor, frozen weights) on torch, XLA "
    "(tf.function(jit_compile=True)) on tf; flax always runs under jax.jit, so it changes nothing there. "
    "The first batch of each new shape pays the compile time"
)

#: why ``compile=True`` changes nothing on flax
FLAX_NOTE = "flax runs every forward under jax.jit already; compile=True changes nothing on the flax backend"


def check_model(model: Any, model_types: Sequence[type], backend_package: str) -> None:
    """``model`` must be one of ``backend_package``'s model classes (BertModel or a head), not a class or a path.

    Raises:
        TypeError naming what was passed and what is expected.
    """
    if not isinstance(model, tuple(model_types)):
        what = f"the class {model.__name__}" if isinstance(model, type) else f"a {type(model).__name__}"
        raise TypeError(
            f"compile_for_inference(model): expected a {backend_package} model instance (BertModel or a head "
            f"such as BertForSequenceClassification), got {what}"
        )


def check_flag(name: str, value: Any) -> bool:
    """``value`` must be a bool (not 0/1 or a string): TypeError naming the argument otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"compile_for_inference: {name} must be True or False, got {value!r}")
    return value


def check_optional_flag(name: str, value: Any) -> Optional[bool]:
    """None or a bool (torch's ``dynamic``: None = decide on the second shape)."""
    if value is None:
        return None
    if not isinstance(value, bool):
        raise TypeError(f"compile_for_inference: {name} must be None, True or False, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Optional[str]]) -> Optional[str]:
    """``value`` must be one of ``choices`` (None may be among them): ValueError listing them otherwise."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"compile_for_inference: {name} must be one of {listed}, got {value!r}")
    return value


#: label arguments: a compiled model runs a call that has any of them eagerly, so their values are checked as usual
LABEL_INPUTS = ("labels", "next_sentence_label", "start_positions", "end_positions")

#: the inputs whose values a traced graph cannot check (it sees no values)
ID_INPUTS = ("input_ids", "token_type_ids", "position_ids")


def check_values(
    config: Any, ranges: Mapping[str, Tuple[int, int]], seq_len: Optional[int], past_length: int = 0
) -> None:
    """What a graph traced for any shape cannot check, made eagerly before each compiled call: the id ranges
    (``ranges``: each integer, non-empty input of :data:`ID_INPUTS` -> its (min, max)) and the sequence length
    (None: unknown, not checked). Same errors as the eager forward (``bert_core.validation``).

    Raises:
        ValueError naming the input, the offending value and the valid range.
    """
    if seq_len is not None:
        validation.check_sequence_length(seq_len, past_length, config.max_position_embeddings)
    if "input_ids" in ranges:
        validation.check_token_ids(*ranges["input_ids"], config.vocab_size)
    if "token_type_ids" in ranges:
        validation.check_token_type_ids(*ranges["token_type_ids"], config.type_vocab_size)
    if "position_ids" in ranges and config.position_embedding_type == "absolute":
        validation.check_position_ids(*ranges["position_ids"], config.max_position_embeddings)
