"""Each backend's bf16 fast path stays within cosine similarity 0.999 of its fp32 outputs (real MiniLM weights)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from benchmarks import frameworks as fw
from benchmarks.workloads import cosine, make_batch


def _need(framework: str) -> None:
    for module in {
        "torch": ["torch", "bert_torch"],
        "tf": ["tensorflow", "bert_tf"],
        "flax": ["jax", "flax", "bert_flax"],
    }[framework]:
        try:
            importlib.import_module(module)
        except ImportError as err:
            pytest.skip(f"{module} not importable: {err}")


@pytest.mark.parametrize("framework", fw.FRAMEWORKS)
def test_bf16_close_to_fp32(framework, minilm_dir):
    _need(framework)
    batch = make_batch(2, 32, 30522, seed=5)
    batch["attention_mask"][1, 20:] = 0  # some padding too
    fp32 = fw.make_forward(framework, "ours", str(minilm_dir), "fp32")(batch)
    bf16 = fw.make_forward(framework, "ours", str(minilm_dir), "bf16")(batch)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    keep = batch["attention_mask"].astype(bool)
    sim = cosine(bf16[keep], fp32[keep])
    assert sim >= 0.999, f"{framework}: cosine {sim:.6f}"
    # not just the same numbers: the bf16 path really ran in reduced precision
    assert np.max(np.abs(bf16 - fp32)) > 0
