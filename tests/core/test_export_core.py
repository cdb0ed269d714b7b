"""bert_core.export without a framework: the format table, head names, request checks, manifest reading, the
int8 judging rule and the CLI's usage errors."""

from __future__ import annotations

import numpy as np
import pytest

from bert_core.export import (
    FORMAT_FILES,
    FORMATS,
    OUTPUT_NAMES,
    ExportError,
    _check_request,
    _output_dims,
    read_manifest,
    resolve_head,
    sample_inputs,
)
from bert_core.weights import HEADS


def test_format_table_is_consistent():
    assert set(FORMATS) == {"torch", "tf", "flax"}
    assert FORMATS["torch"] == ("onnx", "torch-export")
    assert set(FORMATS["tf"]) == {"savedmodel", "onnx", "tflite"} and set(FORMATS["flax"]) == {"stablehlo", "onnx"}
    assert {f for fmts in FORMATS.values() for f in fmts} == set(FORMAT_FILES)
    assert set(OUTPUT_NAMES) == set(HEADS)
    assert OUTPUT_NAMES["BertForQuestionAnswering"] == ("start_logits", "end_logits")


def test_resolve_head():
    assert resolve_head("qa") == "BertForQuestionAnswering"
    assert resolve_head("SequenceClassification") == "BertForSequenceClassification"
    assert resolve_head(None, ["BertForMaskedLM"]) == "BertForMaskedLM"
    assert resolve_head(None, ["RobertaModel"]) == "BertModel"
    with pytest.raises(ExportError, match="not a BERT head"):
        resolve_head("gpt")


def test_request_checks_need_no_framework(monkeypatch):
    monkeypatch.setattr("bert_core.export.check_installed", lambda name: name)
    with pytest.raises(ExportError, match="'savedmodel' is not a format of backend 'torch' \\(written by tf\\)"):
        _check_request("torch", "savedmodel", "BertModel", None, None, False)
    with pytest.raises(ExportError, match="--opset applies to --to onnx only"):
        _check_request("flax", "stablehlo", "BertModel", 17, None, False)
    with pytest.raises(ExportError, match="--optimize"):
        _check_request("tf", "tflite", "BertModel", None, None, True)
    with pytest.raises(ExportError, match="--quantize 'fp8'"):
        _check_request("tf", "onnx", "BertModel", None, "fp8", False)
    assert _check_request("tf", "onnx", "BertModel", 17, "int8", True) == "tf"


def test_sample_inputs_and_output_dims():
    x = sample_inputs("BertForMultipleChoice", batch=3, seq=5, choices=4)
    assert x["input_ids"].shape == (3, 4, 5) and x["input_ids"].dtype == np.int64
    assert x["attention_mask"][-1, :, -1].tolist() == [0] * 4 and x["token_type_ids"][0, 0].tolist() == [0, 0, 1, 1, 1]
    assert _output_dims((2, 8, 32), (3, 5, 32), "BertModel") == ["batch", "sequence", 32]
    assert _output_dims((2, 3), (3, 4), "BertForMultipleChoice") == ["batch", "choices"]
    assert _output_dims((2, 8), None, "BertForQuestionAnswering") == [2, 8]


def test_read_manifest_errors(tmp_path):
    with pytest.raises(ExportError, match="not a `bert export` directory"):
        read_manifest(tmp_path)
    (tmp_path / "export.json").write_text("{not json")
    with pytest.raises(ExportError, match="cannot read"):
        read_manifest(tmp_path)
    (tmp_path / "export.json").write_text('{"head": "BertModel"}')
    with pytest.raises(ExportError, match="not an export manifest"):
        read_manifest(tmp_path)


def test_int8_judging_rule():
    from bert_core.config import tiny_config
    from conformance.export import export_cases, int8_comparisons

    rng = np.random.default_rng(0)
    mask = np.ones((2, 6), np.int64)
    mask[1, 4:] = 0
    ref = rng.normal(size=(2, 6, 32))
    close = {f: c for f, c in int8_comparisons("logits", ref, ref + 0.01 * rng.normal(size=ref.shape), mask)}
    assert close["logits.cosine"].passed and close["logits.argmax"].passed
    ref[1, 4:] = 1e6  # padded positions are not judged
    far = {f: c for f, c in int8_comparisons("logits", ref, -ref, mask)}
    assert not far["logits.cosine"].passed and not far["logits.argmax"].passed
    hidden = int8_comparisons("last_hidden_state", ref, ref, mask)
    assert [f for f, _ in hidden] == ["last_hidden_state.cosine"]  # no class axis: cosine only
    cases = export_cases("BertForMultipleChoice", tiny_config())
    assert list(cases) == ["b1_s7", "b3_s7_pair", "b3_s19_pair", "b1_s19_pair"]
    assert cases["b3_s19_pair"]["attention_mask"].shape == (3, 2, 19)
    assert cases["b3_s19_pair"]["attention_mask"][2].sum(-1).tolist() == [15, 15]


def test_cli_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    from bert_core.export.cli import main

    assert main(["export", str(tmp_path), str(tmp_path / "o"), "--backend", "torch", "--to", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no config.json" in err
    assert main(["export", str(tmp_path), str(tmp_path / "o"), "--backend", "torch", "--to", "pdf"]) == 2
    assert main(["export", "--help"]) == 0
