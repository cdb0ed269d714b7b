"""Distributed training agrees across frameworks (issue 14): torch DDP (2 processes under torchrun), tf
MirroredStrategy (2 logical CPU devices) and flax ``--mesh data=2`` (2 CPU devices) train the same model on the same
token-classification data (uneven labelled tokens per worker: the loss scales matter) with the same global batch,
and their logged losses and final weights agree under the training-parity tolerance (``TrainTolerance``), like the
single-process runs do (tests/conformance/test_training_parity.py).

Each run is the real ``bert train`` CLI in a subprocess (the device count is fixed when a framework starts), bound to
127.0.0.1 and bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance.tolerance import TrainTolerance, compare_steps, compare_update

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "torch"))
import dist_support as ds  # noqa: E402

TASK = "token-classification"
STEPS, GLOBAL_BATCH, WORKERS = 6, 8, 2
TIMEOUT = 240


def _head_checkpoint(ws, root: Path) -> Path:
    """The tiny BERT of the workspace as a token-classification head with the task's labels, so every backend starts
    from the same saved weights (classifier included)."""
    from bert_core.config import BertConfig
    from bert_core.tasks import TASKS
    from bert_torch import BertForTokenClassification

    task = TASKS[TASK]
    config = BertConfig.from_pretrained(ws["model"]).copy(**task.label_config(task.read(str(ws[TASK]))))
    out = root / "ner-head"
    BertForTokenClassification(config, seed=1).save_pretrained(out)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (ws["model"] / name).is_file():
            (out / name).write_bytes((ws["model"] / name).read_bytes())
    return out


def _argv(ws, model: Path, output: Path, backend: str, strategy_flags) -> list:
    argv = ds.train_argv(ws, TASK, output, "none", STEPS, GLOBAL_BATCH // WORKERS, strategy_flags)
    argv[argv.index("--model") + 1] = str(model)
    argv[argv.index("--backend") + 1] = backend
    at = argv.index("--strategy")
    del argv[at : at + 2]
    return argv


def _run(command, env, label: str) -> None:
    child_env = {**os.environ, "PYTHONPATH": str(ds.REPO), "HF_HUB_OFFLINE": "1", **env}
    process = subprocess.Popen(
        command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output = ds.finish(process, TIMEOUT)
    finally:
        ds.kill(process)
    assert process.returncode == 0, f"{label} failed:\n{output[-3000:]}"


def _result(output: Path):
    from bert_core.checkpoint import read_state_dict
    from bert_core.training.loop import read_log
    from bert_core.weights import normalize_state_dict

    records = [r for r in read_log(output / "log.jsonl") if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    weights = normalize_state_dict(read_state_dict(output)[0], "BertForTokenClassification")
    return (
        np.array([r["loss"] for r in records]),
        np.array([r["learning_rate"] for r in records]),
        {k: np.asarray(v, np.float32) for k, v in weights.items()},
    )


def test_distributed_runs_agree_across_frameworks(tmp_path, backends):
    if set(backends) != {"torch", "tf", "flax"}:
        pytest.skip("needs the three backends")
    from bert_core.checkpoint import read_state_dict
    from bert_core.weights import normalize_state_dict

    ws = ds.workspace(tmp_path / "ws")
    model = _head_checkpoint(ws, tmp_path)
    cli = [sys.executable, "-m", "bert_core.cli"]
    runs = {
        "torch": (
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                str(WORKERS),
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                str(ds.free_port()),
                "--max_restarts",
                "0",
                "-m",
                "bert_core.cli",
            ]
            + _argv(ws, model, tmp_path / "torch", "torch", ["--strategy", "ddp"]),
            {"BERT_TORCH_COLLECTIVE_TIMEOUT": "60"},
        ),
        "tf": (
            cli + _argv(ws, model, tmp_path / "tf", "tf", ["--strategy", "mirrored", "--devices", str(WORKERS)]),
            {"BERT_TF_COLLECTIVE_TIMEOUT_S": "60"},
        ),
        "flax": (
            cli + _argv(ws, model, tmp_path / "flax", "flax", ["--mesh", f"data={WORKERS}", "--devices", str(WORKERS)]),
            {},
        ),
    }
    results = {}
    for name, (command, env) in runs.items():
        _run(command, env, name)
        results[name] = _result(tmp_path / name)

    tol = TrainTolerance()
    w0 = normalize_state_dict(read_state_dict(model)[0], "BertForTokenClassification")
    failures = []
    for a, b in (("torch", "tf"), ("torch", "flax"), ("tf", "flax")):
        (la, lra, wa), (lb, lrb, wb) = results[a], results[b]
        np.testing.assert_allclose(lra, lrb, rtol=1e-6)
        loss = compare_steps(la, lb, tol.rtol, floor=1.0)[0]
        if not loss.passed:
            failures.append(f"{a}~{b} loss {loss.max_abs:.2e}")
        lr_sum = float(lra.sum())
        for tensor, initial in w0.items():
            relative, elementwise = compare_update(initial, wa[tensor], wb[tensor], lr_sum, tol)
            for check in (relative, elementwise):
                if check is not None and not check.passed:
                    failures.append(f"{a}~{b} {tensor} {check.max_abs:.2e} > {check.limit:.1e}")
    summary = {name: r[0].round(6).tolist() for name, r in results.items()}
    assert not failures, json.dumps({"failures": failures[:20], "losses": summary}, indent=1)
