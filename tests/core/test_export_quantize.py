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


def test_cli_refusal_is_one_line_exit_2(tmp_path, capsys):
    from bert_core import save_pretrained, tiny_config
    from bert_core.export.cli import main
    from bert_core.init import init_weights

    config = tiny_config()
    save_pretrained(tmp_path / "m", config, init_weights(config, "BertModel", seed=0), architecture="BertModel")
    argv = ["export", str(tmp_path / "m"), str(tmp_path / "o"), "--backend", "flax", "--to", "stablehlo"]
    assert main(argv + ["--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--quantize int8 applies to --to onnx with backend 'flax'" in err
    assert not (tmp_path / "o").exists()
