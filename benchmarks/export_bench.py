"""Workload (i) of ``bert bench``: deployment runtimes against our torch fp32 (and HF torch fp32 where importable).

Per model (bert-base random-init from its config, batch 8 x 128; MiniLM-L6 real weights, 32 x 128), BertModel,
one process, fixed threads, round-robin timing (:func:`benchmarks.workloads.time_interleaved`):

* ``torch fp32``: our bert_torch model (the reference of every ratio and accuracy figure);
* ``hf torch fp32``: ``transformers.BertModel`` on the same weights, when transformers is importable;
* ``ort fp32``: ``bert export --to onnx`` in onnxruntime; ``ort optimized``: with ``--optimize``;
* ``ort int8``: ``--optimize --quantize int8`` (dynamic, per-channel QInt8 weights);
* ``torch.ao int8``: :func:`bert_torch.export.quantize_dynamic_int8` (dynamic int8 ``nn.Linear``), in-process.

Accuracy next to speed: max|Δ| and mean token-vector cosine of ``last_hidden_state`` against ours, on the timed
batch (all positions are real tokens there).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np


def _token_cosine(ref: np.ndarray, got: np.ndarray) -> float:
    a = ref.reshape(-1, ref.shape[-1]).astype(np.float64)
    b = got.reshape(-1, got.shape[-1]).astype(np.float64)
    return float(np.mean(np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))))


def _contenders(model_dir: Path, work: Path, threads: int, hf: bool) -> Dict[str, Callable[[Dict], np.ndarray]]:
    import torch

    import bert_torch
    from bert_core.export import export
    from bert_core.export.onnx import OnnxRunner
    from bert_torch.export import quantize_dynamic_int8

    torch.set_num_threads(threads)
    ours = bert_torch.BertModel.from_pretrained(model_dir)

    def torch_fn(model):
        def run(x):
            with torch.inference_mode():
                return model(**{k: torch.from_numpy(v) for k, v in x.items()}).last_hidden_state.numpy()

        return run

    fns: Dict[str, Callable[[Dict], np.ndarray]] = {"torch fp32": torch_fn(ours)}
    if hf:
        import transformers

        fns["hf torch fp32"] = torch_fn(transformers.BertModel.from_pretrained(model_dir, attn_implementation="sdpa"))
    for label, kwargs in (
        ("ort fp32", {}),
        ("ort optimized", {"optimize": True}),
        ("ort int8", {"optimize": True, "quantize": "int8"}),
    ):
        out = work / label.replace(" ", "-")
        export(model_dir, out, backend="torch", to="onnx", head="BertModel", **kwargs)
        runner = OnnxRunner(out / "model.onnx", threads=threads)
        fns[label] = lambda x, r=runner: r(x)["last_hidden_state"]
    fns["torch.ao int8"] = torch_fn(quantize_dynamic_int8(ours))
    return fns


def run_model(model_dir: Path, batch: int, length: int, threads: int, repeats: int, hf: bool) -> Dict[str, Any]:
    """Time every contender on one (batch, length) input of ``model_dir``; accuracy against ``torch fp32``."""
    from bert_core.config import BertConfig

    from .workloads import make_batch, time_interleaved

    config = BertConfig.from_pretrained(model_dir)
    x = make_batch(batch, length, config.vocab_size)
    with tempfile.TemporaryDirectory(prefix="bert-bench-export-") as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fns = _contenders(Path(model_dir), Path(work), threads, hf)
        outputs = {k: fn(x) for k, fn in fns.items()}
        timing = time_interleaved({k: (lambda fn=fn: fn(x)) for k, fn in fns.items()}, repeats=repeats)
    ref = outputs["torch fp32"]
    base = timing["torch fp32"]["median_s"]
    rows = {}
    for name, t in timing.items():
        rows[name] = {
            "median_s": t["median_s"],
            "speedup_vs_torch_fp32": base / t["median_s"],
            "max_abs_vs_torch_fp32": float(np.max(np.abs(outputs[name] - ref))),
            "token_cosine_vs_torch_fp32": _token_cosine(ref, outputs[name]),
            "times_s": t["times_s"],
        }
    return {"shape": [batch, length], "rows": rows, "hf": hf}


def run(ckpts: Dict[str, str], quick: bool, threads: int, repeats: int, hf: bool) -> Dict[str, Any]:
    """Workload (i): ``ckpts["a"]`` (bert-base random, 8 x 128) and ``ckpts["b"]`` (MiniLM, 32 x 128)."""
    shapes = {"a": (2, 16) if quick else (8, 128), "b": (2, 16) if quick else (32, 128)}
    result: Dict[str, Any] = {"hf": hf, "hf_note": None if hf else "transformers is not importable: no HF column"}
    for key, (b, s) in shapes.items():
        if ckpts.get(key):
            result[key] = run_model(Path(ckpts[key]), b, s, threads, repeats, hf)
    return result


def markdown_lines(result: Dict[str, Any]) -> List[str]:
    lines = ["## (i) Export runtimes (BertModel, CPU)", ""]
    if result.get("hf_note"):
        lines += [f"_{result['hf_note']}_", ""]
    for key, label in (("a", "bert-base random"), ("b", "MiniLM-L6")):
        if key not in result:
            continue
        r = result[key]
        lines += [
            f"{label}, batch {r['shape'][0]} x {r['shape'][1]}:",
            "",
            "| runtime | median ms | speedup vs torch fp32 | max abs diff | token cosine |",
            "|---|---|---|---|---|",
        ]
        for name, row in r["rows"].items():
            lines.append(
                f"| {name} | {row['median_s'] * 1e3:.1f} | {row['speedup_vs_torch_fp32']:.2f} | "
                f"{row['max_abs_vs_torch_fp32']:.2e} | {row['token_cosine_vs_torch_fp32']:.5f} |"
            )
        lines.append("")
    return lines
