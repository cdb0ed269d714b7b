"""Workload (q) of ``bert bench``: what low precision costs on a fine-tuned classifier, next to what it buys.

No hub and no datasets here, so the task is synthetic but learnable and not trivial: texts of pseudo-prose (Zipf
draws from the checkpoint's whole-word vocabulary) with a few words of two disjoint topic lists mixed in; the label
is the topic with more words (counts 0-4 each, never equal, so a margin of one word is common). MiniLM-L6 (real
weights + a seeded head, benchmarks.cli.classifier_checkpoint) is fine-tuned on it with our own
``bert_torch.training.Trainer`` at 64 tokens, saved with ``save_pretrained`` (the trainer's final model), and that one
checkpoint is loaded by every backend. On a held-out corpus (>= 512 texts, padded to 64) per backend:

* ``fp32``: accuracy;
* ``bf16``: accuracy, argmax agreement with the backend's own fp32, cosine of the logits to fp32 (torch: the model
  cast to bfloat16; tf: Keras ``mixed_bfloat16``; flax: ``dtype=param_dtype=bfloat16``);
* every int8 path of the backend, same three numbers: torch ``torch.ao int8``
  (:func:`bert_torch.export.quantize_dynamic_int8`) and ``ort int8`` (``bert export --to onnx --optimize --quantize
  int8``), tf ``tflite int8`` (``--to tflite --quantize int8``, LiteRT), flax ``ort int8`` (jax2onnx then
  onnxruntime's int8, ``--to onnx --quantize int8``).

Speed: every int8 path against its own backend's fp32 (our ``BertModel``, ``last_hidden_state``) on bert-base
random weights 8 x 128 and MiniLM 32 x 128, one process, fixed threads, round-robin
(:func:`benchmarks.workloads.time_interleaved`), with the mean token cosine to fp32.

With flax, an XLA:CPU probe: one bert-base layer's GEMMs (Q, K, V, O 768x768; FFN 768x3072, 3072x768 at 1024
tokens) in float32 against int8 x int8 -> int32 ``dot_general`` with dynamic per-token activation scales and
per-channel weight scales, and the fusion XLA compiles the int8 dot to: the evidence behind bert_flax having no
in-process int8 model (its int8 path is the ONNX export).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .export_bench import _token_cosine
from .workloads import cosine, make_batch, time_interleaved, vocabulary_words

HEAD = "BertForSequenceClassification"
LENGTH = 64
#: topic words come from this band of the (frequency-ordered) whole-word vocabulary: common, not function words
TOPIC_BAND = (1500, 6000)
TOPIC_SIZE = 40

Batch = Dict[str, np.ndarray]
Logits = Callable[[Batch], np.ndarray]


def shapes(quick: bool) -> Dict[str, Any]:
    """Sizes of the run: training steps / batch, held-out texts, filler words per text, speed shapes."""
    if quick:
        return {"steps": 4, "batch": 8, "n_eval": 32, "filler": 8, "speed": {"a": (2, 16), "b": (2, 16)}, "reps": 1}
    # 320 steps: the classifier converges (96.5% held-out accuracy; 80 steps left it at 80%, with many texts at
    # the decision boundary, which is not what users quantize)
    return {"steps": 320, "batch": 16, "n_eval": 512, "filler": 12, "speed": {"a": (8, 128), "b": (32, 128)}, "reps": 5}


# ------------------------------------------------------------------------------------------------------ the task
def topic_words(words: Sequence[str], seed: int = 0) -> Tuple[List[str], List[str], List[str]]:
    """(topic A, topic B, filler): two disjoint lists of :data:`TOPIC_SIZE` words from :data:`TOPIC_BAND` of
    ``words`` (whole words in vocabulary order), and every other word. Small vocabularies use their second half."""
    lo, hi = TOPIC_BAND if len(words) > TOPIC_BAND[1] else (len(words) // 2, len(words))
    size = min(TOPIC_SIZE, (hi - lo) // 4)
    picked = np.random.default_rng(seed).choice(np.arange(lo, hi), size=2 * size, replace=False)
    a, b = [words[i] for i in picked[:size]], [words[i] for i in picked[size:]]
    taken = set(a) | set(b)
    return a, b, [w for w in words if w not in taken]


def make_examples(words: Sequence[str], n: int, filler: int, seed: int) -> Tuple[List[str], np.ndarray]:
    """``n`` texts and their int labels (1 when topic B has more words than topic A): ``filler`` Zipf-drawn filler
    words with ``k_a`` words of A and ``k_b`` of B inserted at random places, ``k_a != k_b`` in 0..4."""
    a, b, rest = topic_words(words)
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(rest) + 1)
    weights /= weights.sum()
    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
    texts, labels = [], np.zeros(n, np.int64)
    for t in range(n):
        k_a, k_b = pairs[rng.integers(len(pairs))]
        tokens = list(np.asarray(rest, dtype=object)[rng.choice(len(rest), size=filler, p=weights)])
        for word in list(rng.choice(a, size=k_a)) + list(rng.choice(b, size=k_b)):
            tokens.insert(int(rng.integers(len(tokens) + 1)), word)
        texts.append(" ".join(tokens) + ".")
        labels[t] = int(k_b > k_a)
    return texts, labels


def fine_tune(base: Path, work: Path, quick: bool, progress: Callable[[str], None]) -> Tuple[Path, Dict[str, Any]]:
    """``base`` (an encoder + tokenizer) with a seeded 2-class head, fine-tuned on the synthetic task with our
    torch Trainer; returns the trained checkpoint (the trainer's ``output_dir``) and what the run did."""
    from bert_core.config import BertConfig
    from bert_core.tasks import TASKS
    from bert_core.tokenization_fast import BertTokenizerFast
    from bert_core.training import TrainingArguments
    from bert_torch import BertForSequenceClassification
    from bert_torch.training import Trainer

    from .cli import CLASS_LABELS, classifier_checkpoint

    size = shapes(quick)
    start = classifier_checkpoint(work / "q-start", base, seed=2)
    texts, labels = make_examples(vocabulary_words(base), size["steps"] * size["batch"], size["filler"], seed=10)
    data = work / "q-train.jsonl"
    data.write_text(
        "".join(json.dumps({"text": t, "label": CLASS_LABELS[int(y)]}) + "\n" for t, y in zip(texts, labels))
    )
    task = TASKS["text-classification"]
    task.set_label_config(BertConfig.from_pretrained(start))
    tokenizer = BertTokenizerFast.from_pretrained(start)
    args = TrainingArguments(
        output_dir=os.fspath(work / "q-trained"),
        task="text-classification",
        backend="torch",
        model=os.fspath(start),
        max_steps=size["steps"],
        per_device_train_batch_size=size["batch"],
        max_length=LENGTH,
        learning_rate=2e-4,
        warmup_ratio=0.1,
        weight_decay=0.01,
        save_steps=10**9,  # no intermediate checkpoints: the final model is what is measured
        seed=0,
        quiet=True,
    )
    features = task.features(task.read(os.fspath(data)), tokenizer, args, training=True)
    progress(f"fine-tuning {HEAD} for {size['steps']} steps x {size['batch']} at {LENGTH} tokens (torch Trainer)")
    t0 = time.perf_counter()
    metrics = Trainer(
        BertForSequenceClassification.from_pretrained(start), args, task, features, tokenizer=tokenizer
    ).train()
    record = {
        "base": os.fspath(base),
        "steps": size["steps"],
        "batch": size["batch"],
        "length": LENGTH,
        "learning_rate": args.learning_rate,
        "train_loss": metrics.get("train_loss"),
        "seconds": time.perf_counter() - t0,
    }
    return Path(args.output_dir), record


def eval_batches(ckpt: Path, texts: Sequence[str], batch: int = 32) -> List[Batch]:
    """The held-out texts tokenized by the checkpoint's tokenizer, padded to :data:`LENGTH` (one shape throughout:
    one compile for jit, one tensor allocation for TFLite), int64, in batches."""
    from bert_core.tokenization_fast import BertTokenizerFast

    enc = BertTokenizerFast.from_pretrained(ckpt)(
        list(texts), padding="max_length", truncation=True, max_length=LENGTH, return_tensors="np"
    )
    arrays = {k: np.asarray(enc[k], np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    return [{k: v[i : i + batch] for k, v in arrays.items()} for i in range(0, len(texts), batch)]


# ----------------------------------------------------------------------------------------- classifiers per path
def _torch_logits(model) -> Logits:
    import torch

    def run(x: Batch) -> np.ndarray:
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v) for k, v in x.items()}).logits.float().numpy()

    return run


def _runner_output(runner, name: str) -> Callable[[Batch], np.ndarray]:
    return lambda x: np.asarray(runner(x)[name], np.float32)


def _export_runner(ckpt: Path, work: Path, backend: str, to: str, head: str, threads: int, **kwargs):
    """``bert export`` of ``ckpt`` into ``work`` and its runner on ``threads`` threads; returns (runner, manifest)."""
    from bert_core.export import backend_export_module, export
    from bert_core.export.onnx import OnnxRunner

    out = Path(tempfile.mkdtemp(prefix=f"{backend}-{to}-", dir=work)) / "artifact"
    result = export(ckpt, out, backend=backend, to=to, head=head, **kwargs)
    if to == "onnx":
        return OnnxRunner(out / "model.onnx", threads=threads), result.manifest
    return backend_export_module(backend).load_artifact(out, to, threads=threads), result.manifest


def classifier_paths(backend: str, ckpt: Path, work: Path, threads: int) -> Dict[str, Logits]:
    """Path name -> logits callable for ``backend``'s classifier from ``ckpt``: fp32, bf16, its int8 paths."""
    if backend == "torch":
        import torch

        import bert_torch
        from bert_torch.export import quantize_dynamic_int8

        model = bert_torch.BertForSequenceClassification.from_pretrained(ckpt).eval()
        paths = {"fp32": _torch_logits(model)}
        paths["bf16"] = _torch_logits(
            bert_torch.BertForSequenceClassification.from_pretrained(ckpt).eval().to(torch.bfloat16)
        )
        paths["torch.ao int8"] = _torch_logits(quantize_dynamic_int8(model))
        runner, _ = _export_runner(ckpt, work, "torch", "onnx", HEAD, threads, optimize=True, quantize="int8")
        paths["ort int8"] = _runner_output(runner, "logits")
        return paths
    if backend == "tf":
        import keras
        import tensorflow as tf

        import bert_tf

        def tf_logits(precision: str) -> Logits:
            previous = keras.mixed_precision.global_policy().name
            keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
            try:
                model = bert_tf.BertForSequenceClassification.from_pretrained(os.fspath(ckpt))
            finally:
                keras.mixed_precision.set_global_policy(previous)

            @tf.function(reduce_retracing=True, autograph=False)  # no Python control flow to convert
            def run(ids, mask, types):
                out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, training=False)
                return tf.cast(out["logits"], tf.float32)

            names = ("input_ids", "attention_mask", "token_type_ids")
            return lambda x: run(*(tf.constant(x[k], tf.int32) for k in names)).numpy()

        paths = {"fp32": tf_logits("fp32"), "bf16": tf_logits("bf16")}
        runner, _ = _export_runner(ckpt, work, "tf", "tflite", HEAD, threads, quantize="int8")
        paths["tflite int8"] = _runner_output(runner, "logits")
        return paths
    if backend == "flax":
        paths = {"fp32": _flax_logits(ckpt, "fp32"), "bf16": _flax_logits(ckpt, "bf16")}
        runner, _ = _export_runner(ckpt, work, "flax", "onnx", HEAD, threads, quantize="int8")
        paths["ort int8"] = _runner_output(runner, "logits")
        return paths
    raise ValueError(f"backend {backend!r} has no quality paths; expected torch, tf or flax")


def _flax_logits(ckpt: Path, precision: str) -> Logits:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import bert_flax

    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    graphdef, state = nnx.split(
        bert_flax.BertForSequenceClassification.from_pretrained(ckpt, dtype=dtype, param_dtype=dtype)
    )

    @jax.jit
    def run(state, ids, mask, types):
        out = nnx.merge(graphdef, state)(input_ids=ids, attention_mask=mask, token_type_ids=types, deterministic=True)
        return out.logits.astype(jnp.float32)

    names = ("input_ids", "attention_mask", "token_type_ids")
    return lambda x: np.asarray(run(state, *(jnp.asarray(x[k], jnp.int32) for k in names)))


def judge(paths: Dict[str, Logits], batches: Sequence[Batch], labels: np.ndarray) -> Dict[str, Dict[str, float]]:
    """Per path: accuracy on ``labels``; for every path but fp32 also the accuracy delta, the argmax agreement with
    fp32 and the cosine of all logits to fp32's."""
    logits = {name: np.concatenate([fn(b) for b in batches]) for name, fn in paths.items()}
    ref = logits["fp32"]
    rows: Dict[str, Dict[str, float]] = {}
    for name, got in logits.items():
        row = {"accuracy": float(np.mean(got.argmax(-1) == labels))}
        if name != "fp32":
            row["accuracy_delta"] = row["accuracy"] - rows["fp32"]["accuracy"]
            row["argmax_agreement"] = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
            row["logits_cosine"] = cosine(ref, got)
            row["max_abs_logit_diff"] = float(np.max(np.abs(got - ref)))
        rows[name] = row
    return rows


# ----------------------------------------------------------------------------------------------------- speed
def speed_paths(backend: str, ckpt: Path, work: Path, threads: int) -> Dict[str, Callable[[Batch], np.ndarray]]:
    """Path name -> ``last_hidden_state`` callable of ``backend``'s BertModel: its fp32 and its int8 paths."""
    from .frameworks import make_forward

    paths = {"fp32": make_forward(backend, "ours", os.fspath(ckpt))}
    if backend == "torch":
        import torch

        import bert_torch
        from bert_torch.export import quantize_dynamic_int8

        int8 = quantize_dynamic_int8(bert_torch.BertModel.from_pretrained(ckpt).eval())

        def torch_ao(x: Batch) -> np.ndarray:
            with torch.inference_mode():
                return int8(**{k: torch.from_numpy(v) for k, v in x.items()}).last_hidden_state.numpy()

        paths["torch.ao int8"] = torch_ao
        runner, _ = _export_runner(ckpt, work, "torch", "onnx", "BertModel", threads, optimize=True, quantize="int8")
        paths["ort int8"] = _runner_output(runner, "last_hidden_state")
    elif backend == "tf":
        runner, _ = _export_runner(ckpt, work, "tf", "tflite", "BertModel", threads, quantize="int8")
        paths["tflite int8"] = _runner_output(runner, "last_hidden_state")
    elif backend == "flax":
        runner, _ = _export_runner(ckpt, work, "flax", "onnx", "BertModel", threads, quantize="int8")
        paths["ort int8"] = _runner_output(runner, "last_hidden_state")
    return paths


def time_paths(paths: Dict[str, Callable[[Batch], np.ndarray]], x: Batch, repeats: int) -> Dict[str, Dict[str, Any]]:
    """Round-robin medians of every path on ``x``; speedup and mean token cosine against ``fp32``."""
    outputs = {k: fn(x) for k, fn in paths.items()}
    timing = time_interleaved({k: (lambda fn=fn: fn(x)) for k, fn in paths.items()}, repeats=repeats)
    base = timing["fp32"]["median_s"]
    return {
        name: {
            "median_s": t["median_s"],
            "speedup_vs_fp32": base / t["median_s"],
            "token_cosine_vs_fp32": _token_cosine(outputs["fp32"], outputs[name]),
            "times_s": t["times_s"],
        }
        for name, t in timing.items()
    }


# ---------------------------------------------------------------------------------------------- XLA int8 probe
def xla_int8_probe(tokens: int = 1024, repeats: int = 10) -> Dict[str, Any]:
    """One bert-base layer's GEMMs at ``tokens`` tokens, float32 ``x @ w`` against dynamic int8 (per-token
    activation scale, per-channel weight scale, int8 x int8 -> int32 ``dot_general``, rescale), jitted, round-robin;
    per shape and for the layer as a whole, plus the HLO op XLA:CPU compiles each int8 / float32 dot to."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    dims = (((1,), (0,)), ((), ()))

    def quantized(h, wq, ws):
        scale = jnp.max(jnp.abs(h), axis=-1, keepdims=True) / 127.0
        hq = jnp.round(h / scale).astype(jnp.int8)
        acc = jax.lax.dot_general(hq, wq, dims, preferred_element_type=jnp.int32)
        return acc.astype(jnp.float32) * scale * ws

    f32 = jax.jit(lambda h, w: h @ w)
    int8 = jax.jit(quantized)
    result: Dict[str, Any] = {"tokens": tokens, "shapes": {}}
    layer = {"fp32": 0.0, "int8": 0.0}
    for k, n, count in ((768, 768, 4), (768, 3072, 1), (3072, 768, 1)):
        h = jnp.asarray(rng.standard_normal((tokens, k)), jnp.float32)
        w = rng.standard_normal((k, n)).astype(np.float32)
        ws = np.max(np.abs(w), axis=0) / 127.0
        wq, ws = jnp.asarray(np.round(w / ws).astype(np.int8)), jnp.asarray(ws)
        w = jnp.asarray(w)
        fns = {
            "fp32": lambda h=h, w=w: f32(h, w).block_until_ready(),
            "int8": lambda h=h, wq=wq, ws=ws: int8(h, wq, ws).block_until_ready(),
        }
        t = time_interleaved(fns, repeats=repeats)
        result["shapes"][f"{k}x{n}"] = {
            "fp32_ms": t["fp32"]["median_s"] * 1e3,
            "int8_ms": t["int8"]["median_s"] * 1e3,
            "int8_speedup": t["fp32"]["median_s"] / t["int8"]["median_s"],
        }
        layer["fp32"] += count * t["fp32"]["median_s"]
        layer["int8"] += count * t["int8"]["median_s"]
    result["layer_gemms_int8_speedup"] = layer["fp32"] / layer["int8"]
    result["hlo_int8_dot"] = _dot_ops(int8.lower(h, wq, ws).compile().as_text())
    result["hlo_fp32_dot"] = _dot_ops(f32.lower(h, w).compile().as_text())
    return result


def _dot_ops(hlo: str) -> List[str]:
    """The instructions of compiled HLO that carry a dot: plain ``dot`` ops and fusions / custom calls, each as
    ``name = type op(...)`` plus the fusion kind XLA:CPU picked (``__ynn_fusion``: XNNPACK's YNN kernels)."""
    ops = []
    for line in hlo.splitlines():
        line = line.strip().removeprefix("ROOT ")
        if " dot(" in line or " fusion(" in line or " custom-call(" in line:
            kind = re.search(r'"kind":"(\w+)"', line)
            ops.append(line.split(", metadata=")[0][:160] + (f" [{kind.group(1)}]" if kind else ""))
    return ops


# ------------------------------------------------------------------------------------------------------- run
def run(
    ckpts: Dict[str, Optional[str]],
    quick: bool,
    threads: int,
    backends: Sequence[str],
    repeats: Optional[int] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Workload (q). ``ckpts``: ``"q_base"`` (the encoder to fine-tune: MiniLM, or the quick tiny text model),
    ``"a"`` (bert-base random) and ``"b"`` (MiniLM) for speed. Returns the JSON record (see the module docstring)."""
    say = progress or (lambda msg: None)
    size = shapes(quick)
    reps = repeats or size["reps"]
    result: Dict[str, Any] = {"threads": threads, "load_average": list(os.getloadavg()), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="bert-bench-quality-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(tmp)
        base = Path(ckpts["q_base"])
        trained, result["fine_tune"] = fine_tune(base, work, quick, say)
        texts, labels = make_examples(vocabulary_words(base), size["n_eval"], size["filler"], seed=11)
        batches = eval_batches(trained, texts)
        result["corpus"] = {"n_texts": len(texts), "length": LENGTH, "label_balance": float(np.mean(labels))}
        for backend in backends:
            say(f"quality: {backend}")
            entry: Dict[str, Any] = {}
            try:
                entry["accuracy"] = judge(classifier_paths(backend, trained, work, threads), batches, labels)
                entry["speed"] = {}
                for key in ("a", "b"):
                    if ckpts.get(key):
                        b, s = size["speed"][key]
                        ckpt = Path(ckpts[key])
                        x = make_batch(b, s, _vocab_size(ckpt))
                        entry["speed"][key] = {
                            "shape": [b, s],
                            "rows": time_paths(speed_paths(backend, ckpt, work, threads), x, reps),
                        }
                if backend == "flax":
                    entry["xla_int8_probe"] = xla_int8_probe(64 if quick else 1024, 2 if quick else 10)
            except Exception as err:  # noqa: BLE001 - one backend's failure is recorded, the others still run
                entry["error"] = f"{type(err).__name__}: {err}"
            result["backends"][backend] = entry
    result["load_average_end"] = list(os.getloadavg())
    return result


def _vocab_size(ckpt: Path) -> int:
    from bert_core.config import BertConfig

    return BertConfig.from_pretrained(ckpt).vocab_size


def targets(result: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """Flat per-backend targets: ``q_<b>_bf16_agreement``, ``q_<b>_bf16_cosine``, ``q_<b>_int8_agreement_<path>``,
    ``q_<b>_int8_accuracy_delta_<path>``, ``int8_vs_fp32_<b>_<path>_<a|b>``."""
    out: Dict[str, Optional[float]] = {}
    for backend, entry in (result.get("backends") or {}).items():
        for path, row in (entry.get("accuracy") or {}).items():
            if path == "bf16":
                out[f"q_{backend}_bf16_agreement"] = row["argmax_agreement"]
                out[f"q_{backend}_bf16_cosine"] = row["logits_cosine"]
            elif path != "fp32":
                tag = _tag(path)
                out[f"q_{backend}_int8_agreement_{tag}"] = row["argmax_agreement"]
                out[f"q_{backend}_int8_accuracy_delta_{tag}"] = row["accuracy_delta"]
        for key, speed in (entry.get("speed") or {}).items():
            for path, row in speed["rows"].items():
                if path != "fp32":
                    out[f"int8_vs_fp32_{backend}_{_tag(path)}_{key}"] = row["speedup_vs_fp32"]
    return out


def _tag(path: str) -> str:
    return path.replace(" int8", "").replace(".", "").replace(" ", "_")


def checks(result: Dict[str, Any], agreement: float, cosine_min: float, speedup: float) -> List[Tuple[str, Any, float]]:
    """(target, measured, threshold) rows for the targets table: bf16 agreement and cosine, int8 agreement, and
    int8 >= ``speedup`` x own fp32 on bert-base (a)."""
    rows: List[Tuple[str, Any, float]] = []
    for backend, entry in (result.get("backends") or {}).items():
        for path, row in (entry.get("accuracy") or {}).items():
            if path == "bf16":
                rows.append((f"{backend} (q) bf16 argmax agreement >= 99%", row["argmax_agreement"], agreement))
                rows.append((f"{backend} (q) bf16 logits cosine >= {cosine_min}", row["logits_cosine"], cosine_min))
            elif path != "fp32":
                rows.append((f"{backend} (q) {path} argmax agreement >= 99%", row["argmax_agreement"], agreement))
        for path, row in ((entry.get("speed") or {}).get("a", {}).get("rows") or {}).items():
            if path != "fp32":
                rows.append(
                    (f"{backend} (q) {path} >= {speedup:g}x own fp32 (bert-base)", row["speedup_vs_fp32"], speedup)
                )
    return rows


def markdown_lines(result: Dict[str, Any]) -> List[str]:
    ft, corpus = result.get("fine_tune") or {}, result.get("corpus") or {}
    lines = [
        "## (q) Low precision on a fine-tuned classifier",
        "",
        f"Fine-tuned {ft.get('steps')} steps x {ft.get('batch')} at {ft.get('length')} tokens (torch Trainer, "
        f"{_num(ft.get('seconds'), '{:.0f}')} s, train loss {_num(ft.get('train_loss'), '{:.3f}')}); held-out corpus "
        f"{corpus.get('n_texts')} texts. Load average {', '.join(f'{v:.1f}' for v in result.get('load_average', []))}.",
        "",
        "| backend | path | accuracy | Δ vs fp32 | argmax agreement | logits cosine | × fp32 bert-base 8x128 | × fp32 MiniLM 32x128 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, entry in (result.get("backends") or {}).items():
        if "error" in entry:
            lines.append(f"| {backend} | error: {entry['error'][:200]} | | | | | | |")
            continue
        speed = entry.get("speed") or {}
        for path, row in entry["accuracy"].items():
            # bf16 speed is measured by workloads a and b
            ratios = [_num((speed.get(k, {}).get("rows") or {}).get(path, {}).get("speedup_vs_fp32")) for k in "ab"]
            lines.append(
                f"| {backend} | {path} | {row['accuracy']:.4f} | {_num(row.get('accuracy_delta'), '{:+.4f}')} | "
                f"{_num(row.get('argmax_agreement'), '{:.4f}')} | {_num(row.get('logits_cosine'), '{:.5f}')} | "
                f"{ratios[0]} | {ratios[1]} |"
            )
    probe = (result.get("backends", {}).get("flax") or {}).get("xla_int8_probe")
    if probe:
        per = ", ".join(f"{k} {v['int8_speedup']:.2f}x" for k, v in probe["shapes"].items())
        lines += [
            "",
            f"XLA:CPU int8 probe ({probe['tokens']} tokens): int8 vs fp32 GEMM {per}; one layer's GEMMs "
            f"{probe['layer_gemms_int8_speedup']:.2f}x.",
        ]
    return lines + [""]


def _num(v: Any, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)
