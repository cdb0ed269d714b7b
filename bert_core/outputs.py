"""Output classes of every BERT head, defined once for all backends.

A ``ModelOutput`` is a dataclass and an ``OrderedDict`` of its non-None fields, as in HF transformers:
``out.logits``, ``out["logits"]``, ``out[0]`` (the first non-None field), ``out.to_tuple()``, ``out.keys()``.
Fields hold whatever arrays the backend returns (torch.Tensor, tf.Tensor, jax.Array, numpy).

Being a Mapping, an output passes through ``tf.nest`` (``tf.function``, Keras ``predict``) unchanged. PyTorch
(``torch.compile`` / ``torch.export``) and JAX (``jax.jit`` / ``nnx.jit``) need the classes registered as pytree
nodes: :func:`register_torch_pytree_nodes` and :func:`register_jax_pytree_nodes` do it, importing the framework
only when called (each backend calls its own at import).
"""

from __future__ import annotations

import types
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any, Optional, Tuple


class ModelOutput(OrderedDict):
    """Base class: a dataclass whose non-None fields are also its dict items, in field order."""

    def __post_init__(self) -> None:
        class_fields = fields(self)
        if not class_fields:
            raise TypeError(f"{type(self).__name__} has no fields")
        first = getattr(self, class_fields[0].name)
        others_none = all(getattr(self, f.name) is None for f in class_fields[1:])
        pairs = _as_key_value_pairs(first, {f.name for f in class_fields}) if others_none else None
        if pairs is not None:
            # Rebuilt from (key, value) pairs, as tf.nest and dict(...) do with a Mapping.
            setattr(self, class_fields[0].name, None)
            for key, value in pairs:
                setattr(self, key, value)
        # otherwise the dataclass __init__ already filled the dict through __setattr__

    # dict items and attributes stay in sync
    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in self.__dataclass_fields__:
            if value is None:
                if OrderedDict.__contains__(self, name):
                    OrderedDict.__delitem__(self, name)
            else:
                self._set_in_field_order(name, value)

    def _set_in_field_order(self, name: str, value: Any) -> None:
        OrderedDict.__setitem__(self, name, value)
        order = [f.name for f in fields(self)]
        for key in sorted(list(OrderedDict.keys(self)), key=order.index):
            self.move_to_end(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.__dataclass_fields__:
            raise KeyError(f"{type(self).__name__} has no field {key!r}; fields are {[f.name for f in fields(self)]}")
        setattr(self, key, value)

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"cannot delete {key!r} from {type(self).__name__}; set it to None instead")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return OrderedDict.__getitem__(self, key)
        return self.to_tuple()[key]

    def setdefault(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"setdefault is not supported on {type(self).__name__}")

    def pop(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"pop is not supported on {type(self).__name__}")

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def to_tuple(self) -> Tuple[Any, ...]:
        """The non-None fields in field order (what ``return_dict=False`` returns)."""
        return tuple(OrderedDict.__getitem__(self, k) for k in OrderedDict.keys(self))

    def __reduce__(self):  # pickle/copy through the dataclass fields, not the dict
        return (_rebuild, (type(self), {f.name: getattr(self, f.name) for f in fields(self)}))

    def __eq__(self, other: object) -> bool:
        return OrderedDict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


def _rebuild(cls, values):
    return cls(**values)


def _as_key_value_pairs(value: Any, names: set) -> Optional[list]:
    """Return ``value`` as a list of (field, value) pairs if it is a mapping or an iterator of such pairs."""
    if isinstance(value, dict) and not isinstance(value, ModelOutput):
        if value and all(isinstance(k, str) and k in names for k in value):
            return list(value.items())
        return None
    if isinstance(value, (types.GeneratorType, map, zip)) or (
        hasattr(value, "__next__") and not hasattr(value, "shape")
    ):
        items = list(value)
        if all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and p[0] in names for p in items):
            return items
        raise TypeError(f"cannot build an output from the iterator items {items!r}")
    return None


@dataclass(eq=False)
class BaseModelOutput(ModelOutput):
    """Encoder output without pooling.

    last_hidden_state: float (batch, seq, hidden). hidden_states: tuple of num_layers+1 such arrays.
    attentions: tuple of num_layers float (batch, heads, seq, seq).
    """

    last_hidden_state: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(eq=False)
class BaseModelOutputWithPastAndCrossAttentions(ModelOutput):
    """Encoder output in decoder mode.

    past_key_values: tuple per layer of (self_k, self_v[, cross_k, cross_v]), each float (batch, heads, seq, head_dim).
    cross_attentions: tuple per layer of float (batch, heads, seq, enc_seq).
    """

    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass(eq=False)
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    """BertModel output. pooler_output: float (batch, hidden), tanh(dense(first token))."""

    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: Any = None
    past_key_values: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass(eq=False)
class BertForPreTrainingOutput(ModelOutput):
    """prediction_logits: float (batch, seq, vocab). seq_relationship_logits: float (batch, 2). loss: scalar MLM+NSP."""

    loss: Any = None
    prediction_logits: Any = None
    seq_relationship_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(eq=False)
class CausalLMOutputWithCrossAttentions(ModelOutput):
    """logits: float (batch, seq, vocab); loss: next-token cross-entropy (labels shifted by one)."""

    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass(eq=False)
class MaskedLMOutput(ModelOutput):
    """logits: float (batch, seq, vocab); loss: cross-entropy over labels != -100."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(eq=False)
class NextSentencePredictorOutput(ModelOutput):
    """logits: float (batch, 2); index 0 = "B follows A"."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(eq=False)
class SequenceClassifierOutput(ModelOutput):
    """logits: float (batch, num_labels)."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(eq=False)
class MultipleChoiceModelOutput(ModelOutput):
    """logits: float (batch, num_choices)."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(eq=False)
class TokenClassifierOutput(ModelOutput):
    """logits: float (batch, seq, num_labels)."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(eq=False)
class QuestionAnsweringModelOutput(ModelOutput):
    """start_logits, end_logits: float (batch, seq); loss: mean of start and end cross-entropies."""

    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


ALL_OUTPUT_CLASSES = (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    BertForPreTrainingOutput,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    NextSentencePredictorOutput,
    SequenceClassifierOutput,
    MultipleChoiceModelOutput,
    TokenClassifierOutput,
    QuestionAnsweringModelOutput,
)

_registered: set = set()


def register_torch_pytree_nodes() -> None:
    """Register every output class with ``torch.utils._pytree`` (for torch.compile / torch.export). Idempotent."""
    if "torch" in _registered:
        return
    import torch.utils._pytree as pytree  # imported only when a torch backend asks

    for cls in ALL_OUTPUT_CLASSES:

        def flatten(out, _cls=cls):
            return list(out.values()), list(out.keys())

        def unflatten(values, keys, _cls=cls):
            return _cls(**dict(zip(keys, values)))

        def flatten_with_keys(out, _cls=cls):
            return [(pytree.MappingKey(k), v) for k, v in out.items()], list(out.keys())

        pytree.register_pytree_node(
            cls,
            flatten,
            unflatten,
            serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
            flatten_with_keys_fn=flatten_with_keys,
        )
    _registered.add("torch")


def register_jax_pytree_nodes() -> None:
    """Register every output class with ``jax.tree_util`` (for jax.jit / nnx.jit / vmap / grad). Idempotent.

    All fields are children (None is an empty pytree), so the structure is static under jit.
    """
    if "jax" in _registered:
        return
    import jax  # imported only when a flax backend asks

    for cls in ALL_OUTPUT_CLASSES:
        names = tuple(f.name for f in fields(cls))

        def flatten_with_keys(out, _names=names):
            return [(jax.tree_util.GetAttrKey(n), getattr(out, n)) for n in _names], None

        def flatten(out, _names=names):
            return [getattr(out, n) for n in _names], None

        def unflatten(_aux, children, _cls=cls, _names=names):
            return _cls(**dict(zip(_names, children)))

        jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    _registered.add("jax")
