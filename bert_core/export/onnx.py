"""ONNX side of ``bert export``, shared by every backend: run (onnxruntime), optimize (transformer fusions),
quantize (dynamic int8). ``onnx`` and ``onnxruntime`` are imported inside the functions (``pip install
'multi-bert[export]'``), so importing this module loads neither.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import ExportError

PathLike = Union[str, os.PathLike]

#: onnxruntime tensor type -> numpy dtype (the input types our exports use)
_ORT_TYPES = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(bool)": np.bool_,
}


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("onnxruntime is not installed: pip install 'multi-bert[export]'") from None
    return onnxruntime


class OnnxRunner:
    """An ``onnxruntime.InferenceSession`` over numpy dicts: ``runner({"input_ids": ids, ...}) -> {name: array}``.

    Inputs are cast to the graph's declared dtypes (int64 ids from a tokenizer or int32 ones alike); inputs the
    graph does not take are refused, missing ones too, with the names listed. Outputs come back in graph order.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (default: onnxruntime's, all cores).
        providers: execution providers (default ``["CPUExecutionProvider"]``).
    """

    def __init__(self, path: PathLike, *, threads: Optional[int] = None, providers: Optional[Sequence[str]] = None):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # no per-session warnings on stderr (e.g. unused initializers)
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"ONNX model {os.fspath(path)!r} does not exist")
        self.path = path
        self.session = ort.InferenceSession(
            os.fspath(path), options, providers=list(providers or ["CPUExecutionProvider"])
        )
        self._inputs = {i.name: _ORT_TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self.output_names: List[str] = [o.name for o in self.session.get_outputs()]

    @property
    def input_names(self) -> List[str]:
        return list(self._inputs)

    @property
    def input_dtypes(self) -> Dict[str, str]:
        """Input name -> numpy dtype name, as the graph declares it."""
        return {k: np.dtype(v).name for k, v in self._inputs.items()}

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        extra = sorted(set(inputs) - set(self._inputs))
        missing = [n for n in self._inputs if n not in inputs]
        if extra or missing:
            raise ExportError(
                f"the ONNX model takes inputs {self.input_names}; got unexpected {extra} / missing {missing}"
            )
        feed = {
            name: np.ascontiguousarray(np.asarray(inputs[name]), dtype=dtype) for name, dtype in self._inputs.items()
        }
        return dict(zip(self.output_names, self.session.run(self.output_names, feed)))


def optimize_onnx(
    src: PathLike, dst: PathLike, *, num_heads: int, hidden_size: int, opt_level: int = 0
) -> Dict[str, int]:
    """onnxruntime's transformer optimizer for BERT on ``src``, written to ``dst``: attention, (skip-)LayerNorm,
    GELU and embedding fusions (``onnxruntime.transformers.optimizer.optimize_model(model_type="bert")``).

    ``opt_level=0``: only the Python fusion passes, no onnxruntime graph rewrite saved into the file, so the result
    stays portable across onnxruntime versions and execution providers (the session applies its own at load time).

    Returns:
        fused operator -> count, the fusions that were applied (zero counts left out).
    """
    _onnxruntime()
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        os.fspath(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=opt_level
    )
    model.save_model_to_file(os.fspath(dst), use_external_data_format=False)
    return {op: n for op, n in model.get_fused_operator_statistics().items() if n}


def quantize_onnx_int8(src: PathLike, dst: PathLike) -> Dict[str, object]:
    """Dynamic int8 quantization of ``src`` into ``dst``: MatMul/Gemm weights stored as int8 (symmetric QInt8, one
    scale per output channel), activations quantized on the fly (onnxruntime ``quantize_dynamic``).

    Per channel because one scale per tensor loses the small channels next to BERT's few outlier channels: on
    MiniLM per-tensor scales leave a token-vector cosine of 0.93 with fp32, per-channel ones 0.99 (docs/export.md).

    Returns:
        what was done, for the manifest: ``{"method", "weight_type", "quantized_nodes"}``.
    """
    _onnxruntime()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        os.fspath(src),
        os.fspath(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # a fused graph (--optimize) holds the Q/K/V projections inside com.microsoft Attention nodes (-> QAttention);
        # ONNX shape inference does not type that domain's outputs, hence the default tensor type
        op_types_to_quantize=["MatMul", "Gemm", "Attention"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    graph = onnx.load(os.fspath(dst), load_external_data=False).graph
    count = sum(
        1 for node in graph.node if node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul", "QGemm", "QAttention")
    )
    if count == 0:
        raise ExportError(f"onnxruntime quantize_dynamic quantized no MatMul/Gemm in {os.fspath(src)!r}")
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "QInt8",
        "per_channel": True,
        "quantized_nodes": count,
    }
