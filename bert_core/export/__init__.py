"""``bert export``: a trained head out to a deployment runtime, all or nothing, with a manifest (framework-free).

One table says which backend writes which format (:data:`FORMATS`); each backend's ``bert_<backend>.export``
module writes and loads its artifacts (``export_model`` / ``load_artifact``); this module validates the request,
builds the head with the backend's ``from_pretrained``, has the backend write the artifact into a staged
directory, post-processes ONNX (``--optimize``: onnxruntime's transformer fusions, ``--quantize int8``: dynamic
int8 weights), runs the artifact once in its own runtime (an artifact that does not load is never committed),
writes ``export.json`` and copies ``config.json`` and the tokenizer files so that the directory serves on its own.

    >>> from bert_core.export import export
    >>> result = export("my-model", "my-model-onnx", backend="torch", to="onnx", head="BertForSequenceClassification")
    >>> result.manifest["outputs"]
    [{'name': 'logits', 'dtype': 'float32', 'dims': ['batch', 2]}]

Artifact layout (inside OUT): ``model.onnx`` | ``model.pt2`` | ``model.tflite`` | SavedModel files
(``saved_model.pb``, ``variables/``) | ``model.stablehlo`` (+ ``params.safetensors``), plus ``export.json``,
``config.json`` and the tokenizer files. Inputs are named ``input_ids``, ``attention_mask``, ``token_type_ids``:
(batch, sequence), or (batch, choices, sequence) for BertForMultipleChoice; outputs are the head's output fields
in HF order (:data:`OUTPUT_NAMES`), without hidden states, attentions or a cache.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..backends import BACKENDS, BackendUnavailable, check_installed, distribution_version
from ..weights import HEADS

PathLike = Union[str, os.PathLike]

__all__ = [
    "ExportError",
    "ExportResult",
    "FORMATS",
    "FORMAT_FILES",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "QUANTIZE_CHOICES",
    "QUANTIZE_FORMATS",
    "MANIFEST_NAME",
    "TOKENIZER_FILES",
    "check_quantize_request",
    "export",
    "input_dims",
    "load_runner",
    "read_manifest",
    "resolve_head",
    "sample_inputs",
]


class ExportError(ValueError):
    """A request ``bert export`` cannot carry out (bad argument, a format that cannot carry a head, a runtime that
    is not installed); the message names the cause. The CLI prints it on one line and exits 2."""


#: backend -> the formats it writes (the first is its default runtime format)
FORMATS: Dict[str, Tuple[str, ...]] = {
    "torch": ("onnx", "torch-export"),
    "tf": ("savedmodel", "onnx", "tflite"),
    "flax": ("stablehlo", "onnx"),
}
#: format -> the artifact file(s) or entries it puts in OUT
FORMAT_FILES: Dict[str, Tuple[str, ...]] = {
    "onnx": ("model.onnx",),
    "torch-export": ("model.pt2",),
    "tflite": ("model.tflite",),
    "savedmodel": ("saved_model.pb", "variables"),
    "stablehlo": ("model.stablehlo",),
}
#: format -> the runtime that runs it (for messages and the manifest)
FORMAT_RUNTIMES: Dict[str, str] = {
    "onnx": "onnxruntime",
    "torch-export": "torch.export.load",
    "tflite": "LiteRT interpreter",
    "savedmodel": "tf.saved_model.load",
    "stablehlo": "jax.export.deserialize",
}
QUANTIZE_CHOICES: Tuple[str, ...] = ("int8",)
#: format -> how ``--quantize int8`` quantizes it (every one dynamic: int8 weights, activations quantized at run time)
QUANTIZE_FORMATS: Dict[str, str] = {
    "onnx": "onnxruntime quantize_dynamic (int8 weights per output channel)",
    "tflite": "TFLite dynamic-range quantization (int8 weights per output channel)",
}
#: format -> where its users find int8 instead (the --quantize refusal names it)
_QUANTIZE_ELSEWHERE: Dict[str, str] = {
    "torch-export": (
        "torch.export cannot trace torch.ao's dynamic int8 Linear (its packed weights are a TorchScript object); "
        "use --to onnx --quantize int8, or bert_torch.export.quantize_dynamic_int8(model) in-process"
    ),
    "savedmodel": "a SavedModel runs float32; use --to tflite --quantize int8 or --to onnx --quantize int8",
    "stablehlo": (
        "a StableHLO artifact runs float32 (bert_flax has no int8 model); "
        "use --to onnx --quantize int8 (jax2onnx, then onnxruntime's int8 kernels)"
    ),
}
MANIFEST_NAME = "export.json"
MANIFEST_VERSION = 1
TOKENIZER_FILES: Tuple[str, ...] = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
INPUT_NAMES: Tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
#: head -> output names, the fields of its output dataclass in HF order (no loss, hidden states, attentions, cache)
OUTPUT_NAMES: Dict[str, Tuple[str, ...]] = {
    "BertModel": ("last_hidden_state", "pooler_output"),
    "BertForPreTraining": ("prediction_logits", "seq_relationship_logits"),
    "BertLMHeadModel": ("logits",),
    "BertForMaskedLM": ("logits",),
    "BertForNextSentencePrediction": ("logits",),
    "BertForSequenceClassification": ("logits",),
    "BertForMultipleChoice": ("logits",),
    "BertForTokenClassification": ("logits",),
    "BertForQuestionAnswering": ("start_logits", "end_logits"),
}
_HEAD_ALIASES: Dict[str, str] = {h.lower(): h for h in HEADS}
_HEAD_ALIASES.update({h[len("BertFor") :].lower(): h for h in HEADS if h.startswith("BertFor")})
_HEAD_ALIASES.update({"model": "BertModel", "lmhead": "BertLMHeadModel", "mlm": "BertForMaskedLM"})
_HEAD_ALIASES.update({"nsp": "BertForNextSentencePrediction", "qa": "BertForQuestionAnswering"})


def check_backend_request(backend: str, formats: Sequence[str], fmt: str, out_dir: Optional[Path] = None) -> None:
    """The checks every ``bert_<backend>.export.export_model`` makes, in one wording: ``fmt`` among ``formats`` and
    (when given) ``out_dir`` an existing empty directory. Raises :class:`ExportError`."""
    if fmt not in formats:
        raise ExportError(
            f"format {fmt!r} is not written by the {backend} backend; expected one of {', '.join(formats)}"
        )
    if out_dir is not None:
        if not out_dir.is_dir():
            raise ExportError(f"output directory {os.fspath(out_dir)!r} does not exist")
        if any(out_dir.iterdir()):
            raise ExportError(f"output directory {os.fspath(out_dir)!r} is not empty")


def check_quantize_request(backend: str, fmt: str, quantize: Optional[str], formats: Sequence[str]) -> None:
    """``quantize`` among :data:`QUANTIZE_CHOICES` and ``fmt`` among ``formats`` (the formats that can carry it for
    ``backend``), in one wording for the core and every backend. Raises :class:`ExportError`."""
    if quantize is None:
        return
    if quantize not in QUANTIZE_CHOICES:
        raise ExportError(f"--quantize {quantize!r} is not supported; expected one of {', '.join(QUANTIZE_CHOICES)}")
    if fmt not in formats:
        where = f"; {_QUANTIZE_ELSEWHERE[fmt]}" if fmt in _QUANTIZE_ELSEWHERE else ""
        raise ExportError(
            f"--quantize {quantize} applies to --to {' or '.join(formats)} with backend {backend!r}, not {fmt!r}{where}"
        )


def input_dims(head: str) -> Tuple[str, ...]:
    """Symbolic dims of every input of ``head``: (batch, sequence), or (batch, choices, sequence)."""
    return ("batch", "choices", "sequence") if head == "BertForMultipleChoice" else ("batch", "sequence")


def resolve_head(head: Optional[str], architectures: Optional[List[str]] = None) -> str:
    """A head name or alias (``SequenceClassification``, ``qa``, ``mlm``...) -> the class name; None -> the first
    known entry of the config's ``architectures``, else ``BertModel``."""
    if head is None:
        known = [a for a in (architectures or []) if a in HEADS]
        return known[0] if known else "BertModel"
    name = _HEAD_ALIASES.get(str(head).strip().lower())
    if name is None:
        raise ExportError(f"--head {head!r} is not a BERT head; expected one of {', '.join(HEADS)}")
    return name


def backend_export_module(backend: str) -> Any:
    """``bert_<backend>.export`` (imports the framework)."""
    return importlib.import_module(f"{BACKENDS[backend].package}.export")


def _check_request(backend: str, to: str, head: str, opset, quantize, optimize) -> str:
    try:
        backend = check_installed(backend)
    except BackendUnavailable as err:
        raise ExportError(str(err)) from None
    if to not in FORMATS[backend]:
        others = [b for b, fmts in FORMATS.items() if to in fmts]
        where = f" (written by {', '.join(others)})" if others else ""
        raise ExportError(
            f"--to {to!r} is not a format of backend {backend!r}{where}; expected one of {', '.join(FORMATS[backend])}"
        )
    if opset is not None:
        if to != "onnx":
            raise ExportError(f"--opset applies to --to onnx only, not {to!r}")
        if not isinstance(opset, int) or isinstance(opset, bool) or not 13 <= opset <= 25:
            raise ExportError(f"--opset must be an integer in [13, 25], got {opset!r}")
    check_quantize_request(backend, to, quantize, [f for f in FORMATS[backend] if f in QUANTIZE_FORMATS])
    if optimize and to != "onnx":
        raise ExportError(f"--optimize is onnxruntime's graph optimizer and applies to --to onnx only, not {to!r}")
    return backend


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"output {os.fspath(out)!r} is a file; expected a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise ExportError(
            f"output directory {os.fspath(out)!r} is not empty and holds no previous export ({MANIFEST_NAME}); "
            "choose an empty or new directory"
        )


@dataclass
class ExportResult:
    """What :func:`export` wrote. ``files``: every file under ``out`` (relative paths); ``fusions``: the operator
    counts onnxruntime's optimizer reported (``--optimize``), else None; ``seconds``: wall time of the export."""

    out: Path
    backend: str
    format: str
    head: str
    files: List[str]
    manifest: Dict[str, Any]
    fusions: Optional[Dict[str, int]] = None
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)


def sample_inputs(
    head: str, batch: int = 2, seq: int = 8, vocab_size: int = 100, seed: int = 0, choices: int = 2
) -> Dict[str, np.ndarray]:
    """Deterministic int64 inputs for ``head``: random ids, a padded last row, a sentence-pair token type split;
    (batch, seq), or (batch, choices, seq) for multiple choice."""
    rng = np.random.default_rng(seed)
    lead = (batch, choices) if head == "BertForMultipleChoice" else (batch,)
    ids = rng.integers(1, max(2, vocab_size), size=lead + (seq,)).astype(np.int64)
    mask = np.ones_like(ids)
    if batch > 1 and seq > 2:
        mask[-1, ..., seq - seq // 3 :] = 0
    types = np.zeros_like(ids)
    types[..., seq // 2 :] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _output_dims(first: Tuple[int, ...], second: Optional[Tuple[int, ...]], head: str) -> List[Any]:
    """Dims of an output seen at two input shapes: those that moved with the inputs get the input's dim names (in
    order), the others stay numbers (hidden size, labels). ``second`` None: the artifact ran at one shape only."""
    names = list(input_dims(head))
    dims: List[Any] = []
    for i, size in enumerate(first):
        if second is not None and i < len(second) and second[i] != size and i < len(names):
            dims.append(names[i])
        else:
            dims.append(int(size))
    return dims


def load_runner(out: PathLike, manifest: Optional[Mapping[str, Any]] = None) -> Callable[..., Dict[str, np.ndarray]]:
    """The artifact in ``out`` as a callable ``{input name: array} -> {output name: array}`` in its own runtime:
    onnxruntime for ONNX, else ``bert_<backend>.export.load_artifact``."""
    out = Path(out)
    manifest = dict(manifest or read_manifest(out))
    fmt, backend = manifest["format"], manifest["backend"]
    if fmt == "onnx":
        from .onnx import OnnxRunner

        return OnnxRunner(out / "model.onnx")
    return backend_export_module(backend).load_artifact(out, fmt)


def read_manifest(out: PathLike) -> Dict[str, Any]:
    """``OUT/export.json`` as a dict; ExportError when missing or unreadable."""
    path = Path(out) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{os.fspath(Path(out))!r} holds no {MANIFEST_NAME}: not a `bert export` directory") from None
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot read {os.fspath(path)!r}: {err}") from None
    if not isinstance(data, dict) or "format" not in data or "backend" not in data:
        raise ExportError(f"{os.fspath(path)!r} is not an export manifest (no format/backend)")
    return data


def _post_process_onnx(
    path: Path, config, *, optimize: bool, quantize: Optional[str], workdir: Path
) -> Tuple[Optional[Dict[str, int]], Dict[str, Any]]:
    """``--optimize`` then ``--quantize int8`` on ``path`` in place; returns (fusions, extra manifest fields)."""
    from .onnx import optimize_onnx, quantize_onnx_int8

    fusions = None
    extra: Dict[str, Any] = {}
    if optimize:
        tmp = workdir / "optimized.onnx"
        fusions = optimize_onnx(path, tmp, num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
        shutil.move(os.fspath(tmp), os.fspath(path))
        extra["fusions"] = fusions
    if quantize == "int8":
        tmp = workdir / "quantized.onnx"
        extra["quantization"] = quantize_onnx_int8(path, tmp)
        shutil.move(os.fspath(tmp), os.fspath(path))
    return fusions, extra


def export(
    model_dir: PathLike,
    out: PathLike,
    *,
    backend: str,
    to: str,
    head: Optional[str] = None,
    opset: Optional[int] = None,
    quantize: Optional[str] = None,
    optimize: bool = False,
    progress: Optional[Callable[[str], None]] = None,
) -> ExportResult:
    """Export the checkpoint in ``model_dir`` as ``head`` from ``backend`` to format ``to`` into ``out``.

    Args:
        model_dir: a local HF-style directory (``config.json`` + weights; tokenizer files are copied if present).
        out: the output directory: new, empty, or a previous export (replaced as a whole, all or nothing).
        backend: "torch", "tf" or "flax" (aliases accepted).
        to: a format of :data:`FORMATS` ``[backend]``.
        head: a head name or alias (default: the config's architecture, else BertModel).
        opset: ONNX opset (default: the exporter's).
        quantize: "int8": dynamic int8 weights, for the formats of :data:`QUANTIZE_FORMATS` (ONNX: onnxruntime
            ``quantize_dynamic`` on the written graph; TFLite: the converter's dynamic-range quantization).
        optimize: ONNX only: onnxruntime's transformer optimizer (attention / LayerNorm / GELU fusion).

    Returns:
        :class:`ExportResult`. Raises :class:`ExportError` for a request that cannot be carried out.
    """
    from ..config import BertConfig
    from ..io_utils import staged_directory

    start = time.perf_counter()
    say = progress or (lambda msg: None)
    to = str(to).strip().lower()
    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"model directory {os.fspath(model_dir)!r} has no config.json")
    config = BertConfig.from_pretrained(model_dir)
    head = resolve_head(head, getattr(config, "architectures", None))
    backend = _check_request(backend, to, head, opset, quantize, optimize)
    _check_out(out)
    module = backend_export_module(backend)
    if to not in getattr(module, "FORMATS", ()):
        raise ExportError(f"{BACKENDS[backend].package}.export does not write {to!r}")
    in_backend = bool(quantize) and to != "onnx"  # quantized by the backend's converter, not by onnxruntime here
    if in_backend and to not in getattr(module, "QUANTIZE_FORMATS", ()):
        raise ExportError(f"{BACKENDS[backend].package}.export does not quantize {to!r}")
    say(f"building {head} from {model_dir} ({backend})")
    model = getattr(importlib.import_module(BACKENDS[backend].package), head).from_pretrained(os.fspath(model_dir))
    notes: List[str] = []
    fusions = None
    with tempfile.TemporaryDirectory(prefix="bert-export-") as work, staged_directory(out, replace=("*",)) as stage:
        say(f"writing {to} ({FORMAT_RUNTIMES[to]})")
        extra: Dict[str, Any] = {}
        fusion_exporter = getattr(module, "FUSION_EXPORTER", None) if to == "onnx" and optimize else None
        if fusion_exporter:  # the exporter whose graph onnxruntime's attention fusion recognises
            module.export_model(model, stage, to, opset=opset, exporter=fusion_exporter)
            extra["onnx_exporter"] = fusion_exporter
        elif in_backend:
            say(f"quantizing: {QUANTIZE_FORMATS[to]}")
            module.export_model(model, stage, to, opset=opset, quantize=quantize)
            extra["quantization"] = module.quantization_record(stage, to)
        else:
            module.export_model(model, stage, to, opset=opset)
        if to == "onnx" and (optimize or quantize):
            say("optimizing / quantizing with onnxruntime")
            fusions, post = _post_process_onnx(
                stage / "model.onnx", config, optimize=optimize, quantize=quantize, workdir=Path(work)
            )
            extra.update(post)
        for name in ("config.json",) + TOKENIZER_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, stage / name)
        manifest: Dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "backend": backend,
            "format": to,
            "runtime": FORMAT_RUNTIMES[to],
            "head": head,
            "opset": opset,
            "quantize": quantize,
            "optimize": bool(optimize),
            "source": os.fspath(model_dir.resolve()),
            "library_version": distribution_version("multi-bert") or "source tree",
            **extra,
        }
        say("loading the artifact in its runtime once")
        manifest.update(_io_spec(stage, manifest, module, config.vocab_size))
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        files = sorted(os.fspath(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    return ExportResult(out, backend, to, head, files, manifest, fusions, time.perf_counter() - start, notes)


def _io_spec(stage: Path, manifest: Mapping[str, Any], module: Any, vocab_size: int) -> Dict[str, Any]:
    """Inputs and outputs (name, dtype, dims) of the artifact, read by running it at two batch/sequence shapes (an
    artifact that does not run is not committed; dims that follow the inputs are recorded by name)."""
    head, fmt = manifest["head"], manifest["format"]
    try:
        runner = load_runner(stage, manifest)
        outputs = runner(sample_inputs(head, batch=2, seq=8, vocab_size=vocab_size))
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001 - an artifact that does not run is not committed
        raise ExportError(f"the exported {fmt} artifact does not run in {FORMAT_RUNTIMES[fmt]}: {err}") from err
    expected = OUTPUT_NAMES[head]
    if tuple(outputs) != expected:
        raise ExportError(f"the exported {fmt} artifact returns {list(outputs)}, expected {list(expected)}")
    try:
        moved: Optional[Dict[str, Any]] = runner(sample_inputs(head, batch=3, seq=5, vocab_size=vocab_size, choices=3))
    except Exception:  # noqa: BLE001 - a fixed-shape artifact: recorded with numeric dims
        moved = None
    input_dtype = getattr(runner, "input_dtypes", None) or getattr(module, "INPUT_DTYPES", {}).get(fmt, "int64")
    dims = list(input_dims(head)) if moved is not None else [2, 2, 8][-len(input_dims(head)) :]
    inputs = []
    for name in INPUT_NAMES:
        dtype = input_dtype.get(name, "int64") if isinstance(input_dtype, Mapping) else input_dtype
        inputs.append({"name": name, "dtype": str(dtype), "dims": dims})
    outs = []
    for name, value in outputs.items():
        value = np.asarray(value)
        second = None if moved is None else np.asarray(moved[name]).shape
        outs.append({"name": name, "dtype": str(value.dtype), "dims": _output_dims(value.shape, second, head)})
    return {"inputs": inputs, "outputs": outs, "dynamic_shapes": moved is not None}
