"""Scale-out rules without a framework: row splits, loss scales, mesh/strategy arguments, and the TrainLoop over two
threaded numpy workers (an in-process all-reduce) equal to one process with the same global batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bert_core.training import TrainingArguments
from bert_core.training.distributed import (
    World,
    check_world,
    loss_scales,
    loss_units,
    parse_mesh,
    shard_batch,
    split_rows,
)
from bert_core.training.loop import TrainLoop, read_log

from .test_training_loop import FakeBackend, FakeModel, FakeTask, make_args, make_features


def test_split_rows_is_contiguous_and_even():
    assert split_rows(7, 3) == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert split_rows(1, 2) == [slice(0, 1), slice(1, 1)]
    for n in range(0, 12):
        for w in range(1, 5):
            parts = split_rows(n, w)
            assert parts[0].start == 0 and parts[-1].stop == n
            assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
            sizes = [p.stop - p.start for p in parts]
            assert max(sizes) - min(sizes) <= 1


def test_shard_batch_takes_each_field_rows():
    batch = {"input_ids": np.arange(10).reshape(5, 2), "labels": np.arange(5)}
    parts = [shard_batch(batch, World(r, 2)) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([p["input_ids"] for p in parts]), batch["input_ids"])
    assert [len(p["labels"]) for p in parts] == [3, 2]
    with pytest.raises(ValueError, match="one batch size"):
        shard_batch({"a": np.zeros(3), "b": np.zeros(4)}, World(0, 2))


def _global_mean_from_ranks(per_token_loss, labels, world_size):
    """What the all-reduced scaled rank losses give: mean_r(scale_r * mean over rank r's labelled tokens)."""
    batch = {"labels": labels}
    total = 0.0
    for rank in range(world_size):
        rows = split_rows(len(labels), world_size)[rank]
        lab = labels[rows] != -100
        local = per_token_loss[rows][lab].mean() if lab.any() else 0.0
        total += loss_scales(batch, World(rank, world_size))["labels"] * local
    return total / world_size


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_loss_scales_make_the_global_token_mean(world_size):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 9, size=(7, 5))
    labels[rng.random(labels.shape) < 0.6] = -100  # uneven labelled tokens per row (MLM, NER)
    labels[2] = -100  # a row with none
    per_token = rng.random(labels.shape)
    expected = per_token[labels != -100].mean()
    assert _global_mean_from_ranks(per_token, labels, world_size) == pytest.approx(expected, rel=1e-12)


def test_loss_units_per_term():
    batch = {
        "labels": np.array([[1, -100, 2], [-100, -100, -100]]),
        "next_sentence_label": np.array([0, 1]),
        "input_ids": np.zeros((2, 3), np.int64),
    }
    units = loss_units(batch)
    assert set(units) == {"labels", "next_sentence_label"}
    np.testing.assert_array_equal(units["labels"], [2, 0])
    np.testing.assert_array_equal(units["next_sentence_label"], [1, 1])
    scales = [loss_scales(batch, World(r, 2)) for r in range(2)]
    assert scales[0] == {"labels": 2.0, "next_sentence_label": 1.0}
    assert scales[1] == {"labels": 0.0, "next_sentence_label": 1.0}
    seq = loss_units({"labels": np.array([2, 0, 1])})["labels"]  # sequence labels: one unit per row
    np.testing.assert_array_equal(seq, [1, 1, 1])


def test_parse_mesh_and_errors():
    assert parse_mesh("data=2") == {"data": 2, "model": 1}
    assert parse_mesh(" data = 2 , model=2") == {"data": 2, "model": 2}
    for bad in ("", "data", "data=0", "batch=2", "data=2,data=1", "data=-1", None):
        with pytest.raises(ValueError, match="--mesh"):
            parse_mesh(bad)
    with pytest.raises(ValueError, match="rank=2"):
        check_world(2, 2)
    with pytest.raises(ValueError, match="world size=0"):
        check_world(0, 0)


def test_scale_out_arguments(tmp_path):
    out = str(tmp_path)
    assert TrainingArguments(out, backend="torch", strategy="fsdp").validate().strategy == "fsdp"
    assert TrainingArguments(out, backend="flax", mesh="data=2").validate().strategy == "mesh"
    with pytest.raises(ValueError, match=r"strategy='ddp' is invalid for backend tf; expected one of none, mirrored"):
        TrainingArguments(out, backend="tf", strategy="ddp").validate()
    with pytest.raises(ValueError, match="strategy='bogus'"):
        TrainingArguments(out, strategy="bogus").validate()
    with pytest.raises(ValueError, match="mesh=None"):
        TrainingArguments(out, backend="flax", strategy="mesh").validate()
    with pytest.raises(ValueError, match="process_id=2"):
        TrainingArguments(out, backend="flax", num_processes=2, process_id=2, coordinator="127.0.0.1:1").validate()
    with pytest.raises(ValueError, match="coordinator=None"):
        TrainingArguments(out, backend="flax", num_processes=2).validate()
    with pytest.raises(ValueError, match="num_processes=2"):
        TrainingArguments(out, backend="torch", num_processes=2, coordinator="127.0.0.1:1").validate()
    with pytest.raises(ValueError, match="devices=0"):
        TrainingArguments(out, devices=0).validate()


# ------------------------------------------------------------------------------------------------ threaded workers


class _AllReduce:
    """Mean over the workers' values, in process (stands for gloo/nccl)."""

    def __init__(self, size: int) -> None:
        self.size, self.slots, self.barrier = size, [None] * size, threading.Barrier(size, timeout=30)

    def mean(self, rank: int, value):
        self.slots[rank] = value
        self.barrier.wait()
        if isinstance(value, dict):
            out = {k: sum(s[k] for s in self.slots) / self.size for k in value}
        else:
            out = sum(self.slots) / self.size
        self.barrier.wait()
        return out


class WorkerBackend(FakeBackend):
    """The fake backend as one data-parallel worker: scaled local loss, gradients all-reduced (no dropout)."""

    def __init__(self, model, args, total_steps, world: World, reduce: _AllReduce) -> None:
        super().__init__(model, args, total_steps)
        self.world, self.reduce = world, reduce

    def _loss_grads(self, batch, train: bool):
        return super()._loss_grads(batch, train=False)

    def barrier(self) -> None:
        self.reduce.barrier.wait()

    def train_step(self, micro_batches, loss_scales=None):
        scales = loss_scales or [{"labels": 1.0}] * len(micro_batches)
        scaled = []
        for batch, scale in zip(micro_batches, scales):
            loss, grads, _ = self._loss_grads(batch, train=True)
            factor = scale["labels"]
            scaled.append((loss * factor, {n: g * factor for n, g in grads.items()}))
        k = len(micro_batches)
        # one all-reduce per micro-batch (DDP reduces after each backward unless no_sync)
        reduced = [
            (self.reduce.mean(self.world.rank, loss), self.reduce.mean(self.world.rank, g)) for loss, g in scaled
        ]
        loss = sum(r[0] for r in reduced) / k
        grads = {n: sum(r[1][n] for r in reduced) / k for n in reduced[0][1]}
        return self._apply(loss, grads)


def _run_workers(out, world_size: int, per_device: int, n: int = 21):
    reduce = _AllReduce(world_size)
    features, evals = make_features(n), make_features(6, seed=1)
    results, errors = [None] * world_size, []

    def work(rank: int) -> None:
        try:
            args = make_args(out, per_device_train_batch_size=per_device, max_steps=-1, num_train_epochs=4)
            backend = WorkerBackend(FakeModel(), args, 0, World(rank, world_size), reduce)
            loop = TrainLoop(backend, FakeTask(), args, features, evals, evals)
            backend.total_steps = loop.total_steps
            results[rank] = (loop.train(), backend.model.weights)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            errors.append(err)
            reduce.barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def test_two_workers_train_what_one_process_trains(tmp_path):
    """W=2 workers with B=3 each == 1 process with B=6 (21 features: the last global micro-batch of 3 splits 2/1, so
    the loss scales 4/3 and 2/3 matter)."""
    ((one_metrics, one_weights),) = _run_workers(tmp_path / "one", 1, per_device=6)
    (two_metrics, two_weights), (rank1_metrics, rank1_weights) = _run_workers(tmp_path / "two", 2, per_device=3)
    for name in one_weights:
        np.testing.assert_allclose(two_weights[name], one_weights[name], rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(rank1_weights[name], two_weights[name])
    one_log = [r for r in read_log(tmp_path / "one" / "log.jsonl") if "loss" in r]
    two_log = [r for r in read_log(tmp_path / "two" / "log.jsonl") if "loss" in r]
    assert [r["step"] for r in two_log] == [r["step"] for r in one_log] and len(one_log) >= 3
    np.testing.assert_allclose([r["loss"] for r in two_log], [r["loss"] for r in one_log], rtol=1e-12)
    np.testing.assert_allclose([r["grad_norm"] for r in two_log], [r["grad_norm"] for r in one_log], rtol=1e-12)
    assert two_metrics["global_step"] == one_metrics["global_step"] == rank1_metrics["global_step"]
    assert two_metrics["eval_mse"] == pytest.approx(one_metrics["eval_mse"], rel=1e-12)
    # the checkpoint records the global micro-batch, so a resume on another worker count keeps the data order
    import json

    state = json.loads(next((tmp_path / "two" / "checkpoints").glob("step-*/trainer_state.json")).read_text())
    assert state["args"]["per_device_train_batch_size"] == 6


def test_timeout_from_env(monkeypatch):
    from bert_core.training.distributed import timeout_from_env

    monkeypatch.delenv("BERT_TEST_TIMEOUT", raising=False)
    assert timeout_from_env("BERT_TEST_TIMEOUT", 60) == 60.0
    monkeypatch.setenv("BERT_TEST_TIMEOUT", "2.5")
    assert timeout_from_env("BERT_TEST_TIMEOUT", 60) == 2.5
    for bad in ("0", "-3", "soon", "nan"):
        monkeypatch.setenv("BERT_TEST_TIMEOUT", bad)
        with pytest.raises(
            ValueError, match=rf"BERT_TEST_TIMEOUT='{bad}' is invalid; expected a number of seconds > 0"
        ):
            timeout_from_env("BERT_TEST_TIMEOUT", 60)
