"""The CLI: exit codes, the table, the JSON report, error messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conformance.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_parity_pass_writes_json(tmp_path, backends, capsys):
    out = tmp_path / "report.json"
    code = main(["parity", "--backends", ",".join(backends), "--heads", "qa", "--no-chain", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.out[-3000:]
    assert "BertForQuestionAnswering" in captured.out and "PASS" in captured.out
    assert "[1/1]" in captured.err  # progress while it runs
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["backends"] == backends
    assert data["heads"] == ["BertForQuestionAnswering"]
    assert data["tolerance"]["rtol"] == 1e-5
    paths = {r["path"] for r in data["rows"]}
    assert "BertForQuestionAnswering/padded_pair/start_logits" in paths
    assert any(r["section"] == "grads" for r in data["rows"])


def test_parity_failure_exits_nonzero(tmp_path, backends, capsys):
    # a zero tolerance: different frameworks never agree to the last bit
    out = tmp_path / "r.json"
    code = main(
        [
            "parity",
            "--backends",
            ",".join(backends[:2]),
            "--heads",
            "BertForMaskedLM",
            "--tolerance",
            "0",
            "--no-grads",
            "--no-chain",
            "-q",
            "--json",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "FAIL" in captured.out and "BertForMaskedLM/" in captured.out
    data = json.loads(out.read_text())
    assert data["passed"] is False and any(not r["passed"] for r in data["rows"])


def test_errors(tmp_path, capsys):
    assert main(["parity", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["parity", "--backends", "mxnet"]) == 2
    assert "unknown backend 'mxnet'" in capsys.readouterr().err
    assert main(["parity", "--heads", "BertForEverything"]) == 2
    assert "unknown head" in capsys.readouterr().err
    assert main(["parity", "--tolerance", "tight"]) == 2
    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # the options of --verify are refused without it rather than ignored
    assert (
        main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--backends", "torch", "--json", "r"]) == 2
    )
    assert "--backends, --json only apply with --verify" in capsys.readouterr().err


def test_backend_not_installed_names_the_extra(monkeypatch, capsys):
    import importlib.util

    from conformance import adapters

    real = importlib.util.find_spec
    monkeypatch.setattr(
        adapters.importlib.util, "find_spec", lambda name, *a: None if name == "flax" else real(name, *a)
    )
    monkeypatch.setattr(adapters, "_CACHE", {})
    assert main(["parity", "--backends", "flax"]) == 2
    assert "pip install 'multi-bert[flax]'" in capsys.readouterr().err


def test_console_dispatch_subprocess(tmp_path, backends):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [
        sys.executable,
        "-m",
        "bert_core.cli",
        "parity",
        "--backends",
        backends[0],
        "--heads",
        "nsp",
        "--no-chain",
        "--no-grads",
        "--json",
        str(tmp_path / "r.json"),
    ]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    # a single backend has nothing to compare with: a usage error, not a vacuous pass
    assert proc.returncode == 2 and "at least two" in proc.stderr, proc.stderr[-2000:]
    convert = subprocess.run(
        [sys.executable, "-m", "bert_core.cli", "convert", str(tmp_path / "none"), str(tmp_path / "o")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert convert.returncode == 2 and "does not exist" in convert.stderr
