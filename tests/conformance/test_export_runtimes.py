"""Exported artifacts against the frameworks: the real MiniLM through ONNX (fp32, optimized, int8), and the
runtime columns of ``bert parity --runtimes``."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")


def test_minilm_onnx_fp32_optimized_int8(minilm_dir, tmp_path):
    from bert_core.config import BertConfig
    from bert_core.export import export
    from bert_core.export.onnx import quantize_onnx_int8
    from conformance.export import verify_export

    out = tmp_path / "minilm-onnx"
    export(minilm_dir, out, backend="torch", to="onnx", head="BertModel")
    fp32 = verify_export(minilm_dir, out)
    assert fp32.passed, fp32.format_table()
    assert max(r.max_abs for r in fp32.rows) < 2e-5  # measured 4.5e-6 (bound 7.2e-5)

    # --optimize: the TorchScript-exported graph, whose attention onnxruntime fuses, held to the same fp32 policy
    optimized = tmp_path / "opt"
    result = export(minilm_dir, optimized, backend="torch", to="onnx", head="BertModel", optimize=True)
    layers = BertConfig.from_pretrained(minilm_dir).num_hidden_layers
    assert result.fusions.get("Attention") == layers, result.fusions
    assert result.fusions.get("SkipLayerNormalization") == 2 * layers and result.fusions.get("BiasGelu") == layers
    assert result.manifest["onnx_exporter"] == "torchscript"
    fused = verify_export(minilm_dir, optimized)
    assert fused.passed, fused.format_table()
    # --quantize int8 on the optimized graph
    quantize_onnx_int8(optimized / "model.onnx", optimized / "model.int8.onnx")
    (optimized / "model.int8.onnx").replace(optimized / "model.onnx")
    manifest = json.loads((optimized / "export.json").read_text())
    (optimized / "export.json").write_text(json.dumps(dict(manifest, optimize=True, quantize="int8")))
    int8 = verify_export(minilm_dir, optimized)
    assert int8.passed, int8.format_table()
    cosines = [1.0 - r.max_abs for r in int8.rows]
    assert min(cosines) > 0.99 and max(cosines) < 0.9999  # int8 is judged, and it is not fp32


def test_parity_runtime_columns(backends, capsys):
    from conformance.cli import main

    code = main(
        ["parity", "--backends", ",".join(backends[:2]), "--heads", "SequenceClassification", "--no-grads"]
        + ["--no-chain", "--runtimes", "onnx,torch-export", "-q"]
    )
    table = capsys.readouterr().out
    assert code == 0, table
    header = next(line for line in table.splitlines() if line.startswith("head / check"))
    assert "torch~onnx" in header and "torch~torch-export" in header
    row = next(line for line in table.splitlines() if line.startswith("BertForSequenceClassification"))
    assert row.count("pass") == 3
    assert main(["parity", "--runtimes", "coreml", "-q"]) == 2
    assert "unknown runtime 'coreml'" in capsys.readouterr().err
    assert main(["parity", "--inputs", "x.jsonl", "--runtimes", "onnx", "-q"]) == 2
