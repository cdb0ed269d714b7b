"""Which formats ``--quantize int8`` applies to, checked before any framework loads, in one wording: the refusal
names the formats that can carry int8 for the backend and where the user finds int8 instead."""

import pytest

from bert_core.export import QUANTIZE_FORMATS, ExportError, _check_request, check_quantize_request


@pytest.fixture(autouse=True)
def _installed(monkeypatch):
    monkeypatch.setattr("bert_core.export.check_installed", lambda name: name)


@pytest.mark.parametrize(
    "backend, fmt, message",
    [
        (
            "torch",
            "torch-export",
            r"applies to --to onnx with backend 'torch', not 'torch-export'; torch.export cannot",
        ),
        ("tf", "savedmodel", r"applies to --to onnx or tflite with backend 'tf', not 'savedmodel'; .*--to tflite"),
        ("flax", "stablehlo", r"applies to --to onnx with backend 'flax', not 'stablehlo'; .*jax2onnx"),
    ],
)
def test_formats_without_int8_are_refused(backend, fmt, message):
    with pytest.raises(ExportError, match=message):
        _check_request(backend, fmt, "BertModel", None, "int8", False)


@pytest.mark.parametrize("backend, fmt", [("torch", "onnx"), ("tf", "onnx"), ("tf", "tflite"), ("flax", "onnx")])
def test_formats_with_int8_pass(backend, fmt):
    assert _check_request(backend, fmt, "BertModel", None, "int8", False) == backend


def test_one_wording_for_core_and_backends():
    assert set(QUANTIZE_FORMATS) == {"onnx", "tflite"}
    check_quantize_request("tf", "savedmodel", None, ("tflite",))  # nothing asked, nothing checked
    with pytest.raises(ExportError, match="--quantize 'fp8' is not supported; expected one of int8"):
        check_quantize_request("tf", "tflite", "fp8", ("tflite",))
