"""Seeded numpy initialisation of any head, with HF's distributions, so every backend can start from the same weights."""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Mapping, Optional

import numpy as np

from .config import BertConfig
from .weights import WeightSpec, stored_weights


def init_array(spec: WeightSpec, config: BertConfig, rng: np.random.Generator) -> np.ndarray:
    """One tensor, initialised as HF's ``BertPreTrainedModel._init_weights`` does (in distribution).

    Linear weights and embeddings: normal(0, initializer_range); biases: zeros; LayerNorm: ones / zeros;
    the word-embedding row of ``pad_token_id``: zeros. float32, PyTorch layout.
    """
    if spec.kind in ("linear_weight", "embedding"):
        array = rng.normal(0.0, config.initializer_range, size=spec.shape).astype(np.float32)
        if spec.name.endswith("embeddings.word_embeddings.weight") and config.pad_token_id is not None:
            array[config.pad_token_id] = 0.0
        return array
    if spec.kind == "layernorm_weight":
        return np.ones(spec.shape, np.float32)
    if spec.kind in ("linear_bias", "layernorm_bias", "bias"):
        return np.zeros(spec.shape, np.float32)
    raise ValueError(f"no initialiser for {spec.name} of kind {spec.kind!r}")


def init_weights(
    config: BertConfig,
    head: str = "BertModel",
    seed: int = 0,
    *,
    add_pooling_layer: Optional[bool] = None,
    names: Optional[Iterable[str]] = None,
) -> "OrderedDict[str, np.ndarray]":
    """Canonical numpy weights for ``head`` (tied weights excluded), drawn in table order from ``seed``.

    Args:
        names: only these tensors (e.g. a checkpoint's missing head weights); each is drawn from its own stream
            seeded by (seed, name), so the result for a name does not depend on which other names are asked for.
    """
    table = stored_weights(config, head, add_pooling_layer)
    wanted = list(table) if names is None else list(names)
    unknown = [n for n in wanted if n not in table]
    if unknown:
        raise KeyError(f"not tensors of {head}: {unknown}")
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name in wanted:
        rng = np.random.default_rng([seed, _stable_hash(name)])
        out[name] = init_array(table[name], config, rng)
    return out


def complete_weights(
    weights: Mapping[str, np.ndarray],
    config: BertConfig,
    head: str,
    seed: int = 0,
    add_pooling_layer: Optional[bool] = None,
) -> "OrderedDict[str, np.ndarray]":
    """``weights`` plus seeded initial values for every tensor of ``head`` they lack, in table order."""
    table = stored_weights(config, head, add_pooling_layer)
    missing = [n for n in table if n not in weights]
    fresh = init_weights(config, head, seed, add_pooling_layer=add_pooling_layer, names=missing)
    return OrderedDict((n, weights[n] if n in weights else fresh[n]) for n in table)


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; FNV-1a is stable across runs and machines.
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h
