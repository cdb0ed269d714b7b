"""Workload (f): checkpoint load time and peak memory, one fresh process per (framework, implementation).

``python -m benchmarks.memory FRAMEWORK IMPL CKPT_DIR THREADS`` prints one JSON line (``... THREADS --forward
BATCH LENGTH LARGE_BATCH``: the activation memory of workload (l) instead, see :func:`measure_forward`). The framework (and our
package / transformers) is imported before measuring, so the numbers are the load itself: wall time of
``from_pretrained``, tracemalloc peak (Python + numpy allocations), the growth of ru_maxrss (whole process:
framework buffers too) and -- where Linux lets a process reset its peak (``/proc/self/clear_refs``) -- the peak
resident memory during the load above the resident memory before it, as a multiple of the weight files' size
(ru_maxrss growth reads 0 when importing the framework had already peaked higher).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import tracemalloc


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def proc_status_mb(field: str):
    """``VmRSS`` / ``VmHWM`` of this process in MB (None off Linux)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _weights_mb(ckpt: str) -> float:
    from pathlib import Path

    return sum(p.stat().st_size for p in Path(ckpt).glob("*.safetensors")) / 2**20


def _loader(framework: str, impl: str):
    if framework == "torch":
        if impl == "ours":
            import bert_torch

            return lambda d: bert_torch.BertModel.from_pretrained(d)
        import transformers

        transformers.logging.set_verbosity_error()
        cls = transformers.BertModel  # resolve the lazy module before timing
        return lambda d: cls.from_pretrained(d)
    if framework == "tf":
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow  # noqa: F401

        if impl == "ours":
            import bert_tf

            return lambda d: bert_tf.BertModel.from_pretrained(d)
        import transformers

        transformers.logging.set_verbosity_error()
        from .frameworks import hf_tf_checkpoint

        cls = transformers.TFBertModel
        return lambda d: cls.from_pretrained(hf_tf_checkpoint(d), from_pt=True)
    if framework == "flax":
        import jax

        if impl == "ours":
            import bert_flax

            def load(d):
                m = bert_flax.BertModel.from_pretrained(d)
                jax.block_until_ready(jax.tree_util.tree_leaves(__import__("flax").nnx.state(m)))
                return m

            return load
        import transformers

        transformers.logging.set_verbosity_error()

        cls = transformers.FlaxBertModel

        def load_hf(d):
            m = cls.from_pretrained(d, from_pt=True)
            jax.block_until_ready(jax.tree_util.tree_leaves(m.params))
            return m

        return load_hf
    raise ValueError(framework)


def measure(framework: str, impl: str, ckpt: str, threads: int) -> dict:
    from .frameworks import SETUP

    SETUP[framework](threads)
    load = _loader(framework, impl)
    if framework == "tf" and impl == "hf":  # the .bin copy HF TF needs is made before timing
        from .frameworks import hf_tf_checkpoint

        hf_tf_checkpoint(ckpt)
    gc.collect()
    rss_before = _maxrss_mb()
    peak_reset = reset_peak_rss()
    current_before = proc_status_mb("VmRSS")
    tracemalloc.start()
    t = time.perf_counter()
    model = load(ckpt)
    load_s = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _maxrss_mb()
    hwm, current_after = proc_status_mb("VmHWM"), proc_status_mb("VmRSS")
    del model
    weights_mb = _weights_mb(ckpt)
    extra = {}
    if peak_reset and hwm is not None and current_before is not None:
        extra = {
            "peak_rss_growth_mb": hwm - current_before,
            "peak_rss_growth_vs_weights": (hwm - current_before) / weights_mb if weights_mb else None,
            "rss_growth_after_load_mb": current_after - current_before,
        }
    return {
        "framework": framework,
        "impl": impl,
        "load_s": load_s,
        "tracemalloc_peak_mb": peak / 2**20,
        "maxrss_before_mb": rss_before,
        "maxrss_peak_mb": rss_after,
        "maxrss_growth_mb": rss_after - rss_before,
        "weights_mb": weights_mb,
        **extra,
    }


def measure_forward(framework: str, impl: str, ckpt: str, threads: int, batch: int, length: int, large: int) -> dict:
    """Activation memory of (l), in a fresh process so no other contender's cached allocations hide a peak: the
    model is loaded (the bench's own forward wrapper), then two calls at ``batch`` x ``length`` and two at ``large``
    x ``length``; for each, the peak resident memory above the resident memory just before it. A shape's first call
    includes tracing / compilation (tf.function, jax.jit) and, for a model whose weights are still a memory map
    (ours in PyTorch, HF's too), faulting them in; the second is the steady state. A failing call is recorded."""
    from .frameworks import SETUP, make_forward
    from .workloads import make_batch

    SETUP[framework](threads)
    config = __import__("bert_core").BertConfig.from_pretrained(ckpt)
    fwd = make_forward(framework, impl, ckpt, "fp32")
    out: dict = {"framework": framework, "impl": impl, "batch": batch, "length": length, "large_batch": large}
    for key, rows, seed in (
        ("first_call", batch, 5),
        ("steady_call", batch, 5),
        ("large_first", large, 6),
        ("large_steady", large, 6),
    ):
        inputs = make_batch(rows, length, config.vocab_size, seed=seed)
        gc.collect()
        if not reset_peak_rss():
            return dict(out, error="peak RSS cannot be reset on this platform")
        before = proc_status_mb("VmRSS")
        t = time.perf_counter()
        try:
            fwd(inputs)
        except Exception as err:  # noqa: BLE001 - an allocation failure is the measurement
            out[key] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
            break
        out[key] = {"seconds": time.perf_counter() - t, "peak_above_before_mb": proc_status_mb("VmHWM") - before}
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    framework, impl, ckpt, threads = argv[0], argv[1], argv[2], int(argv[3])
    if len(argv) > 4 and argv[4] == "--forward":
        batch, length, large = (int(x) for x in argv[5:8])
        print("RESULT " + json.dumps(measure_forward(framework, impl, ckpt, threads, batch, length, large)), flush=True)
        return 0
    print("RESULT " + json.dumps(measure(framework, impl, ckpt, threads)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
