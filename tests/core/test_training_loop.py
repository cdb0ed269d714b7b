"""TrainLoop with a pure-numpy backend (linear regression + the reference AdamW): outputs, logging, evaluation,
checkpoints, rotation, resume == uninterrupted, Ctrl-C and kill safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import numpy as np
import pytest

from bert_core.training import TrainingArguments, schedules
from bert_core.training.decay import decay_mask
from bert_core.training.loop import Checkpointer, Evaluator, LogWriter, TrainLoop, read_log
from bert_core.training.order import Position
from bert_core.training.reference import adamw_step, clip_by_global_norm, init_state
from bert_core.training.state import STEP_KEY, list_checkpoints, load_checkpoint

DIM = 4
WEIGHT, BIAS = "classifier.weight", "classifier.bias"


# ------------------------------------------------------------------------------------------------ the fake backend


def make_features(n: int, seed: int = 0) -> List[dict]:
    rng = np.random.default_rng(seed)
    true_w = np.array([1.5, -2.0, 0.5, 3.0])
    out = []
    for i in range(n):
        x = rng.normal(size=DIM)
        out.append({"input_ids": list(range(1 + i % 7)), "x": x.tolist(), "y": float(x @ true_w + 0.7), "_id": i})
    return out


class FakeTask:
    """A regression 'task': collate adds rng noise to x (stands for MLM masking), metric is the MSE."""

    name = "fake"
    head = "BertForSequenceClassification"
    default_metric = "mse"
    greater_is_better = False
    eval_outputs = ("logits",)

    def collate(self, rows, rng=None):
        x = np.array([r["x"] for r in rows], np.float64)
        if rng is not None:
            x = x + rng.normal(scale=0.01, size=x.shape)
        return {"x": x, "labels": np.array([r["y"] for r in rows], np.float64)}

    def postprocess(self, outputs, features, examples, args):
        assert set(outputs) == {"logits", "loss"} and outputs["loss"].shape == (len(features),)
        return outputs["logits"][:, 0]

    def metrics(self, predictions, examples):
        y = np.array([e["y"] for e in examples])
        return {"mse": float(np.mean((predictions - y) ** 2))}


class FakeModel:
    head_name = "BertForSequenceClassification"

    def __init__(self) -> None:
        self.weights = {WEIGHT: np.zeros((1, DIM)), BIAS: np.zeros(1)}
        self.save_hook = None

    def save_pretrained(self, directory) -> None:
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({"fake": True}))
        if self.save_hook is not None:
            self.save_hook(directory)
        save_file({k: np.ascontiguousarray(v) for k, v in self.weights.items()}, str(directory / "model.safetensors"))

    def load_canonical_weights(self, weights) -> None:
        assert set(weights) == set(self.weights), sorted(weights)
        self.weights = {k: np.array(v, np.float64) for k, v in weights.items()}


class FakeBackend:
    """The LoopBackend contract in numpy; 'dropout' zeroes inputs from its own generator (so RNG state matters)."""

    def __init__(self, model: FakeModel, args: TrainingArguments, total_steps: int, on_step=None) -> None:
        self.model, self.args, self.total_steps = model, args, total_steps
        self.state = init_state(model.weights)
        self.rng = np.random.default_rng(args.seed)
        self.on_step = on_step
        self.mask = decay_mask(model.weights)

    def _loss_grads(self, batch, train: bool):
        x, y = batch["x"], batch["labels"]
        if train:
            x = x * (self.rng.random(x.shape) > 0.1) / 0.9
        w, b = self.model.weights[WEIGHT], self.model.weights[BIAS]
        pred = x @ w[0] + b[0]
        err = pred - y
        grads = {WEIGHT: (2 * err @ x / len(y))[None, :], BIAS: np.array([2 * err.mean()])}
        return float(np.mean(err**2)), grads, pred

    def train_step(self, micro_batches):
        step = int(self.state[STEP_KEY])
        if self.on_step is not None:
            self.on_step(step + 1)
        k = len(micro_batches)
        total, acc = 0.0, {n: np.zeros_like(p) for n, p in self.model.weights.items()}
        for batch in micro_batches:
            loss, grads, _ = self._loss_grads(batch, train=True)
            total += loss / k
            for n in acc:
                acc[n] += grads[n] / k
        return self._apply(total, acc)

    def _apply(self, loss, grads):
        """Clip the step's gradients to the global norm and take one reference AdamW step: (loss, pre-clip norm)."""
        step = int(self.state[STEP_KEY])
        clipped, norm = clip_by_global_norm(grads, self.args.max_grad_norm)
        lr = schedules.learning_rate(step, self.args, self.total_steps)
        self.model.weights, self.state = adamw_step(
            self.model.weights,
            clipped,
            self.state,
            lr,
            betas=(self.args.adam_beta1, self.args.adam_beta2),
            eps=self.args.adam_epsilon,
            weight_decay=self.args.weight_decay,
            decay=self.mask,
        )
        return loss, norm

    def eval_step(self, batch):
        loss, _, pred = self._loss_grads(batch, train=False)
        return {"loss": np.asarray(loss, np.float32), "logits": pred[:, None].astype(np.float32), "extra": pred}

    def optimizer_state(self):
        return dict(self.state)

    def load_optimizer_state(self, state):
        assert set(state) == set(self.state)
        self.state = {
            k: np.array(v, np.float64) if k != STEP_KEY else np.asarray(v, np.int64) for k, v in state.items()
        }

    def rng_state(self):
        s = self.rng.bit_generator.state["state"]
        words = [(s[key] >> (32 * i)) & 0xFFFFFFFF for key in ("state", "inc") for i in range(4)]
        return {"pcg64": np.array(words, np.uint32)}

    def load_rng_state(self, state):
        words = [int(w) for w in state["pcg64"]]
        join = lambda ws: sum(w << (32 * i) for i, w in enumerate(ws))
        self.rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": join(words[:4]), "inc": join(words[4:])},
            "has_uint32": 0,
            "uinteger": 0,
        }


def make_args(out, **kw) -> TrainingArguments:
    base = dict(
        per_device_train_batch_size=3,
        gradient_accumulation_steps=2,
        max_steps=12,
        learning_rate=0.4,
        warmup_steps=2,
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=2,
        save_steps=5,
        eval_steps=4,
        quiet=True,
        seed=3,
    )
    base.update(kw)
    return TrainingArguments(str(out), **base)


def run(out, on_step=None, save_hook=None, n=20, **kw):
    args = make_args(out, **kw)
    model = FakeModel()
    model.save_hook = save_hook
    features = make_features(n)
    evals = make_features(6, seed=1)
    backend = FakeBackend(model, args, 0, on_step)
    loop = TrainLoop(backend, FakeTask(), args, features, evals, evals)
    backend.total_steps = loop.total_steps
    return loop, loop.train


def stable(records):
    return [{k: v for k, v in r.items() if k != "examples_per_second"} for r in records]


def interrupt_at(step):
    def hook(current):
        if current == step:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step: the loop finishes the step first

    return hook


# ------------------------------------------------------------------------------------------------ tests


def test_train_writes_every_output(tmp_path):
    loop, train = run(tmp_path / "out")
    metrics = train()
    out = tmp_path / "out"
    records = read_log(out / "log.jsonl")
    train_records = [r for r in records if "loss" in r]
    eval_records = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in train_records] == [2, 4, 6, 8, 10, 12]
    assert set(train_records[0]) == {"step", "epoch", "loss", "learning_rate", "grad_norm", "examples_per_second"}
    assert [r["step"] for r in eval_records] == [4, 8, 12]
    assert set(eval_records[0]) == {"step", "epoch", "eval_loss", "eval_mse"}
    # 20 features, B=3, K=2: 7 micro-batches, 4 steps per epoch
    assert train_records[0]["epoch"] == 0.5 and train_records[-1]["epoch"] == 3.0
    assert train_records[0]["learning_rate"] == schedules.learning_rate(1, loop.args, 12)
    assert train_records[-1]["loss"] < train_records[0]["loss"] / 4
    assert [s for s, _ in list_checkpoints(out)] == [5, 10]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["global_step"] == 12 and saved["eval_mse"] == eval_records[-1]["eval_mse"]
    assert metrics == saved
    assert saved["train_loss"] == pytest.approx(np.mean([r["loss"] for r in train_records]), rel=1e-12)
    assert TrainingArguments.from_json((out / "args.json").read_text()) == loop.args
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "model.safetensors").is_file() and (out / "checkpoints" / "step-5" / "model.safetensors").is_file()


def test_epoch_end_events_and_final_eval(tmp_path):
    _, train = run(tmp_path / "out", max_steps=-1, num_train_epochs=2, save_steps=0, eval_steps=0, logging_steps=3)
    train()
    records = read_log(tmp_path / "out" / "log.jsonl")
    assert [r["step"] for r in records if "eval_loss" in r] == [4, 8]
    assert [r["step"] for r in records if "loss" in r] == [3, 6, 8]  # the last step is always logged
    assert [s for s, _ in list_checkpoints(tmp_path / "out")] == [4, 8]
    optimizer, rng, state = load_checkpoint(tmp_path / "out" / "checkpoints" / "step-4")
    # the data position after an epoch's last step: micro_index = micro-batches per epoch (7)
    assert (state.epoch, state.micro_index, state.global_step) == (0, 7, 4)
    assert int(optimizer[STEP_KEY]) == 4 and rng["pcg64"].dtype == np.uint32


def _final(out):
    from bert_core.checkpoint import read_safetensors

    return read_safetensors(Path(out) / "model.safetensors")


def test_resume_equals_uninterrupted(tmp_path):
    _, train = run(tmp_path / "a")
    train()
    reference = stable(read_log(tmp_path / "a" / "log.jsonl"))

    # Ctrl-C during step 7: the step completes, step-7 is checkpointed, KeyboardInterrupt propagates
    _, train = run(tmp_path / "b", on_step=interrupt_at(7))
    with pytest.raises(KeyboardInterrupt):
        train()
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [5, 7]
    partial = stable(read_log(tmp_path / "b" / "log.jsonl"))
    assert partial == reference[: len(partial)] and partial[-1]["step"] == 6
    _, train = run(tmp_path / "b", resume_from=str(tmp_path / "b"))  # an output dir: its latest checkpoint
    train()
    assert stable(read_log(tmp_path / "b" / "log.jsonl")) == reference
    for name, value in _final(tmp_path / "a").items():
        np.testing.assert_array_equal(_final(tmp_path / "b")[name], value)
    # resume from an older explicit step dir: the records written after it are dropped and written again
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    _, train = run(tmp_path / "c", resume_from=str(tmp_path / "c" / "checkpoints" / "step-5"))
    metrics = train()
    assert stable(read_log(tmp_path / "c" / "log.jsonl")) == reference
    assert metrics["train_loss"] == json.loads((tmp_path / "a" / "metrics.json").read_text())["train_loss"]


def test_resume_refuses_changed_fields(tmp_path):
    _, train = run(tmp_path / "a", max_steps=5)
    train()
    _, train = run(tmp_path / "a", resume_from=str(tmp_path / "a"), per_device_train_batch_size=4)
    with pytest.raises(ValueError, match="per_device_train_batch_size was 3 in that run and is 4 now"):
        train()
    _, train = run(tmp_path / "a", resume_from=str(tmp_path / "a"), seed=4)
    with pytest.raises(ValueError, match="seed was 3"):
        train()
    _, train = run(tmp_path / "a", resume_from=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="no such directory"):
        train()


def test_rotation_keeps_the_best(tmp_path):
    # lr so high that the eval MSE gets worse after the first evaluations: the best is an early checkpoint
    _, train = run(tmp_path / "out", learning_rate=3.0, max_grad_norm=0, save_steps=2, eval_steps=2, save_total_limit=1)
    metrics = train()
    records = read_log(tmp_path / "out" / "log.jsonl")
    evals = {r["step"]: r["eval_mse"] for r in records if "eval_mse" in r}
    best = min(evals, key=evals.get)
    assert metrics["best_step"] == best and metrics["best_metric"] == evals[best]
    assert [s for s, _ in list_checkpoints(tmp_path / "out")] == sorted({best, 12})
    assert load_checkpoint(tmp_path / "out" / "checkpoints" / "step-12")[2].best_step == best


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    calls = []

    def failing(directory):
        calls.append(directory)
        if len(calls) == 2:  # the second checkpoint (step 10) dies halfway through
            raise OSError("disk full")

    _, train = run(tmp_path / "out", save_hook=failing)
    with pytest.raises(OSError, match="disk full"):
        train()
    root = tmp_path / "out" / "checkpoints"
    assert [s for s, _ in list_checkpoints(tmp_path / "out")] == [5]
    assert sorted(p.name for p in root.iterdir()) == ["step-5"]
    optimizer, _, state = load_checkpoint(root / "step-5")
    assert state.global_step == 5 and int(optimizer[STEP_KEY]) == 5


def test_kill_during_save_then_resume(tmp_path):
    """SIGKILL while checkpoint step-10 is being written: step-5 stays whole and the run resumes from it."""
    out = tmp_path / "out"
    ready = tmp_path / "saving"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_training_loop as t
        calls = []
        def hook(directory):
            calls.append(directory)
            if len(calls) == 2:
                open({str(ready)!r}, "w").close()
                time.sleep(60)
        _, train = t.run({str(out)!r}, save_hook=hook)
        train()
        """
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    try:
        import time

        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert [s for s, _ in list_checkpoints(out)] == [5]
    assert any(p.name.startswith(".step-10") for p in (out / "checkpoints").iterdir())  # the dead stage
    _, train = run(tmp_path / "a")
    train()
    _, train = run(out, resume_from=str(out))
    train()
    assert stable(read_log(out / "log.jsonl")) == stable(read_log(tmp_path / "a" / "log.jsonl"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-10", "step-5"]


def test_progress_bar_and_quiet(tmp_path, capsys):
    _, train = run(tmp_path / "loud", quiet=False, max_steps=4)
    train()
    err = capsys.readouterr().err
    assert "loss=" in err and "lr=" in err and "ex_s=" in err and "eval_mse=" in err
    _, train = run(tmp_path / "quiet", max_steps=4)
    train()
    assert capsys.readouterr().err == ""


def test_log_writer_resume_keeps_records_up_to_checkpoint(tmp_path):
    log = LogWriter(tmp_path, quiet=True)
    log.start(10)
    for step in (1, 2, 3):
        log.log({"step": step, "loss": np.float32(step)})
    log.close()
    with open(tmp_path / "log.jsonl", "a") as handle:
        handle.write('{"step": 4, "lo')  # a line cut by a kill
    log.start(10, initial_step=2, resume=True)
    assert log.records() == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 2.0}]
    log.start(10)
    assert log.records() == []


def test_evaluator_gathers_padded_outputs():
    class Task(FakeTask):
        eval_outputs = None

        def collate(self, rows, rng=None):
            return {"n": np.array([len(r["input_ids"]) for r in rows])}

        def postprocess(self, outputs, features, examples, args):
            return outputs

        def metrics(self, predictions, examples):
            return {"rows": predictions["logits"].shape[0], "width": predictions["logits"].shape[1]}

    features = [{"input_ids": [0] * n} for n in (2, 5, 3)]

    def predict(batch):
        width = int(batch["n"].max())
        return {"loss": np.float32(width), "logits": np.ones((len(batch["n"]), width), np.float32)}

    args = TrainingArguments("o", per_device_eval_batch_size=2)
    evaluator = Evaluator(Task(), features, features, args, predict)
    metrics = evaluator()
    assert metrics == {"eval_loss": (5 * 2 + 3 * 1) / 3, "eval_rows": 3.0, "eval_width": 5.0}
    assert evaluator.predictions["loss"].tolist() == [5, 5, 3]
    logits = evaluator.predictions["logits"]
    assert logits[2].tolist() == [1, 1, 1, -100, -100]
    with pytest.raises(ValueError, match="at least one eval feature"):
        Evaluator(Task(), [], [], args, predict)


def test_checkpointer_best_direction(tmp_path):
    args = make_args(tmp_path)
    ck = Checkpointer(tmp_path, args, "eval_acc", greater_is_better=True)
    writer = FakeModel().save_pretrained
    state = init_state({WEIGHT: np.zeros((1, DIM))})
    for step, acc in ((1, 0.5), (2, 0.7), (3, 0.6)):
        state[STEP_KEY] = np.asarray(step)
        ck.save(step, Position(0, step), writer, state, {"r": np.zeros(2, np.int64)}, {"eval_acc": acc})
    assert (ck.best_step, ck.best_metric) == (2, 0.7)
    assert not ck.is_better(float("nan"))


def test_interrupt_twice_stops_at_once(tmp_path):
    """A second Ctrl-C inside the same step raises at once; the step is incomplete, so nothing is saved."""

    def hook(current):
        if current == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    _, train = run(tmp_path / "out", on_step=hook)
    with pytest.warns(UserWarning, match="no checkpoint saved"), pytest.raises(KeyboardInterrupt):
        train()
    assert list_checkpoints(tmp_path / "out") == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
