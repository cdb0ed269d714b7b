"""bert export from bert_torch (tiny config): ONNX and torch.export artifacts for several heads, verified in their
runtimes; int8 (onnxruntime and torch.ao); bad requests; all-or-nothing writes; the CLI's exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import bert_torch
from bert_core.config import tiny_config
from bert_core.export import ExportError, export, read_manifest
from bert_torch.export import export_model, load_artifact, quantize_dynamic_int8
from conformance.export import verify_export

pytest.importorskip("onnxruntime")
# heads built from a pre-training checkpoint warn about their seeded classifier: expected here
pytestmark = pytest.mark.filterwarnings(
    "ignore:Some weights of:UserWarning", "ignore:Weights of the checkpoint:UserWarning"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny BertForPreTraining checkpoint (3 labels) with a vocab.txt, as `bert export` reads it."""
    directory = tmp_path_factory.mktemp("tiny")
    bert_torch.BertForPreTraining(tiny_config(num_labels=3), seed=3).save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(f"tok{i}" for i in range(99)) + "\n")
    return directory


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-qa")
    bert_torch.BertForQuestionAnswering(tiny_config(num_labels=2), seed=4).save_pretrained(directory)
    return directory


def _passed(report):
    assert report.passed, report.format_table()
    return report


@pytest.mark.parametrize(
    "head, dims",
    [
        ("BertModel", {"last_hidden_state": ["batch", "sequence", 32], "pooler_output": ["batch", 32]}),
        ("BertForMultipleChoice", {"logits": ["batch", "choices"]}),
    ],
)
def test_onnx_export_verifies_with_dynamic_dims(model_dir, tmp_path, head, dims):
    result = export(model_dir, tmp_path / "out", backend="torch", to="onnx", head=head)
    assert {"model.onnx", "export.json", "config.json", "vocab.txt"} <= set(result.files)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["head"] == head and manifest["format"] == "onnx" and manifest["dynamic_shapes"]
    assert {o["name"]: o["dims"] for o in manifest["outputs"]} == dims
    lead = ["batch", "choices", "sequence"] if head == "BertForMultipleChoice" else ["batch", "sequence"]
    assert [(i["name"], i["dtype"], i["dims"]) for i in manifest["inputs"]] == [
        (n, "int64", lead) for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    report = _passed(verify_export(model_dir, tmp_path / "out"))
    assert {r.case for r in report.rows} == {"b1_s7", "b3_s7_pair", "b3_s19_pair", "b1_s19_pair"}
    assert max(r.max_abs for r in report.rows) < 1e-5


def test_torch_export_program(qa_dir, tmp_path):
    export(qa_dir, tmp_path / "qa", backend="torch", to="torch-export")  # head from config.json's architectures
    assert read_manifest(tmp_path / "qa")["head"] == "BertForQuestionAnswering"
    report = _passed(verify_export(qa_dir, tmp_path / "qa"))
    assert {r.field for r in report.rows} == {"start_logits", "end_logits"}
    assert max(r.max_abs for r in report.rows) == 0.0  # the same kernels: bit-identical


def test_optimized_int8_onnx_judged_by_cosine_and_argmax(model_dir, tmp_path):
    result = export(model_dir, tmp_path / "q", backend="torch", to="onnx", head="mlm", optimize=True, quantize="int8")
    assert result.fusions and result.fusions.get("SkipLayerNormalization", 0) >= 2
    assert result.manifest["quantization"]["quantized_nodes"] > 0
    report = _passed(verify_export(model_dir, tmp_path / "q"))
    fields = {r.field for r in report.rows}
    assert fields == {"logits.cosine", "logits.argmax"}
    assert all("cosine" in r.note or "argmax" in r.note for r in report.rows)


def test_verify_catches_an_artifact_that_drifted(model_dir, tmp_path):
    export(model_dir, tmp_path / "out", backend="torch", to="onnx", head="SequenceClassification")
    other = tmp_path / "other"
    bert_torch.BertForPreTraining(tiny_config(num_labels=3), seed=5).save_pretrained(other)
    report = verify_export(other, tmp_path / "out")  # same architecture, other weights
    assert not report.passed and all(r.max_abs > r.limit for r in report.rows)


def test_bad_requests_raise_export_error(model_dir, tmp_path):
    cases = [
        (dict(backend="torch", to="tflite"), "not a format of backend 'torch'"),
        (dict(backend="torch", to="torch-export", opset=17), "--opset applies to --to onnx only"),
        (dict(backend="torch", to="onnx", opset=3), r"--opset must be an integer in \[13, 25\]"),
        (dict(backend="torch", to="torch-export", optimize=True), "--optimize"),
        (dict(backend="torch", to="onnx", quantize="int4"), "--quantize 'int4'"),
        (dict(backend="torch", to="onnx", head="BertForEverything"), "not a BERT head"),
        (dict(backend="mxnet", to="onnx"), "unknown backend"),
        (dict(backend="torch", to="torch-export", quantize="int8"), "torch.export cannot trace torch.ao"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ExportError, match=message):
            export(model_dir, tmp_path / "never", **kwargs)
        assert not (tmp_path / "never").exists()
    with pytest.raises(ExportError, match="has no config.json"):
        export(tmp_path, tmp_path / "never", backend="torch", to="onnx")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty and holds no previous export"):
        export(model_dir, tmp_path / "busy", backend="torch", to="onnx")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_failed_export_leaves_the_previous_one_whole(model_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export(model_dir, out, backend="torch", to="torch-export", head="nsp")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(model, out_dir, fmt, *, opset=None):
        (out_dir / "model.pt2").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr("bert_torch.export.export_model", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export(model_dir, out, backend="torch", to="torch-export", head="nsp")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_torch_ao_int8_model(model_dir):
    model = bert_torch.BertForSequenceClassification.from_pretrained(model_dir)
    quantized = quantize_dynamic_int8(model)
    assert isinstance(model.classifier, torch.nn.Linear)  # the original is untouched
    assert type(quantized.classifier).__module__.startswith("torch.ao.nn.quantized")
    ids = torch.randint(1, 99, (4, 12), generator=torch.Generator().manual_seed(0))
    ref, got = model(ids).logits.detach().numpy(), quantized(ids).logits.detach().numpy()
    cosine = float((ref * got).sum() / np.linalg.norm(ref) / np.linalg.norm(got))
    assert 0.99 < cosine < 1.0
    with pytest.raises(ExportError, match="does not export to ONNX"):
        export_model(quantized, model_dir, "onnx")


def test_load_artifact_refuses_foreign_archives(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        load_artifact(tmp_path, "torch-export")
    (tmp_path / "model.pt2").write_bytes(b"not a zip")
    with pytest.raises(ExportError, match="not a torch.export archive"):
        load_artifact(tmp_path, "torch-export")
    with pytest.raises(ExportError, match="loads 'torch-export'"):
        load_artifact(tmp_path, "onnx")


def test_cli_exit_codes(model_dir, tmp_path, capsys):
    from bert_core.cli import main

    out = tmp_path / "cli"
    argv = ["export", str(model_dir), str(out), "--backend", "torch", "--to", "onnx", "--head", "tokenclassification"]
    # a bound of zero cannot hold for a graph run by other kernels: verify fails -> 1, the artifact stays
    assert main(argv + ["--verify", "--tolerance", "0", "-q"]) == 1
    printed = capsys.readouterr().out
    assert "torch~onnx" in printed and "FAIL" in printed and "max|Δ|" in printed
    assert json.loads((out / "export.json").read_text())["head"] == "BertForTokenClassification"
    for bad in (["--to", "savedmodel"], ["--opset", "x"], ["--tolerance", "1e-4"]):
        code = main(["export", str(model_dir), str(tmp_path / "bad"), "--backend", "torch", "--to", "onnx"] + bad)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "bad"), "--backend", "torch", "--to", "onnx"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
