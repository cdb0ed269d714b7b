"""Workload (f): checkpoint load time and peak memory, one fresh process per (framework, implementation).

``python -m benchmarks.memory FRAMEWORK IMPL CKPT_DIR THREADS`` prints one JSON line. The framework (and our
package / transformers) is imported before measuring, so the numbers are the load itself: wall time of
``from_pretrained``, tracemalloc peak (Python + numpy allocations) and the growth of ru_maxrss (whole process:
framework buffers too).
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
    tracemalloc.start()
    t = time.perf_counter()
    model = load(ckpt)
    load_s = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _maxrss_mb()
    del model
    return {
        "framework": framework,
        "impl": impl,
        "load_s": load_s,
        "tracemalloc_peak_mb": peak / 2**20,
        "maxrss_before_mb": rss_before,
        "maxrss_peak_mb": rss_after,
        "maxrss_growth_mb": rss_after - rss_before,
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    framework, impl, ckpt, threads = argv[0], argv[1], argv[2], int(argv[3])
    print("RESULT " + json.dumps(measure(framework, impl, ckpt, threads)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
