"""``bert train --backend torch --strategy ddp|fsdp`` under torchrun (2 CPU workers, gloo) against one process.

The proof of issue 14 for torch: with dropout off, W workers with global batch B train exactly what one process
trains with batch B (per-step losses and final weights within float32 reduction-order noise), for a sequence task and
a token task (uneven labelled tokens per worker: the loss scales matter); FSDP equals DDP; a sharded (DCP) checkpoint
resumes on another number of workers and a one-process checkpoint resumes sharded; killing a worker ends the job
non-zero in bounded time and ``--resume`` then finishes with the uninterrupted losses.

Few launches (each starts torch twice): one 2-worker launch trains several runs in one process group
(``dist_support.main``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bert_core.checkpoint import read_state_dict
from bert_core.training.loop import read_log

sys.path.insert(0, str(Path(__file__).parent))
import dist_support as ds  # noqa: E402

SEQ, TOK = "text-classification", "token-classification"
STEPS, LONG = 10, 16  # optimizer steps of the comparisons / of the run that is killed and resumed
#: float32 sums in another order (per-worker partial sums, then the all-reduce) differ in the last bits
LOSS_TOL, WEIGHT_TOL = 2e-6, 2e-6


def _losses(output: Path):
    return [r["loss"] for r in read_log(output / "log.jsonl") if "loss" in r]


def _max_weight_delta(a: Path, b: Path) -> float:
    wa, _ = read_state_dict(a)
    wb, _ = read_state_dict(b)
    assert set(wa) == set(wb)
    return max(float(np.max(np.abs(np.asarray(wa[k], np.float64) - wb[k]))) for k in wa)


def _same_run(a: Path, b: Path, tail: int = None) -> None:
    la, lb = _losses(a), _losses(b)
    if tail is not None:
        la = la[-tail:]
    assert len(la) == len(lb) and len(la) > 0
    np.testing.assert_allclose(lb, la, rtol=0, atol=LOSS_TOL)
    assert _max_weight_delta(a, b) < WEIGHT_TOL


def _launch(nproc: int, runs, root: Path, name: str, timeout: float = 150.0) -> None:
    runs_file = root / f"{name}.json"
    runs_file.write_text(json.dumps(runs), encoding="utf-8")
    process = ds.torchrun(nproc, [str(Path(ds.__file__)), str(runs_file)])
    try:
        output = ds.finish(process, timeout)
    finally:
        ds.kill(process)
    assert process.returncode == 0, output[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process (in this process) and one 2-worker launch of DDP and FSDP runs, on the same data."""
    from bert_core.training.cli import main as bert

    root = tmp_path_factory.mktemp("dist")
    ws = ds.workspace(root / "ws")
    out = {key: root / key for key in ("one-seq", "one-tok", "ddp-seq", "ddp-tok", "fsdp-tok", "fsdp-from-one")}
    assert bert(ds.train_argv(ws, SEQ, out["one-seq"], steps=LONG)) == 0
    assert bert(ds.train_argv(ws, TOK, out["one-tok"], steps=STEPS, extra=["--save-every", "3"])) == 0
    per_worker = dict(batch=4)
    _launch(
        2,
        [
            ds.train_argv(ws, SEQ, out["ddp-seq"], "ddp", steps=LONG, **per_worker),
            ds.train_argv(ws, TOK, out["ddp-tok"], "ddp", steps=STEPS, **per_worker),
            ds.train_argv(ws, TOK, out["fsdp-tok"], "fsdp", steps=STEPS, extra=["--save-every", "3"], **per_worker),
            # a one-process checkpoint (no dcp/) resumed sharded: the canonical files
            ds.train_argv(
                ws,
                TOK,
                out["fsdp-from-one"],
                "fsdp",
                steps=STEPS,
                extra=["--resume", str(out["one-tok"] / "checkpoints" / "step-3")],
                **per_worker,
            ),
        ],
        root,
        "two-workers",
    )
    return root, ws, out


def test_ddp_equals_one_process_for_sequence_and_token_labels(runs):
    _, _, out = runs
    _same_run(out["one-seq"], out["ddp-seq"])
    _same_run(out["one-tok"], out["ddp-tok"])


def test_fsdp_equals_ddp_and_writes_sharded_plus_canonical_checkpoints(runs):
    _, _, out = runs
    _same_run(out["ddp-tok"], out["fsdp-tok"])
    step = out["fsdp-tok"] / "checkpoints" / "step-3"
    shards = sorted(p.name for p in (step / "dcp").iterdir())
    assert len(shards) == 2 and all(name.endswith(".safetensors") for name in shards)  # one per worker, no pickle
    assert (step / "model.safetensors").is_file() and (step / "optimizer.safetensors").is_file()
    assert not (out["fsdp-tok"] / "dcp").exists()  # the final model is canonical only
    assert not [p for p in (out["fsdp-tok"] / "checkpoints").iterdir() if p.name.startswith(".")]  # no leftovers


def test_one_process_checkpoint_resumes_sharded(runs):
    _, _, out = runs
    _same_run(out["one-tok"], out["fsdp-from-one"], tail=STEPS - 3)


def test_fsdp_checkpoint_resumes_on_one_worker(runs):
    """Written by 2 workers, read by 1: DCP reshards the model and the AdamW moments."""
    root, ws, out = runs
    resumed = root / "fsdp-on-one"
    step = out["fsdp-tok"] / "checkpoints" / "step-3"
    _launch(1, [ds.train_argv(ws, TOK, resumed, "fsdp", steps=STEPS, extra=["--resume", str(step)])], root, "one")
    _same_run(out["fsdp-tok"], resumed, tail=STEPS - 3)


def test_killed_worker_fails_the_job_and_resume_finishes_the_run(runs):
    root, ws, out = runs
    output = root / "killed"
    argv = ds.train_argv(ws, SEQ, output, "ddp", steps=LONG, batch=4, extra=["--save-every", "2"])
    process = ds.torchrun(2, ["-m", "bert_core.cli", *argv])
    try:
        deadline = time.monotonic() + 120
        while not (output / "checkpoints" / "step-2").is_dir():
            assert process.poll() is None, process.communicate()[0][-4000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        victim = ds.worker_pid(process.pid, rank=1)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        try:
            process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError("the job did not end within 90 s of a worker's death") from None
        assert process.returncode != 0
        assert time.monotonic() - killed_at < 90
    finally:
        ds.kill(process)
    done = [int(p.name.split("-")[1]) for p in (output / "checkpoints").glob("step-*")]
    assert max(done) < LONG, "the run ended before the kill: nothing was tested"

    again = ds.torchrun(2, ["-m", "bert_core.cli", *argv, "--resume", str(output)])
    try:
        log = ds.finish(again, 150)
    finally:
        ds.kill(again)
    assert again.returncode == 0, log[-4000:]
    np.testing.assert_allclose(_losses(output), _losses(out["ddp-seq"]), rtol=0, atol=LOSS_TOL)
    assert _max_weight_delta(out["ddp-seq"], output) < WEIGHT_TOL


def test_ddp_without_torchrun_is_a_clear_error(tmp_path, runs, capsys, monkeypatch):
    from bert_core.training.cli import main as bert

    _, ws, _ = runs
    for name in ds.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    assert bert(ds.train_argv(ws, SEQ, tmp_path / "out", "ddp", steps=1)) == 2
    err = capsys.readouterr().err
    assert "--strategy ddp runs under torchrun" in err and "Traceback" not in err
