"""The forward profiler's classification (benchmarks/profile.py): aten ops, TF executor events, compiled XLA HLO."""

from __future__ import annotations

import importlib

import pytest

from benchmarks import profile as prof


def test_torch_ops():
    assert prof.classify_torch("mkldnn::_linear_pointwise") == prof.GEMM
    assert prof.classify_torch("aten::addmm") == prof.GEMM
    assert prof.classify_torch("aten::_scaled_dot_product_flash_attention_for_cpu") == prof.FUSED
    assert prof.classify_torch("aten::bmm") == prof.ATTN
    assert prof.classify_torch("aten::_softmax") == prof.SOFTMAX
    assert prof.classify_torch("aten::native_layer_norm") == prof.LN
    assert prof.classify_torch("aten::gelu") == prof.GELU
    assert prof.classify_torch("aten::_to_copy") == prof.LAYOUT
    assert prof.classify_torch("aten::index_select") == prof.OTHER
    # a prefix is not a match: aten::addmm is not aten::add
    assert prof.classify_torch("aten::addcmul") == prof.OTHER


def test_tf_events():
    layer = "BertModel_1/encoder_1/layer.0_1/"
    assert prof.classify_tf(layer + "intermediate_1/mul_2:_MklNativeFusedMatMul") == prof.GEMM
    assert prof.classify_tf(layer + "attention_1/self_1/MatMul_4:_MklBatchMatMulV2") == prof.ATTN
    assert prof.classify_tf(layer + "attention_1/self_1/Softmax:_MklSoftmax") == prof.SOFTMAX
    assert prof.classify_tf(layer + "output_1/LayerNorm_1/moments/mean:Mean") == prof.LN
    assert prof.classify_tf(layer + "attention_1/self_1/transpose:_MklTranspose") == prof.LAYOUT
    assert prof.classify_tf("ExecutorState::Process") is None


HLO = """HloModule m

%fused_dot (p0: bf16[8,4], p1: bf16[4,4]) -> f32[8,4] {
  %p0 = bf16[8,4]{1,0} parameter(0)
  %p1 = bf16[4,4]{1,0} parameter(1)
  ROOT %dot.1 = f32[8,4]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_attn (p0: f32[2,2,4,4]) -> f32[2,2,4,4] {
  %p0 = f32[2,2,4,4]{3,2,1,0} parameter(0)
  ROOT %dot.2 = f32[2,2,4,4]{3,2,1,0} dot(%p0, %p0), lhs_batch_dims={0,1}, lhs_contracting_dims={3}, rhs_batch_dims={0,1}, rhs_contracting_dims={2}
}

%fused_gelu (p0: f32[8,4]) -> bf16[8,4] {
  %p0 = f32[8,4]{1,0} parameter(0)
  %e = f32[8,4]{1,0} exponential(%p0), metadata={op_name="jit(run)/erfc"}
  ROOT %c = bf16[8,4]{1,0} convert(%e)
}

%fused_softmax (p0: f32[8,4]) -> f32[8,4] {
  %p0 = f32[8,4]{1,0} parameter(0)
  ROOT %e = f32[8,4]{1,0} exponential(%p0), metadata={op_name="jit(run)/exp"}
}

%fused_ln (p0: f32[8,4]) -> f32[8,4] {
  %p0 = f32[8,4]{1,0} parameter(0)
  ROOT %r = f32[8,4]{1,0} rsqrt(%p0)
}

%fused_cast (p0: f32[8,4]) -> bf16[4,8] {
  %p0 = f32[8,4]{1,0} parameter(0)
  %t = f32[4,8]{1,0} transpose(%p0), dimensions={1,0}
  ROOT %c = bf16[4,8]{1,0} convert(%t)
}

ENTRY %main (a: bf16[8,4], b: bf16[4,4]) -> f32[8,4] {
  %a = bf16[8,4]{1,0} parameter(0)
  %b = bf16[4,4]{1,0} parameter(1)
  %ynn_fusion = f32[8,4]{1,0} fusion(%a, %b), kind=kCustom, calls=%fused_dot
  %attn_fusion = f32[2,2,4,4]{3,2,1,0} fusion(%x), kind=kCustom, calls=%fused_attn
  %gelu_fusion = bf16[8,4]{1,0} fusion(%ynn_fusion), kind=kLoop, calls=%fused_gelu
  %softmax_fusion = f32[8,4]{1,0} fusion(%ynn_fusion), kind=kLoop, calls=%fused_softmax
  %ln_fusion = f32[8,4]{1,0} fusion(%ynn_fusion), kind=kLoop, calls=%fused_ln
  ROOT %cast_fusion = bf16[4,8]{1,0} fusion(%ynn_fusion), kind=kLoop, calls=%fused_cast
}
"""


def test_hlo_fusions():
    got = prof.hlo_categories(HLO)
    assert got["ynn_fusion"] == prof.GEMM
    assert got["attn_fusion"] == prof.ATTN
    assert got["gelu_fusion"] == prof.GELU  # erf expands into exp: the primitive name decides, not the opcode
    assert got["softmax_fusion"] == prof.SOFTMAX
    assert got["ln_fusion"] == prof.LN
    assert got["cast_fusion"] == prof.LAYOUT


def test_grouping_and_shares():
    per_op = {"a": 6.0, "b": 2.0, "c": 2.0}
    groups = prof.group(per_op, {"a": prof.GEMM, "b": prof.SOFTMAX})
    assert groups[prof.GEMM] == 6.0 and groups[prof.SOFTMAX] == 2.0 and groups[prof.OTHER] == 2.0
    assert prof.non_gemm_share(groups) == pytest.approx(0.4)
    # GEMMs 2x faster, the rest unchanged: 10 ms -> 3 + 4 = 7 ms on a 2x peak: share x 10 / (6 + 2 * 4)
    assert prof.amx_factor(groups) == pytest.approx(10 / 14)


def test_flax_profile_runs(tmp_path):
    """The whole flax path on a tiny model: a compiled forward, a jax.profiler trace read back, every thunk with
    a category and the GEMMs found."""
    for module in ("jax", "flax", "bert_flax"):
        try:
            importlib.import_module(module)
        except ImportError as err:
            pytest.skip(f"{module} not importable: {err}")
    from benchmarks.workloads import make_batch, quick_config
    from bert_core import init_weights, save_pretrained

    config = quick_config()
    save_pretrained(tmp_path, config, init_weights(config, "BertModel", seed=0), architecture="BertModel")
    per_op, category, wall = prof.profile_flax(str(tmp_path), "bf16", make_batch(2, 16, config.vocab_size), iters=2)
    assert wall > 0 and per_op and set(per_op) <= set(category)
    groups = prof.group(per_op, category)
    assert groups[prof.GEMM] > 0
    text = prof.markdown("flax", "tiny", "bf16", (2, 16), per_op, category, wall, 1e6, 1e9)
    assert "| GEMM (projections, FFN, pooler) |" in text
