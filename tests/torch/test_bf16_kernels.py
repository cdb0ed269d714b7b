"""bfloat16 CPU inference runs its linears through oneDNN's fused kernel (bias, exact GELU and residual add in the
epilogue); float32, training and autograd keep the plain ops; both bfloat16 paths give the same numbers up to
bfloat16 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bert_torch
import bert_torch.modeling as modeling
from bert_core import tiny_config

pytestmark = pytest.mark.skipif(modeling._ONEDNN_LINEAR is None, reason="this torch has no oneDNN fused linear")


def _model(dtype):
    model = bert_torch.BertModel(tiny_config(), seed=0).eval()
    return model.to(dtype)


def _inputs():
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(5, 99, size=(2, 12)))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture
def calls(monkeypatch):
    """Counts the fused kernel's calls (plain and with a residual)."""
    counted = {"plain": 0, "binary": 0}
    op = modeling._ONEDNN_LINEAR

    class Counting:
        def __call__(self, *args):
            counted["plain"] += 1
            return op(*args)

        def binary(self, *args):
            counted["binary"] += 1
            return op.binary(*args)

    monkeypatch.setattr(modeling, "_ONEDNN_LINEAR", Counting())
    return counted


def test_bf16_inference_uses_the_fused_kernel(calls):
    config = tiny_config()
    with torch.inference_mode():
        _model(torch.bfloat16)(**_inputs())
    layers = config.num_hidden_layers
    assert calls == {"plain": 4 * layers, "binary": 2 * layers}  # q, k, v, intermediate; the two output denses


@pytest.mark.parametrize("case", ["fp32", "grad", "train"])
def test_plain_ops_elsewhere(calls, case):
    model = _model(torch.float32 if case == "fp32" else torch.bfloat16)
    if case == "train":
        model.train()
    with torch.set_grad_enabled(case != "fp32"):
        model(**_inputs())
    assert calls == {"plain": 0, "binary": 0}


def test_fused_equals_plain_up_to_rounding(monkeypatch):
    model = _model(torch.bfloat16)
    reference = _model(torch.float32)
    inputs = _inputs()
    with torch.inference_mode():
        fused = model(**inputs).last_hidden_state.float()
        exact = reference(**inputs).last_hidden_state
        monkeypatch.setattr(modeling, "_ONEDNN_LINEAR", None)
        plain = model(**inputs).last_hidden_state.float()
    keep = inputs["attention_mask"].bool()
    cos = torch.nn.functional.cosine_similarity(fused[keep].flatten(), exact[keep].flatten(), dim=0)
    assert float(cos) > 0.999
    assert float((fused - plain).abs().max()) < 0.1 and not torch.equal(fused, exact)
