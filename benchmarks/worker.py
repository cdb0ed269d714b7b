"""One framework's share of a benchmark run, in its own process (thread settings, memory and the HF TF legacy-Keras
switch stay per framework). ``python -m benchmarks.worker SPEC.json OUT.json``.

The spec (written by :mod:`benchmarks.cli`) names the framework, threads, checkpoints, workloads and repeats; the
result is a JSON dict of measurements, with an ``errors`` list for anything that failed (the run goes on).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
import time
import traceback
from typing import Any, Dict

import numpy as np

from bert_core import BertConfig
from bert_core.batching import run_bucketed

from . import frameworks as fw
from .workloads import (
    corpus_lengths,
    cosine,
    forward_flops,
    make_batch,
    make_corpus_ids,
    pad_to_longest_batches,
    time_interleaved,
    train_flops,
    windows_interleaved,
)


def _bind_calls(fns: Dict[str, Any], *args: Any) -> Dict[str, Any]:
    """name -> zero-argument call of ``fns[name](*args)`` (each bound to its own function)."""
    return {name: functools.partial(fn, *args) for name, fn in fns.items()}


def _guard(result: Dict[str, Any], label: str, fn):
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - a failed measurement is recorded, the run goes on
        result["errors"].append(
            {"where": label, "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc(limit=6)[-1500:]}
        )
        print(f"[{result['framework']}] {label} FAILED: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return None


def _log(framework: str, msg: str) -> None:
    print(f"[{framework}] {msg}", file=sys.stderr, flush=True)


def _impls(spec) -> list:
    out = []
    if spec["ours"]:
        out.append("ours")
    if spec["hf"]:
        out.append("hf")
    return out


def fixed_batch_workload(
    spec, result, key: str, ckpt: str, config: BertConfig, batch: int, length: int, with_bf16: bool
) -> Dict[str, Any]:
    framework = spec["framework"]
    inputs = make_batch(batch, length, config.vocab_size)
    flops = forward_flops(config, batch, length)
    res: Dict[str, Any] = {"batch": batch, "length": length, "flops_per_batch": flops, "checkpoint": ckpt}
    variants = [(impl, "fp32", False) for impl in _impls(spec)]
    if with_bf16 and spec["ours"]:
        variants.append(("ours", "bf16", False))
    if spec["ours"] and spec.get("compiled", True) and framework in fw.COMPILED_FRAMEWORKS:
        variants += [("ours", p, True) for p in ("fp32", "bf16") if p == "fp32" or with_bf16]
    fns, outs, first_call_s = {}, {}, {}
    for impl, precision, compiled in variants:
        name = f"{impl}_compiled_{precision}" if compiled else f"{impl}_{precision}"
        _log(framework, f"{key} {name}: load + first call")

        def build():
            fwd = fw.make_forward(framework, impl, ckpt, precision, tf_jit=spec.get("tf_jit", False), compiled=compiled)
            t = time.perf_counter()
            out = fwd(inputs)  # a compiled variant compiles here: its compile time is not in the timings
            return fwd, out, time.perf_counter() - t

        got = _guard(result, f"{key}/{name}", build)
        if got is not None:
            fns[name], outs[name], first_call_s[name] = got
    timings = (
        _guard(
            result,
            f"{key}/timing",
            lambda: time_interleaved(_bind_calls(fns, inputs), spec["repeats"], warmup=spec["warmup"]),
        )
        or {}
    )
    reference = outs.get("ours_fp32")
    for name, timing in timings.items():
        t = timing["median_s"]
        entry = dict(timing, seq_per_s=batch / t, tokens_per_s=batch * length / t, flop_per_s=flops / t)
        entry["first_call_s"] = first_call_s[name]  # compiled variants: compile + one call
        if name != "ours_fp32" and reference is not None:
            entry["cosine_vs_ours_fp32"] = cosine(outs[name], reference)
            entry["max_abs_diff_vs_ours_fp32"] = float(np.max(np.abs(outs[name] - reference)))
        res[name] = entry
        _log(framework, f"{key} {name}: {entry['seq_per_s']:.2f} seq/s")
    del fns, outs
    gc.collect()
    return res


def long_inputs_workload(spec, result, ckpt: str, config: BertConfig) -> Dict[str, Any]:
    """(l): bert-base at full length, ours vs HF: round-robin time of a batch x 512 forward and the outputs' max
    difference. Its memory is measured in fresh processes (:func:`benchmarks.memory.measure_forward`)."""
    framework = spec["framework"]
    batch, length = spec["l_shape"]
    inputs = make_batch(batch, length, config.vocab_size, seed=5)
    flops = forward_flops(config, batch, length)
    res: Dict[str, Any] = {"batch": batch, "length": length, "flops_per_batch": flops, "checkpoint": ckpt}
    fns, outs = {}, {}
    for impl in _impls(spec):
        name = f"{impl}_fp32"
        _log(framework, f"l {name}: load + first call")

        def build():
            fwd = fw.make_forward(framework, impl, ckpt, "fp32", tf_jit=spec.get("tf_jit", False))
            return fwd, fwd(inputs)

        got = _guard(result, f"l/{name}", build)
        if got is not None:
            fns[name], outs[name] = got
    timings = (
        _guard(result, "l/timing", lambda: time_interleaved(_bind_calls(fns, inputs), spec["l_repeats"], warmup=0))
        or {}
    )  # the first call (above) was the warm-up
    for name, timing in timings.items():
        t = timing["median_s"]
        res[name] = dict(timing, seq_per_s=batch / t, tokens_per_s=batch * length / t, flop_per_s=flops / t)
        _log(framework, f"l {name}: {res[name]['seq_per_s']:.3f} seq/s")
    if len(outs) == 2:
        res["max_abs_diff_ours_vs_hf"] = float(np.max(np.abs(outs["ours_fp32"] - outs["hf_fp32"])))
    del fns, outs
    gc.collect()
    return res


def varlen_workload(spec, result, ckpt: str, config: BertConfig) -> Dict[str, Any]:
    framework = spec["framework"]
    c = spec["varlen"]
    lengths = corpus_lengths(c["n"], max_len=min(c["max_len"], config.max_position_embeddings))
    ids = make_corpus_ids(lengths, config.vocab_size)
    real_tokens = int(lengths.sum())
    res: Dict[str, Any] = {
        "n_sequences": len(ids),
        "real_tokens": real_tokens,
        "batch_size": c["batch_size"],
        "max_tokens": c["max_tokens"],
        "pad_to_multiple_of": c["pad_to_multiple_of"],
        "length_min": int(lengths.min()),
        "length_median": float(np.median(lengths)),
        "length_max": int(lengths.max()),
        "checkpoint": ckpt,
    }
    outputs: Dict[str, list] = {}

    def padded_run(fwd):
        results = [None] * len(ids)
        padded = 0
        for idx, batch in pad_to_longest_batches(ids, c["batch_size"]):
            out = fwd(batch)
            padded += batch["input_ids"].size
            for r, i in enumerate(idx):
                results[i] = out[r, : len(ids[i])]
        return results, padded

    def bucketed_run(fwd):
        return run_bucketed(
            fwd, ids, batch_size=c["batch_size"], max_tokens=c["max_tokens"], pad_to_multiple_of=c["pad_to_multiple_of"]
        )

    runs = []
    if spec["ours"]:
        runs.append(("ours_bucketed", "ours", bucketed_run))
    if spec["hf"]:
        runs.append(("hf_pad_to_longest", "hf", lambda f: padded_run(f)[0]))
    fns = {}
    for name, impl, runner in runs:

        def build():
            fwd = fw.make_forward(framework, impl, ckpt, "fp32", tf_jit=spec.get("tf_jit", False))
            return fwd, runner(fwd)  # warm-up pass: compiles every shape for jit frameworks

        _log(framework, f"c {name}: load + warm-up pass")
        got = _guard(result, f"c/{name}", build)
        if got is not None:
            fwd, outputs[name] = got
            fns[name] = lambda r=runner, f=fwd: r(f)
    timings = _guard(result, "c/timing", lambda: time_interleaved(fns, spec["varlen_repeats"], warmup=0)) or {}
    for name, timing in timings.items():
        res[name] = dict(timing, tokens_per_s=real_tokens / timing["median_s"])
        _log(framework, f"c {name}: {res[name]['tokens_per_s']:.0f} tok/s")
    del fns
    if len(outputs) == 2:
        a, b = outputs["ours_bucketed"], outputs["hf_pad_to_longest"]
        res["max_abs_diff_bucketed_vs_hf_padded"] = float(max(np.max(np.abs(x - y)) for x, y in zip(a, b)))
    # padded-token accounting (framework independent)
    padded_hf = sum(b["input_ids"].size for _, b in pad_to_longest_batches(ids, c["batch_size"]))
    from bert_core.batching import iter_bucketed

    padded_ours = sum(
        b["input_ids"].size
        for _, b in iter_bucketed(
            ids, batch_size=c["batch_size"], max_tokens=c["max_tokens"], pad_to_multiple_of=c["pad_to_multiple_of"]
        )
    )
    res["padded_tokens_hf"] = int(padded_hf)
    res["padded_tokens_bucketed"] = int(padded_ours)
    return res


def train_workload(spec, result, ckpt: str, config: BertConfig, batch: int, length: int) -> Dict[str, Any]:
    framework = spec["framework"]
    inputs = make_batch(batch, length, config.vocab_size, seed=3)
    labels = (np.arange(batch) % 2).astype(np.int64)
    flops = train_flops(config, batch, length)
    res: Dict[str, Any] = {
        "batch": batch,
        "length": length,
        "flops_per_step": flops,
        "checkpoint": ckpt,
        "optimizer": f"AdamW lr={fw.LR}",
        "head": "BertForSequenceClassification(num_labels=2)",
    }
    steps, first = {}, {}
    for impl in _impls(spec):

        def build():
            step = fw.make_train_step(framework, impl, ckpt, 2, tf_jit=spec.get("tf_jit", False))
            return step, step(inputs, labels)

        _log(framework, f"d {impl}: load + first step")
        got = _guard(result, f"d/{impl}", build)
        if got is not None:
            steps[impl], first[impl] = got
    timings = (
        _guard(
            result,
            "d/timing",
            lambda: time_interleaved(_bind_calls(steps, inputs, labels), spec["train_repeats"], warmup=0),
        )
        or {}
    )  # the first step (above) was the warm-up
    for impl, timing in timings.items():
        t = timing["median_s"]
        res[impl] = dict(timing, steps_per_s=1 / t, seq_per_s=batch / t, flop_per_s=flops / t, first_loss=first[impl])
        _log(framework, f"d {impl}: {res[impl]['steps_per_s']:.3f} steps/s")
    del steps
    gc.collect()
    return res


def train_loop_workload(spec, result, ckpt: str) -> Dict[str, Any]:
    """(g): our Trainer vs HF's loop of the same framework, examples/s over the steps after the warm-up."""
    from . import train_loop as tl

    framework, g = spec["framework"], spec["g"]
    task, features, _ = tl.load_features(ckpt, g["data"], g["length"])
    res: Dict[str, Any] = {
        "batch": g["batch"],
        "length": g["length"],
        "warmup_steps": g["warmup_steps"],
        "steps": g["steps"],
        "n_features": len(features),
        "feature_lengths": sorted({len(f["input_ids"]) for f in features}),
        "checkpoint": ckpt,
        "recipe": tl.RECIPE,
        "hf_loop": {
            "torch": "transformers.Trainer",
            "tf": "TFBertForSequenceClassification.fit",
            "flax": "jax.jit step",
        }[framework],
    }
    contenders: Dict[str, Any] = {}
    builders = []
    if spec["ours"]:
        builders.append(("ours", lambda: tl.ours(framework, ckpt, features, task, g)))
    if spec["hf"]:
        builders.append(("hf", lambda: tl.HF[framework](ckpt, features, g)))
    for name, build in builders:
        _log(framework, f"g {name}: load")
        got = _guard(result, f"g/{name}", build)
        if got is not None:
            contenders[name] = got
    runs = {name: run for name, (run, _) in contenders.items()}
    timings = _guard(result, "g/timing", lambda: windows_interleaved(runs, g["repeats"])) or {}
    examples = g["steps"] * g["batch"]
    for name, timing in timings.items():
        t = timing["median_s"]
        res[name] = dict(
            timing, examples_per_s=examples / t, steps_per_s=g["steps"] / t, train_losses=contenders[name][1]
        )
        _log(framework, f"g {name}: {res[name]['examples_per_s']:.2f} examples/s")
    if framework == "torch":
        import torch

        res["torch_threads_after"] = torch.get_num_threads()
    del contenders, runs
    gc.collect()
    return res


def pipelines_workload(spec, result, ckpts: Dict[str, str]) -> Dict[str, Any]:
    """(h): our pipelines vs HF's on one corpus, per task: texts/s of whole-corpus calls."""
    from . import pipeline_bench as pb

    framework, h = spec["framework"], spec["h"]
    with open(h["corpus"], encoding="utf-8") as fh:
        texts = json.load(fh)
    if framework == "flax" and spec["hf"]:
        fw.torch_setup(spec["threads"])  # HF has no Flax pipelines: its PyTorch one is the reference
    res: Dict[str, Any] = {"n_texts": len(texts), "ours_batch_size": pb.OURS_BATCH_SIZE, "tasks": {}}
    for task in h["tasks"]:
        ckpt = ckpts["h_" + pb.CHECKPOINT[task]]
        entry: Dict[str, Any] = {
            "checkpoint": ckpt,
            "real_tokens": pb.token_count(task, ckpt, texts),
            "hf_framework": pb.HF_FRAMEWORK[framework],
        }
        fns, outs = {}, {}
        if spec["ours"]:
            _log(framework, f"h {task} ours: load + warm-up pass")
            got = _guard(result, f"h/{task}/ours", lambda: (lambda p: (p, p(texts)))(pb.ours(framework, task, ckpt)))
            if got is not None:
                fns["ours"], outs["ours"] = got
        if spec["hf"]:
            _log(framework, f"h {task} hf: load + warm-up pass")

            def build_hf():
                default, batched = pb.hf(framework, task, ckpt)
                return default, default(texts), batched, batched(texts) if batched is not None else None

            got = _guard(result, f"h/{task}/hf", build_hf)
            if got is not None:
                fns["hf_default"], outs["hf_default"], batched, _ = got
                if batched is not None:
                    fns["hf_batched"] = batched
        timings = (
            _guard(result, f"h/{task}/timing", lambda: time_interleaved(_bind_calls(fns, texts), h["repeats"], 0)) or {}
        )
        for name, timing in timings.items():
            t = timing["median_s"]
            entry[name] = dict(timing, texts_per_s=len(texts) / t, tokens_per_s=entry["real_tokens"] / t)
            _log(framework, f"h {task} {name}: {entry[name]['texts_per_s']:.1f} texts/s")
        if "ours" in outs and "hf_default" in outs:
            entry["ours_vs_hf_default_outputs"] = _guard(
                result, f"h/{task}/compare", lambda: pb.compare(task, outs["ours"], outs["hf_default"])
            )
        res["tasks"][task] = entry
        del fns, outs
        gc.collect()
    return res


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(open(argv[0]).read())
    framework = spec["framework"]
    result: Dict[str, Any] = {"framework": framework, "errors": [], "loadavg_at_start": os.getloadavg()}
    t0 = time.perf_counter()
    result["setup"] = _guard(result, "setup", lambda: fw.SETUP[framework](spec["threads"]))
    problem = fw.our_backend_importable(framework)
    if problem is not None:
        result["errors"].append({"where": "import", "error": problem})
        spec["ours"] = False
    if spec["hf"] and not fw.hf_available():
        spec["hf"] = False
    if spec["hf"]:
        import transformers

        result["setup"] = dict(result["setup"] or {}, transformers=transformers.__version__)
    result["ours"], result["hf"] = spec["ours"], spec["hf"]

    def measure_peak(when: str) -> None:
        for dtype in ("fp32", "bf16"):
            value = _guard(
                result, f"peak/{dtype}/{when}", lambda: fw.PEAK[framework](spec["peak_n"], dtype, spec["peak_repeats"])
            )
            if value is not None:
                result["peak_samples"].setdefault(dtype, []).append(value)
                result["peak_flop_per_s"][dtype] = max(result["peak_samples"][dtype])
        _log(framework, f"matmul peak ({when}): {result['peak_flop_per_s']}")

    # the peak is sampled before and after the workloads and the best sample kept: on a shared machine one
    # sample can land in a busy second and make model FLOP/s look like more than 100% of "peak"
    result["peak_flop_per_s"], result["peak_samples"] = {}, {}
    measure_peak("start")

    work = spec["workloads"]
    ckpts = spec["checkpoints"]
    if "a" in work:
        config = BertConfig.from_pretrained(ckpts["a"])
        result["a"] = fixed_batch_workload(spec, result, "a", ckpts["a"], config, *spec["a_shape"], with_bf16=True)
    if "b" in work and ckpts.get("b"):
        config = BertConfig.from_pretrained(ckpts["b"])
        result["b"] = fixed_batch_workload(spec, result, "b", ckpts["b"], config, *spec["b_shape"], with_bf16=True)
    if "c" in work:
        ck = ckpts.get("c") or ckpts["a"]
        result["c"] = varlen_workload(spec, result, ck, BertConfig.from_pretrained(ck))
    if "d" in work:
        ck = ckpts.get("d") or ckpts["a"]
        result["d"] = train_workload(spec, result, ck, BertConfig.from_pretrained(ck), *spec["d_shape"])
    if "l" in work:
        config = BertConfig.from_pretrained(ckpts["a"])
        result["l"] = long_inputs_workload(spec, result, ckpts["a"], config)
    if "g" in work:
        result["g"] = train_loop_workload(spec, result, ckpts["g"])
    if "h" in work:
        result["h"] = pipelines_workload(spec, result, ckpts)
    measure_peak("end")
    result["wall_s"] = time.perf_counter() - t0
    result["loadavg_at_end"] = os.getloadavg()
    with open(argv[1], "w") as fh:
        json.dump(result, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
