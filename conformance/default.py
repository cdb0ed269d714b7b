"""The embedded default checkpoint: a small deterministic BertForPreTraining built in memory (no download).

vocab 128, hidden 64, 2 layers, 4 heads, intermediate 128, 64 positions, 3 labels. Weights are bert_core's seeded
HF-distribution init, then made *discriminating*: HF's init leaves biases at 0 and LayerNorm at (1, 0), and with
``initializer_range=0.02`` attention is almost uniform, so a backend that drops a bias, a LayerNorm gain or the
attention softmax could still pass. We use ``initializer_range=0.2`` and add seeded noise to every bias and LayerNorm
parameter.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bert_core.config import BertConfig
from bert_core.init import init_weights

DEFAULT_NAME = "<embedded default>"
DEFAULT_SEED = 1234


@dataclass
class Checkpoint:
    """A checkpoint in memory: config and raw state dict (canonical PyTorch names/layout, as read from disk).

    ``state`` may be a bare BertModel state (``embeddings.*``) or a head's (``bert.*``, ``cls.*``, ...);
    :func:`conformance.runner.head_weights` normalises it per head.
    """

    config: BertConfig
    state: "OrderedDict[str, np.ndarray]"
    name: str


def default_config() -> BertConfig:
    return BertConfig(
        vocab_size=128,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        type_vocab_size=2,
        initializer_range=0.2,
        num_labels=3,
        architectures=["BertForPreTraining"],
    )


def default_checkpoint(seed: int = DEFAULT_SEED) -> Checkpoint:
    """The embedded default (same arrays on every call and machine)."""
    config = default_config()
    state = init_weights(config, "BertForPreTraining", seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, value in state.items():
        if name.endswith(".bias"):
            state[name] = (value + rng.normal(0.0, 0.1, size=value.shape)).astype(np.float32)
        elif "LayerNorm" in name and name.endswith(".weight"):
            state[name] = (value + rng.normal(0.0, 0.1, size=value.shape)).astype(np.float32)
    return Checkpoint(config=config, state=state, name=DEFAULT_NAME)


def load_checkpoint_any(source) -> Checkpoint:
    """``None`` -> the embedded default; a Checkpoint -> itself; else a directory / hub id read by bert_core.

    Raises:
        FileNotFoundError: nothing at ``source`` (and not a resolvable hub id).
        bert_core.checkpoint.CheckpointError: config and weights disagree.
    """
    if source is None:
        return default_checkpoint()
    if isinstance(source, Checkpoint):
        return source
    from bert_core.checkpoint import check_config_agrees, load_checkpoint
    from bert_core.hub import looks_like_hub_id

    text = str(source)
    if not Path(text).exists() and not looks_like_hub_id(text):
        raise FileNotFoundError(f"checkpoint {text!r} does not exist (and it is not a hub repo id 'org/name')")
    config, state, directory, file_name = load_checkpoint(text)
    check_config_agrees(config, state, directory / file_name)
    return Checkpoint(config=config, state=state, name=text)
