"""``bert export --verify``: run an exported artifact in its own runtime against the framework model it came from.

The artifact (``OUT``, written by :func:`bert_core.export.export`) runs in onnxruntime, ``torch.export.load``,
LiteRT, ``tf.saved_model.load`` or ``jax.export`` (:func:`bert_core.export.load_runner`); the reference is the same
backend's head loaded from ``MODEL_DIR`` (eval mode), run through its conformance adapter. Cases
(:func:`export_cases`): batch 1 and 3, two sequence lengths, sentence pairs (token_type_ids 0/1), rows padded by
different amounts, and for multiple choice a choices axis.

Judging (one policy, :mod:`conformance.tolerance`):

* fp32 artifacts: the project's policy unchanged, ``max|Δ| <= rtol * (1 + max|ref|)`` per output (rtol 1e-5),
  ``--optimize`` graphs included. No looser factor is needed: the fusions ``--optimize`` applies (SkipLayerNorm,
  BiasGelu) are the ones onnxruntime's session applies at load time anyway (ORT_ENABLE_ALL), so optimized and
  plain graphs give the same numbers (measured on MiniLM: max|Δ| 4.5e-6 against a bound of 7.2e-5, both).
* int8 artifacts: weights rounded to 8 bits move every output by ~1e-2 relative, far beyond any fp32 bound, so
  they are judged by what serving needs: cosine similarity of each output with the fp32 reference
  (>= :data:`INT8_MIN_COSINE`) and agreement of the argmax over the last axis for logits
  (>= :data:`INT8_MIN_ARGMAX`), numbers printed either way.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from bert_core.config import BertConfig
from bert_core.export import OUTPUT_NAMES, ExportError, load_runner, read_manifest

from .runner import Report
from .tolerance import DEFAULT_TOLERANCE, Comparison, Tolerance, compare

INT8_MIN_COSINE = 0.99
INT8_MIN_ARGMAX = 0.9
#: last-axis length from which int8 judging compares each vector on its own (token vectors, vocabulary logits)
PER_VECTOR_MIN = 16
#: outputs with no class axis: int8 judges them by cosine only
_NO_ARGMAX = ("last_hidden_state", "pooler_output")


def _lengths(config: BertConfig) -> Tuple[int, int]:
    limit = config.max_position_embeddings
    return min(7, limit), min(19, limit)


def export_cases(head: str, config: BertConfig, seed: int = 0) -> "OrderedDict[str, Dict[str, np.ndarray]]":
    """The verify battery of ``head`` (int64 inputs named like the artifact's): name -> inputs.

    ``b1_s7``: one unpadded single sentence; ``b3_s7_pair`` / ``b3_s19_pair``: three sentence pairs, rows padded
    by 0, 2 and 4 tokens; ``b1_s19_pair``: one unpadded pair. Multiple choice: (batch, 2 choices, sequence).
    """
    rng = np.random.default_rng([seed, len(head)])
    short, long_ = _lengths(config)
    mc = head == "BertForMultipleChoice"
    cases: "OrderedDict[str, Dict[str, np.ndarray]]" = OrderedDict()
    for batch, seq, pair in ((1, short, False), (3, short, True), (3, long_, True), (1, long_, True)):
        lead = (batch, 2) if mc else (batch,)
        ids = rng.integers(1, max(2, config.vocab_size), size=lead + (seq,)).astype(np.int64)
        if config.pad_token_id is not None:
            ids[ids == config.pad_token_id] = (config.pad_token_id + 1) % config.vocab_size
        mask = np.ones_like(ids)
        for row in range(1, batch):
            mask[row, ..., seq - min(2 * row, seq - 1) :] = 0
        types = np.zeros_like(ids)
        if pair and config.type_vocab_size > 1:
            types[..., seq // 2 :] = 1
        name = f"b{batch}_s{seq}" + ("_pair" if pair else "")
        cases[name] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return cases


def _vectors(value: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The vectors of an output that int8 judging compares: its rows along the last axis (token vectors at the
    unpadded positions only, when the output has the inputs' (batch, [choices,] sequence) dims in front)."""
    value = np.asarray(value, np.float64)
    if value.ndim > mask.ndim and value.shape[: mask.ndim] == mask.shape:
        return value[mask.astype(bool)]
    return value.reshape(-1, value.shape[-1]) if value.ndim else value.reshape(1, 1)


def int8_comparisons(
    name: str, ref: np.ndarray, got: np.ndarray, attention_mask: np.ndarray
) -> List[Tuple[str, Comparison]]:
    """An int8 output against fp32: mean cosine of its vectors (:func:`_vectors`; >= :data:`INT8_MIN_COSINE`) and,
    for logits, agreement of their argmax (>= :data:`INT8_MIN_ARGMAX`). Outputs with fewer than
    :data:`PER_VECTOR_MIN` entries on the last axis (2-3 class logits) are compared as one vector: the cosine of a
    near-zero 2-vector says nothing. ``max_abs`` holds 1 - cosine and 1 - agreement; ``note`` the numbers, with
    the worst single vector's cosine and max|Δ|."""
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return [(name, Comparison(math.inf, 0.0, False, f"shape {ref.shape} vs {got.shape}"))]
    delta = float(np.max(np.abs(ref.astype(np.float64) - got))) if ref.size else 0.0
    a, b = _vectors(ref, attention_mask), _vectors(got, attention_mask)
    if a.shape[-1] < PER_VECTOR_MIN:
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    cosines = np.where(norms > 0, np.sum(a * b, -1) / np.where(norms > 0, norms, 1.0), 1.0)
    cos, low = float(np.mean(cosines)), float(np.min(cosines))
    note = f"cosine {cos:.4f} (worst vector {low:.4f}), max|Δ| {delta:.3g}"
    rows = [(f"{name}.cosine", Comparison(1.0 - cos, 1.0 - INT8_MIN_COSINE, cos >= INT8_MIN_COSINE, note))]
    if name not in _NO_ARGMAX and ref.ndim >= 1 and ref.shape[-1] > 1:
        agree = float(
            np.mean(np.argmax(_vectors(ref, attention_mask), -1) == np.argmax(_vectors(got, attention_mask), -1))
        )
        note = f"argmax agreement {agree:.1%}"
        rows.append((f"{name}.argmax", Comparison(1.0 - agree, 1.0 - INT8_MIN_ARGMAX, agree >= INT8_MIN_ARGMAX, note)))
    return rows


def runtime_label(manifest: Mapping[str, Any]) -> str:
    """The column of an artifact in tables: ``onnx``, ``onnx+opt``, ``onnx+int8``, ``torch-export``..."""
    label = manifest["format"]
    if manifest.get("optimize"):
        label += "+opt"
    if manifest.get("quantize"):
        label += f"+{manifest['quantize']}"
    return label


def verify_export(
    model_dir: Any,
    out: Any,
    *,
    tolerance: Optional[Tolerance] = None,
    seed: int = 0,
    report: Optional[Report] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Report:
    """Compare the artifact in ``out`` with ``model_dir``'s head in the exporting backend, on :func:`export_cases`.

    Args:
        model_dir: the checkpoint directory the artifact was exported from.
        out: the export directory (``export.json`` says backend, format, head, quantization).
        tolerance: the fp32 policy (default: the project's).
        report: add the rows to this report (``bert parity --runtimes``) instead of a new one.

    Returns:
        a :class:`conformance.runner.Report`; rows: section "outputs", pair ``<backend>~<runtime label>``, field
        ``<output>`` (fp32) or ``<output>.cosine`` / ``<output>.argmax`` (int8).
    """
    from .adapters import get_adapter

    start = time.perf_counter()
    say = progress or (lambda msg: None)
    tol = DEFAULT_TOLERANCE if tolerance is None else tolerance
    out, model_dir = Path(out), Path(model_dir)
    manifest = read_manifest(out)
    backend, head = manifest["backend"], manifest["head"]
    if head not in OUTPUT_NAMES:
        raise ExportError(f"{out}/export.json names an unknown head {head!r}")
    pair = f"{backend}~{runtime_label(manifest)}"
    if report is None:
        report = Report(str(model_dir), [backend, runtime_label(manifest)], [head], tol)
        report.extra["export"] = dict(manifest)
    say(f"loading {head} ({backend}) from {model_dir} and the {manifest['format']} artifact")
    adapter = get_adapter(backend)
    model = adapter.load(head, str(model_dir))
    runner = load_runner(out, manifest)
    config = BertConfig.from_pretrained(model_dir)
    decoder = head in ("BertModel", "BertLMHeadModel")
    for case, inputs in export_cases(head, config, seed).items():
        try:
            got = runner(inputs)
        except Exception as err:  # noqa: BLE001 - a case the artifact cannot run fails its row, the others still run
            report.error("outputs", head, case, pair, err)
            continue
        ref_all = adapter.forward(model, dict(inputs, **({"use_cache": False} if decoder else {})))
        for name in OUTPUT_NAMES[head]:
            if name not in got:
                report.add("outputs", head, case, name, pair, Comparison(math.inf, 0.0, False, "missing in artifact"))
                continue
            if manifest.get("quantize"):
                for field, cmp in int8_comparisons(name, ref_all[name], got[name], inputs["attention_mask"]):
                    report.add("outputs", head, case, field, pair, cmp)
            else:
                report.add("outputs", head, case, name, pair, compare(ref_all[name], got[name], tol))
    report.seconds += time.perf_counter() - start
    return report


def format_verify(report: Report) -> str:
    """Per output: the worst max|Δ| over the cases with its bound (fp32), or the worst cosine / argmax agreement
    (int8), then PASS/FAIL."""
    worst: "OrderedDict[Tuple[str, str, str], Any]" = OrderedDict()
    for row in report.rows:
        key = (row.pair, row.head, row.field)
        held = worst.get(key)
        if held is None or (held.passed, row.max_abs) > (row.passed, held.max_abs):  # failing first, then largest
            worst[key] = row
    lines = [
        f"verify {report.checkpoint} -> {', '.join(report.backends[1:])} ({report.extra.get('export', {}).get('runtime', '')})"
    ]
    lines.extend(report.notes)
    for (pair, head, field), row in worst.items():
        if row.section == "error":
            lines.append(f"  {pair:<22} {head}/{row.case}: raised {row.note}")
        elif field.endswith((".cosine", ".argmax")):
            lines.append(f"  {pair:<22} {head} {field:<28} {row.note:<36} {'pass' if row.passed else 'FAIL'}")
        else:
            value = "inf" if math.isinf(row.max_abs) else f"{row.max_abs:.2e}"
            lines.append(
                f"  {pair:<22} {head} {field:<28} max|Δ| {value} <= {row.limit:.2e}  {'pass' if row.passed else 'FAIL'}"
                + (f" ({row.note})" if row.note else "")
            )
    failures = report.failures
    lines.append(
        f"{'PASS' if report.passed else 'FAIL'}: {len(report.rows) - len(failures)}/{len(report.rows)} checks over "
        f"{len({r.case for r in report.rows})} cases ({report.seconds:.1f} s)"
    )
    return "\n".join(lines)


#: runtime column of ``bert parity --runtimes`` -> the backend that exports it
RUNTIME_BACKENDS: Dict[str, str] = {
    "onnx": "torch",
    "torch-export": "torch",
    "savedmodel": "tf",
    "tflite": "tf",
    "stablehlo": "flax",
}


def parse_runtimes(text: Optional[str]) -> List[str]:
    """``"onnx,tflite"`` -> ["onnx", "tflite"]; ValueError naming an unknown runtime or a backend that is missing."""
    import importlib.util

    from bert_core.backends import BACKENDS, check_installed

    names = [t.strip().lower() for t in (text or "").split(",") if t.strip()]
    if not names:
        raise ValueError(f"--runtimes expects a comma-separated list of {', '.join(RUNTIME_BACKENDS)}")
    for name in names:
        if name not in RUNTIME_BACKENDS:
            raise ValueError(f"--runtimes: unknown runtime {name!r}; expected some of {', '.join(RUNTIME_BACKENDS)}")
        backend = check_installed(RUNTIME_BACKENDS[name])
        module = f"{BACKENDS[backend].package}.export"
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"--runtimes {name}: {module} is not available in this installation")
    return list(dict.fromkeys(names))


def add_runtime_columns(
    report: Report,
    checkpoint: Any,
    runtimes: List[str],
    *,
    tolerance: Optional[Tolerance] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Report:
    """``bert parity --runtimes``: export every head of ``report`` to each runtime (into a temporary directory) and
    verify it against its backend (:func:`verify_export`), adding a ``<backend>~<runtime>`` column. A head a format
    cannot carry by design (an :class:`ExportError`) is listed under the table, not failed."""
    import tempfile

    from bert_core.checkpoint import save_pretrained
    from bert_core.export import export

    from .cases import head_config
    from .default import load_checkpoint_any

    say = progress or (lambda msg: None)
    start = time.perf_counter()
    ckpt = load_checkpoint_any(checkpoint)
    with tempfile.TemporaryDirectory(prefix="bert-parity-runtimes-") as tmp, warnings.catch_warnings():
        # the parity table already says which head weights are seeded; the exporters' loads would repeat it per cell
        warnings.simplefilter("ignore", UserWarning)
        dirs: Dict[int, Path] = {}
        for runtime in runtimes:
            backend = RUNTIME_BACKENDS[runtime]
            for head in report.heads:
                t0 = time.perf_counter()
                config = head_config(ckpt.config, head)  # QA runs with 2 labels, as in the parity battery
                if config.num_labels not in dirs:
                    dirs[config.num_labels] = save_pretrained(
                        Path(tmp) / f"labels{config.num_labels}", config, ckpt.state
                    )
                model_dir, out = dirs[config.num_labels], Path(tmp) / f"{runtime}-{head}"
                try:
                    export(model_dir, out, backend=backend, to=runtime, head=head)
                except ExportError as err:
                    report.notes.append(f"{runtime} cannot carry {head}: {err}")
                    continue
                except Exception as err:  # noqa: BLE001 - a failing export fails its cell, the others still run
                    report.error("outputs", head, "export", f"{backend}~{runtime}", err)
                    continue
                verify_export(model_dir, out, tolerance=tolerance or report.tolerance, report=report)
                say(f"{runtime} {head}: exported and verified ({time.perf_counter() - t0:.1f} s)")
    report.seconds += time.perf_counter() - start
    return report
