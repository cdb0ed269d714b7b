"""``bert export`` for the Flax backend: StableHLO (``jax.export``) and ONNX (jax2onnx), all nine heads.

Inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int32 (batch, seq), or (batch, choices, seq) for
``BertForMultipleChoice`` (int64 for ONNX: a Cast to int32 is put in front of the graph), batch and sequence symbolic;
outputs the head's fields in HF order (``bert_core.export.OUTPUT_NAMES``), no loss, hidden states, attentions or cache.

* ``stablehlo``: ``jax.export`` of a pure function ``(params, input_ids, attention_mask, token_type_ids) -> outputs``
  with the PARAMETERS AS ARGUMENTS: ``model.stablehlo`` holds the serialized program (a few hundred kB, no weights)
  and ``params.safetensors`` the weights under their canonical (HF PyTorch) names and layout, i.e. the same tensors as
  the model's ``model.safetensors``. The nnx state (whose paths hold integer layer indices) is never exported: the
  function rebuilds the parameter tree from the name -> array dict (transposing the linear kernels to Flax layout,
  which XLA folds into the matmuls) and ``nnx.merge``-s it with the graph definition. Shapes: ``b, s`` (``b, c, s``)
  with the constraint ``s <= max_position_embeddings`` (the position table's length; a longer call is refused by
  the runtime's shape check).
* ``onnx``: jax2onnx ``to_onnx`` with symbolic ``B, S`` (``B, C, S``), weights baked in as initializers.

Three tracing workarounds keep both formats dynamic without touching the model's numerics (each row of BERT is computed
independently, so all three are exact): multiple choice is traced as (batch * choices, 1, seq) and reshaped back to
(batch, choices), because the head's ``reshape(-1, num_choices)`` needs a concrete choice count; and the position
ids 0..S-1 are passed explicitly (an integer cumsum), because jax2onnx 0.17 cannot index the result of a symbolic
``jnp.arange``; for the same reason a decoder (``BertLMHeadModel``) gets its causal mask as a 3-D (B, S, S) attention
mask built from those positions (the product the model forms from a 2-D mask, 0/1 values).

Loading: :func:`load_artifact` (``stablehlo``) deserializes with ``jax.export.deserialize`` and calls the program with
the parameters read from ``params.safetensors``. ONNX runs in the core's ``OnnxRunner``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bert_core.export import INPUT_NAMES, OUTPUT_NAMES, ExportError, check_backend_request
from bert_core.weights import backend_path

from .modeling import BertPreTrainedModel

FORMATS = ("stablehlo", "onnx")
#: format -> dtype of the three inputs in the artifact
INPUT_DTYPES: Dict[str, str] = {"stablehlo": "int32", "onnx": "int64"}
DEFAULT_OPSET = 17
PROGRAM_FILE = "model.stablehlo"
PARAMS_FILE = "params.safetensors"
ONNX_FILE = "model.onnx"
_MC = "BertForMultipleChoice"


def _check_model(model) -> None:
    if not isinstance(model, BertPreTrainedModel):
        raise ExportError(f"model must be a bert_flax head (BertModel, BertFor...), got {type(model).__name__}")


def _forward(model: BertPreTrainedModel, input_ids, attention_mask, token_type_ids) -> Tuple[Any, ...]:
    """The head in inference mode on int32 inputs -> its output arrays in HF order (module docstring: the
    multiple-choice flattening and the explicit position ids are exact rewrites)."""
    lead = input_ids.shape[:-1]
    if model.head_name == _MC:  # (B, C, S) -> (B*C, 1, S): one choice per row, a concrete choice count
        input_ids, attention_mask, token_type_ids = (
            x.reshape(-1, 1, x.shape[-1]) for x in (input_ids, attention_mask, token_type_ids)
        )
    positions = jnp.cumsum(jnp.ones_like(input_ids), axis=-1) - 1  # 0..S-1 in every row
    if model.config.is_decoder:  # the causal (B, S, S) mask the model would build, from the same positions
        causal = positions[..., None, :] <= positions[..., :, None]
        attention_mask = causal.astype(jnp.int32) * attention_mask[..., None, :]
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        token_type_ids=token_type_ids,
        position_ids=positions,
        deterministic=True,
        return_dict=True,
    )
    values = tuple(output[name] for name in OUTPUT_NAMES[model.head_name])
    if model.head_name == _MC:
        values = (values[0].reshape(lead),)
    return values


def _dims(model: BertPreTrainedModel, sequence: str) -> str:
    return f"b, c, {sequence}" if model.head_name == _MC else f"b, {sequence}"


def export_model(model, out_dir: Path, fmt: str, *, opset: Optional[int] = None) -> List[Path]:
    """Write ``model`` (a bert_flax head) as ``fmt`` into the empty directory ``out_dir``.

    Args:
        model: a bert_flax head; exported with ``deterministic=True`` (no dropout).
        out_dir: an existing, empty directory (the core's staging directory).
        fmt: "stablehlo" (writes ``model.stablehlo`` + ``params.safetensors``) or "onnx" (``model.onnx``).
        opset: ONNX opset (default :data:`DEFAULT_OPSET`); only for ``fmt == "onnx"``.

    Returns:
        The files written.

    Raises:
        ExportError: an unknown format, a non-bert_flax model, a missing or non-empty ``out_dir``, an opset given
            for StableHLO, or an exporter failure (its message included).
    """
    check_backend_request("flax", FORMATS, fmt)
    _check_model(model)
    out_dir = Path(out_dir)
    check_backend_request("flax", FORMATS, fmt, out_dir)
    if opset is not None and fmt != "onnx":
        raise ExportError(f"--opset applies to --to onnx only, not {fmt!r}")
    if fmt == "stablehlo":
        return _export_stablehlo(model, out_dir)
    return [_export_onnx(model, out_dir / ONNX_FILE, DEFAULT_OPSET if opset is None else opset)]


# ------------------------------------------------------------------------------------------------------- stablehlo


def pure_forward(model: BertPreTrainedModel) -> Callable[..., Tuple[Any, ...]]:
    """``model`` as a pure function ``(params, input_ids, attention_mask, token_type_ids) -> outputs``.

    ``params`` maps every canonical weight name (``model.canonical_weights()``) to its float32 array in PyTorch
    layout; the function rebuilds the nnx parameter tree from it (no weight is captured as a constant).
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    table = model._weight_table()
    by_path = {}
    for name, spec in table.items():
        path, transposed = backend_path(spec, "flax")
        by_path[path] = (name, transposed)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    # a leaf's key path is the module path (ints for layer indices) then the Variable's ``value`` attribute
    plan = [(by_path[tuple(str(k.key) for k in path[:-1])], leaf.dtype) for path, leaf in leaves]

    def forward(weights, input_ids, attention_mask, token_type_ids):
        arrays = [(weights[n].T if t else weights[n]).astype(dtype) for (n, t), dtype in plan]
        head = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, arrays), rest)
        return _forward(head, input_ids, attention_mask, token_type_ids)

    return forward


def _export_stablehlo(model: BertPreTrainedModel, out_dir: Path) -> List[Path]:
    from safetensors.numpy import save_file

    weights = model.canonical_weights()
    limit = model.config.max_position_embeddings
    shape = jax.export.symbolic_shape(_dims(model, "s"), constraints=[f"s <= {limit}"])
    ids = jax.ShapeDtypeStruct(shape, jnp.int32)
    params = {name: jax.ShapeDtypeStruct(a.shape, jnp.float32) for name, a in weights.items()}
    try:
        exported = jax.export.export(jax.jit(pure_forward(model)))(params, ids, ids, ids)
    except Exception as err:  # a tracing failure names the offending operation
        raise ExportError(f"jax.export of {model.head_name} failed: {err}") from err
    program = out_dir / PROGRAM_FILE
    program.write_bytes(exported.serialize())
    save_file(
        {k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()},
        os.fspath(out_dir / PARAMS_FILE),
        metadata={"format": "pt", "head": model.head_name},
    )
    return [program, out_dir / PARAMS_FILE]


# ------------------------------------------------------------------------------------------------------------ onnx


def _export_onnx(model: BertPreTrainedModel, path: Path, opset: int) -> Path:
    """jax2onnx with symbolic dims and the weights as initializers, then int64 graph inputs (Cast to int32)."""
    try:
        from jax2onnx import to_onnx
    except ImportError:
        raise ExportError(
            "--to onnx with the flax backend needs jax2onnx: pip install 'multi-bert[export-flax]'"
        ) from None
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape(_dims(model, "S").upper()), jnp.int32)
    quiet = logging.getLogger("onnx_ir")  # one "value type is not known" warning per shape constant
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        proto = to_onnx(
            lambda *inputs: _forward(model, *inputs),
            [spec, spec, spec],
            model_name=f"bert_flax_{model.head_name}",
            opset=opset,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES[model.head_name]),
        )
    except Exception as err:  # a primitive jax2onnx has no plugin for, named in its message
        raise ExportError(f"jax2onnx conversion of {model.head_name} failed: {err}") from err
    finally:
        quiet.setLevel(level)
    _int64_inputs(proto)
    import onnx

    onnx.save_model(proto, os.fspath(path))
    return path


def _int64_inputs(proto) -> None:
    """Make every int32 graph input int64 (what tokenizers produce for onnxruntime) with a Cast in front."""
    from onnx import TensorProto, helper

    graph = proto.graph
    casts = []
    for value in graph.input:
        tensor = value.type.tensor_type
        if tensor.elem_type != TensorProto.INT32:
            continue
        inner = f"{value.name}__int32"
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name == value.name:
                    node.input[i] = inner
        casts.append(helper.make_node("Cast", [value.name], [inner], to=TensorProto.INT32, name=f"{inner}_cast"))
        tensor.elem_type = TensorProto.INT64
    for i, node in enumerate(casts):
        graph.node.insert(i, node)


# --------------------------------------------------------------------------------------------------------- loading


def load_artifact(out_dir: Path, fmt: str) -> Callable[[Mapping[str, np.ndarray]], Dict[str, np.ndarray]]:
    """The StableHLO artifact in ``out_dir`` as ``{input name: array} -> {output name: numpy array}``.

    ``jax.export.deserialize(model.stablehlo)`` called with the parameters of ``params.safetensors`` (loaded once,
    as device arrays) and the inputs cast to int32. ONNX runs in ``bert_core.export.onnx.OnnxRunner``.

    Raises:
        ExportError: an unknown format, ``onnx``, or a missing file.
    """
    out_dir = Path(out_dir)
    check_backend_request("flax", FORMATS, fmt)
    if fmt == "onnx":
        raise ExportError("ONNX artifacts run in onnxruntime: use bert_core.export.onnx.OnnxRunner")
    for name in (PROGRAM_FILE, PARAMS_FILE):
        if not (out_dir / name).is_file():
            raise ExportError(f"{os.fspath(out_dir)!r} holds no {name}")
    return _StableHLORunner(out_dir)


class _StableHLORunner:
    """A deserialized ``jax.export.Exported`` and its parameters over numpy dicts."""

    input_dtypes = {name: "int32" for name in INPUT_NAMES}

    def __init__(self, out_dir: Path) -> None:
        from safetensors import safe_open

        self._exported = jax.export.deserialize(bytearray((out_dir / PROGRAM_FILE).read_bytes()))
        with safe_open(os.fspath(out_dir / PARAMS_FILE), framework="numpy") as f:
            head = (f.metadata() or {}).get("head")
            self._params = {k: jnp.asarray(f.get_tensor(k)) for k in f.keys()}
        if head not in OUTPUT_NAMES:
            raise ExportError(f"{os.fspath(out_dir / PARAMS_FILE)!r} does not say which head it holds")
        self.output_names = list(OUTPUT_NAMES[head])

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        extra = sorted(set(inputs) - set(INPUT_NAMES))
        missing = [n for n in INPUT_NAMES if n not in inputs]
        if extra or missing:
            raise ExportError(
                f"the StableHLO model takes inputs {list(INPUT_NAMES)}; got unexpected {extra} / missing {missing}"
            )
        args = [np.asarray(inputs[n]).astype(np.int32) for n in INPUT_NAMES]
        try:
            outputs = self._exported.call(self._params, *args)
        except (TypeError, ValueError) as err:  # a shape the symbolic dims or their constraint refuse
            raise ExportError(f"the StableHLO model cannot run on inputs of shape {args[0].shape}: {err}") from None
        return {name: np.asarray(v) for name, v in zip(self.output_names, outputs)}
