"""bert_tf scale-out: ``bert train --backend tf --strategy mirrored|multi-worker`` trains the model one process trains
with the same global batch (per-step losses and final weights), for a sequence task and a token-level one with
uneven labelled tokens per replica (NER, a replica without rows in the short last batch); a killed worker ends the
job with a non-zero exit in bounded time, and a resumed run (on the same or another replica count) finishes as the
uninterrupted one.

Logical CPU devices must be configured before TensorFlow starts, and a multi-worker strategy must be the first
thing TensorFlow does: every run is a subprocess (this file is also the driver: ``python test_distributed.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from bert_core.checkpoint import read_safetensors, save_pretrained  # noqa: E402
from bert_core.config import tiny_config  # noqa: E402
from bert_core.init import init_weights  # noqa: E402
from bert_core.training.distributed import World, loss_scales  # noqa: E402
from bert_core.training.loop import read_log  # noqa: E402

HERE = Path(__file__).resolve()
DATA = HERE.parents[1] / "data" / "tasks"
ROOT = HERE.parents[2]
VOCAB = "[PAD] [UNK] [CLS] [SEP] [MASK] was born in the . said , police good bad movie film".split()
#: ner: 17 rows in global micro-batches of 8 -> each epoch ends with one row: replica 1 gets none
TASKS = {"token-classification": ("ner_train.jsonl", 17), "text-classification": ("sst_train.csv", 24)}
STEPS = 10
#: float32 sums in another order (replica all-reduce vs one batch): measured ~1e-7 on losses
LOSS_TOL = dict(rtol=2e-6, atol=1e-6)
WEIGHT_TOL = dict(rtol=1e-4, atol=2e-6)


def train_argv(model: Path, data: Path, task: str, out: Path, batch: int, *extra: str) -> list:
    """``bert train`` flags of every run here: dropout off, constant learning rate (a run's length does not change
    its steps), a checkpoint every 5 steps."""
    return [
        "train", task, "--backend", "tf", "--model", str(model), "--train", str(data), "--output", str(out),
        "--batch-size", str(batch), "--max-steps", str(STEPS), "--lr", "2e-3", "--schedule", "constant",
        "--weight-decay", "0.01", "--save-every", "5", "--seed", "3", "-q",
        "--set", "hidden_dropout_prob=0", "--set", "attention_probs_dropout_prob=0", *extra,
    ]  # fmt: skip


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _free_ports(n: int) -> list:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _losses(out: Path) -> dict:
    return {r["step"]: r["loss"] for r in read_log(out / "log.jsonl") if "loss" in r}


def _assert_same_run(a: Path, b: Path, steps=range(1, STEPS + 1)) -> dict:
    """Equal per-step losses and final weights; returns the largest differences."""
    la, lb = _losses(a), _losses(b)
    assert [s for s in steps if s in lb] == list(steps), (a, b, lb)
    np.testing.assert_allclose([lb[s] for s in steps], [la[s] for s in steps], **LOSS_TOL)
    wa, wb = read_safetensors(a / "model.safetensors"), read_safetensors(b / "model.safetensors")
    assert set(wa) == set(wb)
    for name in wa:
        np.testing.assert_allclose(wb[name], wa[name], err_msg=name, **WEIGHT_TOL)
    return {
        "loss": max(abs(la[s] - lb[s]) for s in steps),
        "weights": max(float(np.max(np.abs(wa[n] - wb[n]))) for n in wa),
    }


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A tiny checkpoint with a vocabulary, and the task data cut to size."""
    root = tmp_path_factory.mktemp("dist_tf")
    model = root / "model"
    model.mkdir()
    (model / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = tiny_config(num_hidden_layers=1)
    save_pretrained(model, config, init_weights(config, "BertModel"), architecture="BertModel")
    for name, rows in TASKS.values():
        lines = (DATA / name).read_text().splitlines(keepends=True)
        header = 1 if name.endswith(".csv") else 0
        (root / name).write_text("".join(lines[: rows + header]))
    return root


@pytest.fixture(scope="module")
def mirrored(workspace) -> Path:
    """One driver process with 2 logical CPUs: each task on 1 device (batch 8) and mirrored on 2 (4 each), then the
    1-device ner run resumed from its step 5 on 2 replicas."""
    done = subprocess.run(
        [sys.executable, str(HERE), str(workspace)], env=_env(), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return workspace


def driver(root: Path) -> None:
    """The mirrored runs of :func:`mirrored` (in this process: 2 logical CPU devices, made before TF starts)."""
    from bert_core.training import cli, run

    for task, (name, _) in TASKS.items():
        base = train_argv(root / "model", root / name, task, root / f"{task}-1", 8)
        run.train(cli.training_arguments(cli.build_parser().parse_args(base)))
        argv = train_argv(root / "model", root / name, task, root / f"{task}-2", 4, "--strategy", "mirrored")
        args = cli.training_arguments(cli.build_parser().parse_args(argv + ["--devices", "2"]))
        run.train(args)
    task, (name, _) = "token-classification", TASKS["token-classification"]
    step5 = root / f"{task}-1" / "checkpoints" / "step-5"
    argv = train_argv(root / "model", root / name, task, root / "resumed-2", 4, "--strategy", "mirrored")
    run.train(cli.training_arguments(cli.build_parser().parse_args(argv + ["--devices", "2", "--resume", str(step5)])))


# ------------------------------------------------------------------------------------------------ shards


def test_replica_batches_weight_each_term_by_its_share_of_the_global_units():
    from bert_tf.distributed import WEIGHT_PREFIX, replica_batches

    labels = np.array([[0, 1, -100, -100], [1, -100, -100, -100], [2, 2, 2, 0], [-100, -100, -100, -100]])
    batch = {"input_ids": np.arange(16).reshape(4, 4), "labels": labels}
    shards = list(replica_batches(batch, [0, 1], 2))
    weights = [s[WEIGHT_PREFIX + "labels"] for s in shards]
    assert all(w.dtype == np.float32 and len(set(w)) == 1 for w in weights)
    # 3 and 4 labelled tokens: not the row share 1/2
    assert [w[0] for w in weights] == [np.float32(3 / 7), np.float32(4 / 7)]
    assert [w[0] for w in weights] == [np.float32(loss_scales(batch, World(r, 2))["labels"] / 2) for r in range(2)]
    np.testing.assert_array_equal(shards[1]["labels"], labels[2:])

    # a short batch: replica 2 of 3 gets no row, replica 1 no labelled token; both run on stand-ins weighted 0
    short = {"input_ids": batch["input_ids"][:2], "labels": np.array([[0, 1, -100, -100], [-100] * 4])}
    first, second, third = replica_batches(short, [0, 1, 2], 3)
    assert float(first[WEIGHT_PREFIX + "labels"][0]) == 1.0
    assert len(second["labels"]) == 1 and second["labels"][0, 0] == 0 and second[WEIGHT_PREFIX + "labels"][0] == 0
    assert len(third["labels"]) == 1 and third[WEIGHT_PREFIX + "labels"][0] == 0
    assert short["labels"][1, 0] == -100  # the caller's batch is left alone


def test_cluster_world_reads_tf_config():
    from bert_tf.distributed import cluster_world

    config = {"cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]}, "task": {"type": "worker", "index": 1}}
    assert cluster_world(json.dumps(config)) == World(2, 3)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        cluster_world("")


def test_gradient_accumulation_under_a_strategy_is_refused_before_tensorflow_starts():
    from types import SimpleNamespace

    from bert_tf.distributed import strategy_for

    args = SimpleNamespace(strategy="mirrored", devices=2, gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="gradient_accumulation_steps=2 is not supported with strategy mirrored"):
        strategy_for(args)
    assert strategy_for(SimpleNamespace(strategy="none", gradient_accumulation_steps=2)) is None


# ------------------------------------------------------------------------------------------------ mirrored


@pytest.mark.parametrize("task", list(TASKS))
def test_mirrored_two_devices_equal_one_device(mirrored, task):
    deltas = _assert_same_run(mirrored / f"{task}-1", mirrored / f"{task}-2")
    print(f"mirrored 2 vs 1 device, {task}: {deltas}")
    args = json.loads((mirrored / f"{task}-2" / "args.json").read_text())
    assert args["strategy"] == "mirrored" and args["devices"] == 2
    # the checkpoint records the global micro-batch, as the 1-device run's
    state = json.loads((mirrored / f"{task}-2" / "checkpoints" / "step-5" / "trainer_state.json").read_text())
    assert state["args"]["per_device_train_batch_size"] == 8


def test_resume_on_another_replica_count_finishes_as_the_uninterrupted_run(mirrored):
    deltas = _assert_same_run(mirrored / "token-classification-1", mirrored / "resumed-2", steps=range(6, STEPS + 1))
    print(f"1 device to step 5, resumed on 2: {deltas}")


# ------------------------------------------------------------------------------------------------ multi-worker


def _workers(workspace: Path, out: Path, *extra: str, max_steps: int = STEPS, timeout_s: str = "20") -> list:
    name = TASKS["token-classification"][0]
    argv = train_argv(workspace / "model", workspace / name, "token-classification", out, 4, *extra)
    argv[argv.index("--max-steps") + 1] = str(max_steps)
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = _env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        env["BERT_TF_COLLECTIVE_TIMEOUT_S"] = timeout_s
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bert_core.cli", *argv, "--strategy", "multi-worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )
    return procs


def _stop(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_multi_worker_killed_worker_fails_the_job_and_resume_finishes_the_run(mirrored, tmp_path):
    """2 workers run a long job; once checkpoint 5 is written, worker 1 is killed: worker 0 exits non-zero in
    bounded time. 2 workers resumed from step 5 then log, with the first part's steps 1-5, exactly the losses
    of one process with the global batch (and its final weights)."""
    out = tmp_path / "mw"
    procs = _workers(mirrored, out, max_steps=10_000)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step-5").is_dir():
            assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.1)
        killed = time.monotonic()
        os.killpg(procs[1].pid, signal.SIGKILL)
        code = procs[0].wait(timeout=90)
        waited = time.monotonic() - killed
        print(f"survivor exit {code} {waited:.1f} s after the kill")
        assert code != 0
    finally:
        _stop(procs)
    step5 = out / "checkpoints" / "step-5"
    shutil.copytree(step5, tmp_path / "step-5")  # the resumed run may rotate it away
    procs = _workers(mirrored, out, "--resume", str(tmp_path / "step-5"))
    try:
        for proc in procs:
            assert proc.wait(timeout=120) == 0, proc.stderr.read()[-3000:]
    finally:
        _stop(procs)
    deltas = _assert_same_run(mirrored / "token-classification-1", out)
    print(f"multi-worker 2 vs 1 process (killed at step >= 5, resumed): {deltas}")


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from bert_tf.distributed import configure_devices

    configure_devices(2)
    driver(Path(sys.argv[1]))
