"""``bert export`` for the TensorFlow backend: SavedModel, ONNX (tf2onnx) and TFLite (LiteRT), all nine heads.

Every format is traced from one ``tf.function`` with an explicit input signature: ``input_ids``, ``attention_mask``,
``token_type_ids`` of shape (batch, seq), or (batch, choices, seq) for ``BertForMultipleChoice``, batch and sequence
dynamic, returning the head's output fields in HF order (``bert_core.export.OUTPUT_NAMES``; no loss, hidden states,
attentions or cache). Input dtypes (:data:`INPUT_DTYPES`): int32 for SavedModel and TFLite (TF's native index
type), int64 for ONNX (what tokenizers hand onnxruntime); every loader casts what it is given.

* ``savedmodel``: ``BertPreTrainedModel.export_serving`` (a Keras ``ExportArchive``): SavedModel files directly in
  OUT, signature ``serving_default``.
* ``onnx``: tf2onnx on the same concrete function, run by the core's ``OnnxRunner``. tf2onnx's
  ``reshape_optimizer`` is left out: in tf2onnx 1.17 it rewrites the attention's ``Shape(Reshape(x))`` into
  ``Shape(x)`` and the graph then fails in onnxruntime ("cannot reshape {B*S, H} to {B*S, H, N, D}").
* ``tflite``: ``TFLiteConverter.from_saved_model`` with TFLITE_BUILTINS only (no Select TF ops, which the Python
  LiteRT interpreter cannot run). Its input shape signature is (-1, -1) [(-1, -1, -1)]: the loader resizes the
  inputs to each call's shape (the signature runner does it) and re-allocates tensors.
* ``tflite`` with ``quantize="int8"`` (``bert export --to tflite --quantize int8``): TFLite dynamic-range
  quantization (``converter.optimizations = [tf.lite.Optimize.DEFAULT]``, no representative dataset): the
  FullyConnected / BatchMatMul weights are stored as int8 with one scale per output channel, and at run time the
  interpreter quantizes each activation row on the fly and runs int8 x int8 kernels (XNNPACK's dynamically
  quantized fully-connected operator where it takes the node, TFLite's hybrid kernels otherwise). Embeddings,
  LayerNorm and softmax stay float32. This is the TF backend's int8 path: there is no in-process Keras int8 model.

Loading: :func:`load_artifact` runs a SavedModel with ``tf.saved_model.load`` (``tensorflow_text`` is imported first,
so a string-input SavedModel from ``bert convert --to savedmodel`` -- whose in-graph tokenizer uses
``NormalizeUTF8`` & co. -- loads too; without that import TF fails with "Op type not registered 'NormalizeUTF8'"),
and a ``.tflite`` file with ``ai_edge_litert.interpreter.Interpreter`` (``tf.lite.Interpreter`` when LiteRT is not
installed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

import numpy as np

from bert_core.export import INPUT_NAMES, ExportError, check_backend_request, check_quantize_request

from .modeling import BertPreTrainedModel, tf

FORMATS = ("savedmodel", "onnx", "tflite")
#: formats this module quantizes itself (``quantize="int8"``); ONNX is quantized by the core with onnxruntime
QUANTIZE_FORMATS = ("tflite",)
#: format -> dtype of the three inputs in the artifact
INPUT_DTYPES: Dict[str, str] = {"savedmodel": "int32", "onnx": "int64", "tflite": "int32"}
#: every output name of every head, in HF order (each head's outputs are a subsequence of it)
_OUTPUT_ORDER = (
    "last_hidden_state",
    "pooler_output",
    "prediction_logits",
    "seq_relationship_logits",
    "logits",
    "start_logits",
    "end_logits",
)
DEFAULT_OPSET = 17
TFLITE_FILE = "model.tflite"
ONNX_FILE = "model.onnx"


def _ordered(outputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Outputs (any order) -> HF order, numpy; names outside the known outputs (``input_ids`` of a string
    SavedModel) follow."""
    rank = {name: i for i, name in enumerate(_OUTPUT_ORDER)}
    keys = sorted(outputs, key=lambda k: rank.get(k, len(rank)))
    return {k: np.asarray(outputs[k]) for k in keys}


def _serving_function(model: BertPreTrainedModel, dtype: tf.DType):
    """The head as a ``tf.function`` over the three ``dtype`` inputs, returning its output tensors as a tuple in HF
    order (a tuple, not a dict: ``tf.function`` would sort a dict's keys, putting ``end_logits`` first), and the list
    that receives the output names when the function is traced."""
    shape = (None,) * model._serving_input_rank
    signature = [tf.TensorSpec(shape, dtype, name=name) for name in INPUT_NAMES]
    names: List[str] = []

    @tf.function(input_signature=signature)
    def serve(input_ids, attention_mask, token_type_ids):
        output = model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, training=False
        )
        names[:] = [name for name in _OUTPUT_ORDER if isinstance(output.get(name), tf.Tensor)]
        return tuple(output[name] for name in names)

    return serve, names


def _check_model(model) -> None:
    if not isinstance(model, BertPreTrainedModel):
        raise ExportError(f"model must be a bert_tf head (BertModel, BertFor...), got {type(model).__name__}")


def export_model(
    model, out_dir: Path, fmt: str, *, opset: Optional[int] = None, quantize: Optional[str] = None
) -> List[Path]:
    """Write ``model`` (a bert_tf head) as ``fmt`` into the empty directory ``out_dir``.

    Args:
        model: a built bert_tf head; exported in inference mode (``training=False``: no dropout).
        out_dir: an existing, empty directory (the core's staging directory).
        fmt: "savedmodel", "onnx" or "tflite".
        opset: ONNX opset (default :data:`DEFAULT_OPSET`); only for ``fmt == "onnx"``.
        quantize: "int8": TFLite dynamic-range quantization (int8 weights per output channel, activations
            quantized at run time); only for ``fmt == "tflite"`` (ONNX int8 is the core's onnxruntime pass).

    Returns:
        The files written (SavedModel: ``saved_model.pb`` and the ``variables/`` files).

    Raises:
        ExportError: an unknown format, a non-bert_tf model, a missing or non-empty ``out_dir``, an opset given for
            a format other than ONNX, ``quantize`` for a format other than TFLite, or a converter failure (its
            message included).
    """
    check_backend_request("tf", FORMATS, fmt)
    _check_model(model)
    out_dir = Path(out_dir)
    check_backend_request("tf", FORMATS, fmt, out_dir)
    if opset is not None and fmt != "onnx":
        raise ExportError(f"--opset applies to --to onnx only, not {fmt!r}")
    if quantize is not None:
        check_quantize_request("tf", fmt, quantize, QUANTIZE_FORMATS)
    if fmt == "savedmodel":
        model.export_serving(out_dir)
        return sorted(p for p in out_dir.rglob("*") if p.is_file())
    if fmt == "onnx":
        return [_export_onnx(model, out_dir / ONNX_FILE, DEFAULT_OPSET if opset is None else opset)]
    return [_export_tflite(model, out_dir / TFLITE_FILE, quantize=quantize)]


def _export_onnx(model: BertPreTrainedModel, path: Path, opset: int) -> Path:
    """tf2onnx from the concrete function (int64 inputs), named inputs and outputs, dynamic batch and sequence."""
    try:
        from tf2onnx import optimizer, tf_loader, utils
        from tf2onnx.tfonnx import process_tf_graph
    except ImportError:
        raise ExportError("--to onnx with the tf backend needs tf2onnx: pip install 'multi-bert[export-tf]'") from None
    serve, output_names = _serving_function(model, tf.int64)
    concrete = serve.get_concrete_function()
    input_tensors = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    output_tensors = [t.name for t in concrete.outputs]
    rename = dict(zip(input_tensors, INPUT_NAMES))
    rename.update(zip(output_tensors, output_names))
    frozen = tf_loader.from_function(concrete, input_tensors, output_tensors)
    # every tf2onnx optimizer but the reshape one, which breaks the attention reshapes (module docstring)
    passes = {k: v for k, v in optimizer._get_optimizers().items() if k != "reshape_optimizer"}
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(frozen, name="")
        onnx_graph = process_tf_graph(
            graph,
            opset=opset,
            input_names=input_tensors,
            output_names=output_tensors,
            tensors_to_rename=rename,
        )
        onnx_graph = optimizer.optimize_graph(onnx_graph, catch_errors=True, optimizers=passes)
        proto = onnx_graph.make_model(f"bert_tf {model.head_name}")
    utils.save_protobuf(os.fspath(path), proto)
    return path


def _export_tflite(model: BertPreTrainedModel, path: Path, quantize: Optional[str] = None) -> Path:
    """SavedModel in a temporary directory -> TFLite with builtin ops only: float32, or with ``quantize="int8"``
    dynamic-range int8 weights (``tf.lite.Optimize.DEFAULT`` without a representative dataset)."""
    with tempfile.TemporaryDirectory(prefix="bert-tflite-") as work:
        model.export_serving(work)
        converter = tf.lite.TFLiteConverter.from_saved_model(work)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        try:
            flat = converter.convert()
        except Exception as err:  # the converter raises ConverterError with the offending ops listed
            raise ExportError(f"TFLite conversion of {model.head_name} failed (builtin ops only): {err}") from err
    path.write_bytes(flat)
    return path


def quantization_record(out_dir: Path, fmt: str) -> Dict[str, object]:
    """What dynamic-range quantization did to the ``.tflite`` in ``out_dir``, for ``export.json``: the method, the
    int8 weight tensors (and how many carry one scale per output channel) and the operators that consume them.

    Raises:
        ExportError: ``fmt`` is not a format this module quantizes, or the file holds no int8 weight (the converter
            left the model float32).
    """
    if fmt not in QUANTIZE_FORMATS:
        raise ExportError(f"the tf backend quantizes {', '.join(QUANTIZE_FORMATS)} only, not {fmt!r}")
    interpreter = _interpreter_class()(model_path=os.fspath(Path(out_dir) / TFLITE_FILE))
    int8 = {
        t["index"]: len(t["quantization_parameters"]["scales"])
        for t in interpreter.get_tensor_details()
        if t["dtype"] == np.int8 and len(t["quantization_parameters"]["scales"])
    }
    if not int8:
        raise ExportError("TFLite dynamic-range quantization left no int8 weight in the model")
    ops: Dict[str, int] = {}
    for op in interpreter._get_ops_details():  # the public API lists tensors only; op names come from here
        if any(i in int8 for i in op["inputs"]):
            ops[op["op_name"]] = ops.get(op["op_name"], 0) + 1
    return {
        "method": "tf.lite.Optimize.DEFAULT (dynamic range)",
        "weight_type": "int8",
        "int8_weights": len(int8),
        "per_channel_weights": sum(1 for n in int8.values() if n > 1),
        "quantized_ops": ops,
    }


# ---------------------------------------------------------------------------------------------------------- loading


def load_artifact(
    out_dir: Path, fmt: str, *, threads: Optional[int] = None
) -> Callable[[Mapping[str, np.ndarray]], Dict[str, np.ndarray]]:
    """The artifact in ``out_dir`` as ``{input name: array} -> {output name: numpy array}`` in its own runtime.

    ``savedmodel``: ``tf.saved_model.load(out_dir).signatures["serving_default"]`` (token-id SavedModels from
    ``bert export`` and string-input ones from ``bert convert --to savedmodel`` alike: integer inputs are cast to the
    signature's dtype, a ``text`` input is passed as strings). ``tflite``: the LiteRT interpreter's signature runner,
    which resizes the dynamic inputs to each call's shape, on ``threads`` CPU threads (the interpreter's
    ``num_threads``; default: LiteRT's). ONNX runs in ``bert_core.export.onnx.OnnxRunner``.

    Raises:
        ExportError: an unknown format, ``onnx`` (not loaded here), or a missing artifact.
    """
    out_dir = Path(out_dir)
    check_backend_request("tf", FORMATS, fmt)
    if fmt == "onnx":
        raise ExportError("ONNX artifacts run in onnxruntime: use bert_core.export.onnx.OnnxRunner")
    if fmt == "savedmodel":
        if not (out_dir / "saved_model.pb").is_file():
            raise ExportError(f"{os.fspath(out_dir)!r} holds no saved_model.pb")
        return _SavedModelRunner(out_dir)
    if not (out_dir / TFLITE_FILE).is_file():
        raise ExportError(f"{os.fspath(out_dir)!r} holds no {TFLITE_FILE}")
    return _TFLiteRunner(out_dir / TFLITE_FILE, threads=threads)


def _check_feed(expected: List[str], inputs: Mapping[str, np.ndarray], runtime: str) -> None:
    extra = sorted(set(inputs) - set(expected))
    missing = [n for n in expected if n not in inputs]
    if extra or missing:
        raise ExportError(f"the {runtime} model takes inputs {expected}; got unexpected {extra} / missing {missing}")


class _SavedModelRunner:
    """``serving_default`` of a SavedModel over numpy dicts."""

    def __init__(self, path: Path) -> None:
        try:
            import tensorflow_text  # noqa: F401  (registers NormalizeUTF8 & co. for string-input SavedModels)
        except ImportError:
            pass  # token-id SavedModels need no text ops
        self._loaded = tf.saved_model.load(os.fspath(path))  # kept alive: the signature holds weak references
        self._fn = self._loaded.signatures["serving_default"]
        _, specs = self._fn.structured_input_signature
        self._specs = dict(specs)
        self.input_dtypes = {k: s.dtype.name for k, s in self._specs.items()}

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        _check_feed(list(self._specs), inputs, "SavedModel")
        feed = {k: tf.constant(np.asarray(inputs[k]), dtype=spec.dtype) for k, spec in self._specs.items()}
        return _ordered({k: v.numpy() for k, v in self._fn(**feed).items()})


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    return Interpreter


class _TFLiteRunner:
    """A ``.tflite`` model's ``serving_default`` signature over numpy dicts; each call resizes the inputs to the
    given shape and re-allocates the interpreter's tensors (dynamic batch and sequence)."""

    def __init__(self, path: Path, threads: Optional[int] = None) -> None:
        self._interpreter = _interpreter_class()(model_path=os.fspath(path), num_threads=threads)
        self._run = self._interpreter.get_signature_runner("serving_default")
        details = self._run.get_input_details()
        self._dtypes = {name: d["dtype"] for name, d in details.items()}
        self.input_dtypes = {k: np.dtype(v).name for k, v in self._dtypes.items()}

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        _check_feed(list(self._dtypes), inputs, "TFLite")
        feed = {k: np.ascontiguousarray(np.asarray(inputs[k]), dtype=dt) for k, dt in self._dtypes.items()}
        return _ordered({k: np.array(v) for k, v in self._run(**feed).items()})
