"""Which weights get weight decay: every weight except biases and LayerNorm weights (HF ``Trainer``'s rule).

The rule is read off the canonical weight table (:mod:`bert_core.weights`): a tensor's ``kind`` says whether it is a
bias (``linear_bias``, ``bias``) or a LayerNorm parameter (``layernorm_weight``, ``layernorm_bias``). Embeddings,
linear weights and the MLM decoder decay. HF ``Trainer.get_decay_parameter_names`` reaches the same split by class
(``nn.LayerNorm``) and name (``bias``); the tests check both agree on every name of every head.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Dict, Iterable

from ..config import BertConfig
from ..weights import HEADS, expected_weights

NO_DECAY_KINDS = frozenset({"linear_bias", "bias", "layernorm_weight", "layernorm_bias"})

_LAYER_INDEX = re.compile(r"\.layer\.\d+\.")
_LAYER_SLOT = ".layer.{}."


@lru_cache(maxsize=1)
def _kinds() -> Dict[str, str]:
    """Canonical name (layer index replaced by ``{}``) -> kind, over every head and every optional tensor."""
    # A config that has every optional tensor: cross-attention and relative position embeddings.
    config = BertConfig(
        vocab_size=8,
        hidden_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=4,
        max_position_embeddings=4,
        add_cross_attention=True,
        is_decoder=True,
        position_embedding_type="relative_key",
    )
    kinds: Dict[str, str] = {}
    for head in HEADS:
        for pooled in (True, False):
            for name, spec in expected_weights(config, head, add_pooling_layer=pooled).items():
                kinds[_LAYER_INDEX.sub(_LAYER_SLOT, name)] = spec.kind
    return kinds


def weight_kind(name: str) -> str:
    """The table kind of canonical tensor ``name`` (``"linear_weight"``, ``"layernorm_bias"``...).

    Raises:
        ValueError: ``name`` is not a canonical BERT tensor name.
    """
    kind = _kinds().get(_LAYER_INDEX.sub(_LAYER_SLOT, name))
    if kind is None:
        raise ValueError(
            f"{name!r} is not a canonical BERT weight name (e.g. 'bert.encoder.layer.0.attention.self.query.weight')"
        )
    return kind


def decays(name: str) -> bool:
    """Whether canonical tensor ``name`` gets weight decay: False for biases and LayerNorm weights, else True."""
    return weight_kind(name) not in NO_DECAY_KINDS


def decay_mask(names: Iterable[str]) -> Dict[str, bool]:
    """``{name: decays(name)}`` for canonical names, in the given order."""
    return {name: decays(name) for name in names}
