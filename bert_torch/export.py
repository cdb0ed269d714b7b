"""PyTorch exports for ``bert export`` (:mod:`bert_core.export` drives them): ONNX through
``torch.onnx.export(..., dynamo=True)`` and ``torch.export`` programs (``model.pt2``), both with symbolic batch and
sequence dims, plus a dynamic int8 model (``torch.ao`` quantization of every ``nn.Linear``).

The exported function takes ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, (batch, sequence), or
(batch, choices, sequence) for multiple choice) and returns the head's output fields in HF order
(:data:`bert_core.export.OUTPUT_NAMES`): no loss, hidden states, attentions or cache.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

import numpy as np
import torch
from torch import nn

from bert_core.export import INPUT_NAMES, OUTPUT_NAMES, ExportError, input_dims, sample_inputs

FORMATS = ("onnx", "torch-export")
#: ``torch.onnx.export`` paths: ``dynamo`` (torch.export + onnxscript, the default) and ``torchscript`` (tracing)
ONNX_EXPORTERS = ("dynamo", "torchscript")
#: the exporter ``bert export --optimize`` uses: onnxruntime's attention fusion matches only its graph
FUSION_EXPORTER = "torchscript"
TORCHSCRIPT_OPSET = 17
#: outputs without a sequence axis (batch first, then features / labels)
_POOLED_OUTPUTS = ("pooler_output", "seq_relationship_logits")
#: heads whose ``logits`` have no sequence axis
_POOLED_HEADS = ("BertForNextSentencePrediction", "BertForSequenceClassification", "BertForMultipleChoice")
INPUT_DTYPES = {"onnx": "int64", "torch-export": "int64"}
_NAMES_FILE = "bert_export_outputs.json"
#: the largest batch the symbolic batch dim admits (torch.export needs a finite range for its guards)
MAX_BATCH = 1 << 16


class ExportModule(nn.Module):
    """``head(input_ids, attention_mask, token_type_ids)`` -> the tuple of the head's output fields (HF order)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.names = OUTPUT_NAMES[model.head_name]
        self.decoder = model.head_name in ("BertModel", "BertLMHeadModel")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.decoder:
            kwargs["use_cache"] = False  # a served forward carries no KV cache
        out = self.model(**kwargs, output_attentions=False, output_hidden_states=False, return_dict=True)
        return tuple(out[name] for name in self.names)


def _dynamic_shapes(model: nn.Module) -> Dict[str, Dict[int, torch.export.Dim]]:
    head = model.head_name
    limit = model.config.max_position_embeddings
    dims = {
        "batch": torch.export.Dim("batch", min=1, max=MAX_BATCH),
        "choices": torch.export.Dim("choices", min=1, max=64),
        "sequence": torch.export.Dim("sequence", min=1, max=limit),
    }
    return {name: {i: dims[d] for i, d in enumerate(input_dims(head))} for name in INPUT_NAMES}


def _example(model: nn.Module) -> tuple:
    # batch 2 / 3 choices / sequence 8: sizes other than 0 and 1, which torch.export would specialize
    sample = sample_inputs(model.head_name, batch=2, seq=min(8, model.config.max_position_embeddings), choices=3)
    sample["input_ids"] %= model.config.vocab_size
    sample["token_type_ids"] %= max(1, model.config.type_vocab_size)
    return tuple(torch.from_numpy(sample[n]) for n in INPUT_NAMES)


def _check_model(model: nn.Module) -> None:
    if getattr(model, "head_name", None) not in OUTPUT_NAMES:
        raise ExportError(f"export_model expects a bert_torch head, got {type(model).__name__}")
    if model.training:
        raise ExportError("export_model expects a model in eval mode (model.eval()): dropout would be exported")


def export_program(model: nn.Module) -> torch.export.ExportedProgram:
    """``torch.export.export`` of :class:`ExportModule` with symbolic batch (choices) and sequence dims."""
    _check_model(model)
    module = ExportModule(model).eval()
    with torch.no_grad():
        return torch.export.export(module, _example(model), dynamic_shapes=_dynamic_shapes(model), strict=False)


def export_model(
    model: nn.Module, out_dir: Path, fmt: str, *, opset: Optional[int] = None, exporter: str = "dynamo"
) -> List[Path]:
    """Write ``model`` (a bert_torch head in eval mode) as ``fmt`` into the empty directory ``out_dir``.

    ``onnx``: ``model.onnx`` (one file, weights inside; ``torch.onnx.export(dynamo=True)``, ``opset`` or the
    exporter's default), symbolic ``batch`` / ``sequence`` (``choices``) dims; ``exporter="torchscript"`` uses the
    TorchScript exporter instead (:data:`FUSION_EXPORTER`). ``torch-export``: ``model.pt2`` (``torch.export.save``).
    Returns the files written.
    """
    out_dir = Path(out_dir)
    if fmt not in FORMATS:
        raise ExportError(f"bert_torch exports {', '.join(FORMATS)}, not {fmt!r}")
    if exporter not in ONNX_EXPORTERS:
        raise ExportError(f"exporter={exporter!r} is invalid; expected one of {', '.join(ONNX_EXPORTERS)}")
    if fmt == "torch-export":
        path = out_dir / "model.pt2"
        if _is_quantized(model):
            raise ExportError(
                "--quantize int8 does not go to --to torch-export: torch.export cannot trace torch.ao's dynamic int8 "
                "Linear (its packed weights are a TorchScript object without __obj_flatten__); use --to onnx "
                "--quantize int8, or bert_torch.export.quantize_dynamic_int8(model) in-process"
            )
        names = json.dumps({"outputs": list(OUTPUT_NAMES[model.head_name])})
        torch.export.save(export_program(model), os.fspath(path), extra_files={_NAMES_FILE: names})
        return [path]
    _check_model(model)
    if _is_quantized(model):
        raise ExportError(
            "a torch.ao int8 model does not export to ONNX (its packed int8 Linear has no ONNX translation); "
            "export fp32 and use --quantize int8, which quantizes the ONNX graph with onnxruntime"
        )
    path = out_dir / "model.onnx"
    if exporter == "torchscript":
        _export_onnx_torchscript(model, path, opset)
        return [path]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on renamed dims and deprecated pytree helpers
        program = torch.onnx.export(
            ExportModule(model).eval(),
            _example(model),
            dynamo=True,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES[model.head_name]),
            dynamic_shapes=_dynamic_shapes(model),
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    program.save(os.fspath(path), external_data=False)
    return [path]


def _export_onnx_torchscript(model: nn.Module, path: Path, opset: Optional[int]) -> None:
    # onnxruntime's BERT optimizer fuses attention by matching the MatMul/Softmax subgraph the TorchScript exporter
    # writes; the dynamo exporter's graph of the same attention does not match (measured: 0 Attention fusions), so
    # ``--optimize`` exports through this path.
    names = OUTPUT_NAMES[model.head_name]
    dims = input_dims(model.head_name)
    dynamic = {name: dict(enumerate(dims)) for name in INPUT_NAMES}
    for name in names:
        per_token = name not in _POOLED_OUTPUTS and model.head_name not in _POOLED_HEADS
        dynamic[name] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    if model.head_name == "BertForMultipleChoice":
        dynamic["logits"] = {0: "batch", 1: "choices"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            ExportModule(model).eval(),
            _example(model),
            os.fspath(path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(names),
            dynamic_axes=dynamic,
            opset_version=opset or TORCHSCRIPT_OPSET,
        )


def load_artifact(out_dir: Path, fmt: str) -> Callable[[Mapping[str, np.ndarray]], Dict[str, np.ndarray]]:
    """The ``torch-export`` artifact of ``out_dir`` (``torch.export.load``) as ``{input: array} -> {output: array}``.

    Every backend runs ONNX with :class:`bert_core.export.onnx.OnnxRunner`; this loads ``model.pt2`` only.
    """
    if fmt != "torch-export":
        raise ExportError(f"bert_torch.export.load_artifact loads 'torch-export'; run {fmt!r} with its own runtime")
    path = Path(out_dir) / "model.pt2"
    if not path.is_file():
        raise ExportError(f"{os.fspath(path)!r} does not exist")
    _refuse_pickled(path)
    extra = {_NAMES_FILE: ""}
    program = torch.export.load(os.fspath(path), extra_files=extra)
    module = program.module()
    try:
        names = list(json.loads(extra[_NAMES_FILE])["outputs"])
    except (ValueError, KeyError, TypeError):
        raise ExportError(f"{os.fspath(path)!r} was not written by bert export (no output names)") from None

    def run(inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        missing = [n for n in INPUT_NAMES if n not in inputs]
        if missing:
            raise ExportError(f"the torch.export program needs inputs {list(INPUT_NAMES)}; missing {missing}")
        args = [torch.as_tensor(np.asarray(inputs[n], dtype=np.int64)) for n in INPUT_NAMES]
        with torch.no_grad():
            out = module(*args)
        return {name: value.detach().numpy() for name, value in zip(names, out)}

    return run


def _refuse_pickled(path: Path) -> None:
    """torch.export archives store plain tensors as raw bytes but tensor subclasses and TorchScript objects as
    pickles (loaded with ``weights_only=False``); refuse an archive whose payload index marks any as pickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".json") and b'"use_pickle": true' in archive.read(name).replace(
                    b'":true', b'": true'
                ):
                    raise ExportError(f"{os.fspath(path)!r} holds pickled payloads ({name}); refusing to load it")
    except zipfile.BadZipFile:
        raise ExportError(f"{os.fspath(path)!r} is not a torch.export archive") from None


def _is_quantized(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized")) for m in model.modules())


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` dynamically quantized to int8 (``torch.ao.quantization.
    quantize_dynamic``: int8 weights with one scale per output channel, activations quantized per batch; CPU only). The embeddings and
    LayerNorms stay fp32. The original is left unchanged."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    _check_model(model)
    quantized = copy.deepcopy(model)
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao (not installed); it still works in torch 2.13
        warnings.filterwarnings("ignore", message=".*(deprecated|torchao).*")
        # per-channel scales: MiniLM's few outlier output channels cost per-tensor int8 its accuracy (token cosine
        # 0.892 -> 0.949 measured, same speed)
        return quantize_dynamic(quantized, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
