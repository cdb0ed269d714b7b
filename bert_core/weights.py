"""The canonical weight-name table and the per-backend maps — one data table for all backends.

Canonical names are the HF PyTorch state-dict names that checkpoints use: ``embeddings.word_embeddings.weight`` for a
bare ``BertModel``, ``bert.embeddings.word_embeddings.weight`` inside a head, ``cls.predictions.transform.dense.weight``,
``classifier.weight``, ``qa_outputs.weight``... Shapes are PyTorch's: a linear weight is ``(out_features, in_features)``.

Each backend names its modules like the canonical path (``encoder.layer.{i}.attention.self.query``) and differs only in
the leaf and layout, which :data:`BACKEND_LEAVES` states as data:

=================  ==================  ==================  ==================
kind               torch               tf (keras)          flax (nnx)
=================  ==================  ==================  ==================
linear_weight      weight (out, in)    kernel (in, out)    kernel (in, out)
linear_bias        bias                bias                bias
embedding          weight              embeddings          embedding
layernorm_weight   weight              gamma               scale
layernorm_bias     bias                beta                bias
bias               bias                bias                bias
=================  ==================  ==================  ==================
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from .backends import BACKEND_NAMES
from .config import BertConfig

HEADS = (
    "BertModel",
    "BertForPreTraining",
    "BertLMHeadModel",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
)

# Which heads keep the pooler (HF builds BertModel(add_pooling_layer=False) for the token-level heads).
_HEAD_HAS_POOLER = {
    "BertModel": True,
    "BertForPreTraining": True,
    "BertLMHeadModel": False,
    "BertForMaskedLM": False,
    "BertForNextSentencePrediction": True,
    "BertForSequenceClassification": True,
    "BertForMultipleChoice": True,
    "BertForTokenClassification": False,
    "BertForQuestionAnswering": False,
}

TIED_DECODER = "cls.predictions.decoder.weight"
TIED_SOURCE = "bert.embeddings.word_embeddings.weight"

# Non-persistent buffers some checkpoints carry; never weights.
OPTIONAL_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


@dataclass(frozen=True)
class WeightSpec:
    """One canonical tensor: name, PyTorch shape, kind (see module docstring), dtype; ``tied_to`` for tied weights."""

    name: str
    shape: Tuple[int, ...]
    kind: str
    dtype: str = "float32"
    tied_to: Optional[str] = None
    optional: bool = False

    @property
    def module_path(self) -> str:
        return self.name.rsplit(".", 1)[0]


def head_has_pooler(head: str, add_pooling_layer: Optional[bool] = None) -> bool:
    _check_head(head)
    return _HEAD_HAS_POOLER[head] if add_pooling_layer is None else bool(add_pooling_layer)


def _check_head(head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")


def _linear(out: Dict[str, WeightSpec], path: str, n_out: int, n_in: int) -> None:
    out[f"{path}.weight"] = WeightSpec(f"{path}.weight", (n_out, n_in), "linear_weight")
    out[f"{path}.bias"] = WeightSpec(f"{path}.bias", (n_out,), "linear_bias")


def _layernorm(out: Dict[str, WeightSpec], path: str, n: int) -> None:
    out[f"{path}.weight"] = WeightSpec(f"{path}.weight", (n,), "layernorm_weight")
    out[f"{path}.bias"] = WeightSpec(f"{path}.bias", (n,), "layernorm_bias")


def _embedding(out: Dict[str, WeightSpec], path: str, n: int, dim: int) -> None:
    out[f"{path}.weight"] = WeightSpec(f"{path}.weight", (n, dim), "embedding")


def _attention(out: Dict[str, WeightSpec], path: str, config: BertConfig, relative: bool = True) -> None:
    h = config.hidden_size
    for proj in ("query", "key", "value"):
        _linear(out, f"{path}.self.{proj}", h, h)
    if relative and config.position_embedding_type in ("relative_key", "relative_key_query"):
        _embedding(out, f"{path}.self.distance_embedding", 2 * config.max_position_embeddings - 1, config.head_dim)
    _linear(out, f"{path}.output.dense", h, h)
    _layernorm(out, f"{path}.output.LayerNorm", h)


def backbone_weights(
    config: BertConfig, prefix: str = "", add_pooling_layer: bool = True
) -> "OrderedDict[str, WeightSpec]":
    """Every tensor of a BertModel (embeddings, encoder, optional pooler), names prefixed by ``prefix``."""
    h, i = config.hidden_size, config.intermediate_size
    out: "OrderedDict[str, WeightSpec]" = OrderedDict()
    _embedding(out, "embeddings.word_embeddings", config.vocab_size, h)
    _embedding(out, "embeddings.position_embeddings", config.max_position_embeddings, h)
    _embedding(out, "embeddings.token_type_embeddings", config.type_vocab_size, h)
    _layernorm(out, "embeddings.LayerNorm", h)
    for n in range(config.num_hidden_layers):
        layer = f"encoder.layer.{n}"
        _attention(out, f"{layer}.attention", config)
        if config.add_cross_attention:
            # HF builds cross-attention with position_embedding_type="absolute": it has no distance_embedding
            _attention(out, f"{layer}.crossattention", config, relative=False)
        _linear(out, f"{layer}.intermediate.dense", i, h)
        _linear(out, f"{layer}.output.dense", h, i)
        _layernorm(out, f"{layer}.output.LayerNorm", h)
    if add_pooling_layer:
        _linear(out, "pooler.dense", h, h)
    if not prefix:
        return out
    return OrderedDict((prefix + k, WeightSpec(prefix + k, v.shape, v.kind)) for k, v in out.items())


def expected_weights(
    config: BertConfig, head: str = "BertModel", add_pooling_layer: Optional[bool] = None
) -> "OrderedDict[str, WeightSpec]":
    """The canonical table of ``head`` for ``config``: every expected name with its shape and kind, in order.

    The tied MLM decoder (``cls.predictions.decoder.weight``) is listed with ``tied_to`` set when
    ``config.tie_word_embeddings`` is true; it is then not stored in checkpoints.
    """
    pool = head_has_pooler(head, add_pooling_layer)
    if head == "BertModel":
        return backbone_weights(config, "", pool)
    out = backbone_weights(config, "bert.", pool)
    h = config.hidden_size
    if head in ("BertForPreTraining", "BertLMHeadModel", "BertForMaskedLM"):
        _linear(out, "cls.predictions.transform.dense", h, h)
        _layernorm(out, "cls.predictions.transform.LayerNorm", h)
        tied = TIED_SOURCE if config.tie_word_embeddings else None
        out[TIED_DECODER] = WeightSpec(TIED_DECODER, (config.vocab_size, h), "linear_weight", tied_to=tied)
        out["cls.predictions.bias"] = WeightSpec("cls.predictions.bias", (config.vocab_size,), "bias")
    if head in ("BertForPreTraining", "BertForNextSentencePrediction"):
        _linear(out, "cls.seq_relationship", 2, h)
    if head in ("BertForSequenceClassification", "BertForTokenClassification"):
        _linear(out, "classifier", config.num_labels, h)
    if head == "BertForMultipleChoice":
        _linear(out, "classifier", 1, h)
    if head == "BertForQuestionAnswering":
        _linear(out, "qa_outputs", config.num_labels, h)
    return out


def stored_weights(
    config: BertConfig, head: str = "BertModel", add_pooling_layer: Optional[bool] = None
) -> "OrderedDict[str, WeightSpec]":
    """The tensors a checkpoint of ``head`` stores: :func:`expected_weights` without tied ones."""
    return OrderedDict(
        (k, v) for k, v in expected_weights(config, head, add_pooling_layer).items() if v.tied_to is None
    )


# ----------------------------------------------------------------------------------------------- backend maps

#: kind -> backend -> (leaf attribute name, transpose?)
BACKEND_LEAVES: Dict[str, Dict[str, Tuple[str, bool]]] = {
    "linear_weight": {"torch": ("weight", False), "tf": ("kernel", True), "flax": ("kernel", True)},
    "linear_bias": {"torch": ("bias", False), "tf": ("bias", False), "flax": ("bias", False)},
    "embedding": {"torch": ("weight", False), "tf": ("embeddings", False), "flax": ("embedding", False)},
    "layernorm_weight": {"torch": ("weight", False), "tf": ("gamma", False), "flax": ("scale", False)},
    "layernorm_bias": {"torch": ("bias", False), "tf": ("beta", False), "flax": ("bias", False)},
    "bias": {"torch": ("bias", False), "tf": ("bias", False), "flax": ("bias", False)},
}


def backend_path(spec: WeightSpec, backend: str) -> Tuple[Tuple[str, ...], bool]:
    """Attribute path of ``spec`` in ``backend`` and whether its array is the transpose of the canonical one.

    The path is the canonical module path split on dots (numeric parts index a layer list), then the backend's leaf:
    ``bert.encoder.layer.0.attention.self.query.weight`` -> ``("bert","encoder","layer","0","attention","self",
    "query","kernel"), True`` for tf and flax.
    """
    if backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKEND_NAMES}")
    leaf, transpose = BACKEND_LEAVES[spec.kind][backend]
    return tuple(spec.module_path.split(".")) + (leaf,), transpose


def to_backend_array(array: np.ndarray, spec: WeightSpec, backend: str) -> np.ndarray:
    """Canonical (PyTorch-layout) array -> the backend's layout."""
    _, transpose = backend_path(spec, backend)
    return np.ascontiguousarray(array.T) if transpose else array


def from_backend_array(array: np.ndarray, spec: WeightSpec, backend: str) -> np.ndarray:
    """Backend-layout array -> canonical (PyTorch) layout."""
    _, transpose = backend_path(spec, backend)
    return np.ascontiguousarray(np.asarray(array).T) if transpose else np.asarray(array)


def check_weights_match(table: Mapping[str, WeightSpec], weights: Mapping[str, np.ndarray], head: str) -> None:
    """Refuse canonical ``weights`` that do not fill ``table`` exactly (the tied decoder may be present and is ignored).

    Raises:
        ValueError: naming every missing and unexpected name and every array of the wrong shape (got vs expected).
    """
    missing = [n for n in table if n not in weights]
    unexpected = [n for n in weights if n not in table and n != TIED_DECODER]
    wrong = [
        f"{n}: got {tuple(np.shape(weights[n]))}, expected {table[n].shape}"
        for n in table
        if n in weights and tuple(np.shape(weights[n])) != tuple(table[n].shape)
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"cannot load weights into {head}: missing {missing}, unexpected {unexpected}, wrong shapes {wrong}"
        )


# ------------------------------------------------------------------------------------ loading: normalise + match

_LEGACY_LEAVES = (
    (re.compile(r"LayerNorm\.gamma$"), "LayerNorm.weight"),
    (re.compile(r"LayerNorm\.beta$"), "LayerNorm.bias"),
)
_BACKBONE_ROOTS = ("embeddings.", "encoder.", "pooler.")


@dataclass
class LoadingInfo:
    """What loading found, as HF's ``output_loading_info`` reports it."""

    missing_keys: List[str] = field(default_factory=list)
    unexpected_keys: List[str] = field(default_factory=list)
    mismatched_keys: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)
    error_msgs: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, list]:
        return {
            "missing_keys": list(self.missing_keys),
            "unexpected_keys": list(self.unexpected_keys),
            "mismatched_keys": list(self.mismatched_keys),
            "error_msgs": list(self.error_msgs),
        }


def normalize_state_dict(state: Mapping[str, np.ndarray], head: str = "BertModel") -> "OrderedDict[str, np.ndarray]":
    """Canonical spellings for ``head``: legacy ``LayerNorm.gamma/beta``, the ``bert.`` prefix added (heads) or
    stripped (BertModel), non-persistent buffers dropped, ``cls.predictions.decoder.bias`` folded into
    ``cls.predictions.bias``."""
    _check_head(head)
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for key, value in state.items():
        name = key
        for pattern, repl in _LEGACY_LEAVES:
            name = pattern.sub(repl, name)
        if head == "BertModel":
            if name.startswith("bert."):
                name = name[len("bert.") :]
        elif name.startswith(_BACKBONE_ROOTS):
            name = "bert." + name
        if (name[len("bert.") :] if name.startswith("bert.") else name) in OPTIONAL_BUFFERS:
            continue
        if name == "cls.predictions.decoder.bias":
            if "cls.predictions.bias" in state:
                continue
            name = "cls.predictions.bias"
        out[name] = value
    return out


def match_state_dict(
    state: Mapping[str, np.ndarray],
    config: BertConfig,
    head: str = "BertModel",
    *,
    add_pooling_layer: Optional[bool] = None,
    ignore_mismatched_sizes: bool = False,
) -> Tuple["OrderedDict[str, np.ndarray]", LoadingInfo]:
    """Normalise ``state`` and check it against the table of ``head``.

    Returns:
        (weights, info): ``weights`` maps canonical names to arrays for every expected, present, shape-correct
        tensor (tied weights excluded); ``info`` lists missing, unexpected and mismatched keys.

    Raises:
        ValueError: a tensor has the wrong shape (naming it and both shapes) unless ``ignore_mismatched_sizes``.
    """
    table = expected_weights(config, head, add_pooling_layer)
    normalized = normalize_state_dict(state, head)
    info = LoadingInfo()
    weights: "OrderedDict[str, np.ndarray]" = OrderedDict()
    order = {name: i for i, name in enumerate(table)}
    # table order: the first mismatch reported is the first in the model, and weights come out in model order
    for name, value in sorted(normalized.items(), key=lambda kv: order.get(kv[0], len(order))):
        spec = table.get(name)
        if spec is None:
            info.unexpected_keys.append(name)
            continue
        if spec.tied_to is not None:
            continue  # a tied decoder stored anyway (old checkpoints): the embedding wins, as in HF
        shape = tuple(np.shape(value))
        if shape != spec.shape:
            if not ignore_mismatched_sizes:
                raise ValueError(
                    f"size mismatch for {name}: the checkpoint has shape {shape}, the model expects {spec.shape} "
                    f"(pass ignore_mismatched_sizes=True to re-initialise it)"
                )
            info.mismatched_keys.append((name, shape, spec.shape))
            continue
        weights[name] = value
    mismatched = {m[0] for m in info.mismatched_keys}
    info.missing_keys = [n for n, s in table.items() if s.tied_to is None and n not in weights and n not in mismatched]
    return weights, info
