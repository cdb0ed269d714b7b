"""Checkpoint layout and I/O: round trip, refusals naming the file, resume resolution, resume checks, rotation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bert_core.checkpoint import CheckpointError
from bert_core.training import TrainingArguments
from bert_core.training.state import (
    STEP_KEY,
    TrainerState,
    check_resume,
    list_checkpoints,
    load_checkpoint,
    resolve_resume,
    rotate_checkpoints,
    save_checkpoint,
    step_dir,
)


def _writer(directory: Path) -> None:
    (directory / "config.json").write_text("{}")


def _save(out, step, **state_kw):
    optimizer = {
        "exp_avg/classifier.weight": np.ones((2, 3), np.float32),
        "exp_avg_sq/classifier.weight": np.zeros((2, 3), np.float32),
    }
    rng = {"key": np.array([1, 2], np.uint32)}
    state = TrainerState(global_step=step, epoch=0, micro_index=step, **state_kw)
    return save_checkpoint(out, step, _writer, {**optimizer, STEP_KEY: np.asarray(step)}, rng, state)


def test_round_trip_layout(tmp_path):
    path = _save(tmp_path, 3, best_metric=0.5, best_step=3, args={"seed": 1}, loop={"log_loss_sum": 0.25})
    assert path == step_dir(tmp_path, 3) == tmp_path / "checkpoints" / "step-3"
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "optimizer.safetensors",
        "rng.safetensors",
        "trainer_state.json",
    ]
    optimizer, rng, state = load_checkpoint(path)
    assert int(optimizer.pop(STEP_KEY)) == 3 and optimizer["exp_avg/classifier.weight"].dtype == np.float32
    assert sorted(optimizer) == ["exp_avg/classifier.weight", "exp_avg_sq/classifier.weight"]
    assert rng["key"].tolist() == [1, 2] and rng["key"].dtype == np.uint32
    assert (state.best_metric, state.best_step, state.args, state.loop) == (0.5, 3, {"seed": 1}, {"log_loss_sum": 0.25})
    from safetensors import safe_open

    with safe_open(str(path / "optimizer.safetensors"), framework="np") as handle:
        assert handle.metadata() == {"step": "3", "format": "bert-adamw-1"}


def test_save_refuses_bad_state(tmp_path):
    state = TrainerState(global_step=2, epoch=0, micro_index=0)
    with pytest.raises(ValueError, match="expected integer arrays"):
        save_checkpoint(tmp_path, 2, _writer, {}, {"r": np.zeros(2)}, state)
    with pytest.raises(ValueError, match="is not '<moment>/<canonical name>'"):
        save_checkpoint(tmp_path, 2, _writer, {"m/x": np.zeros(2)}, {}, state)
    with pytest.raises(ValueError, match="optimizer state is at update 1, the checkpoint at step 2"):
        save_checkpoint(tmp_path, 2, _writer, {STEP_KEY: np.asarray(1)}, {}, state)
    with pytest.raises(ValueError, match="global_step=2 but the checkpoint is step 3"):
        save_checkpoint(tmp_path, 3, _writer, {}, {}, state)
    assert not (tmp_path / "checkpoints").exists() or list_checkpoints(tmp_path) == []


def test_load_names_the_broken_file(tmp_path):
    path = _save(tmp_path, 1)
    (path / "rng.safetensors").unlink()
    with pytest.raises(CheckpointError, match="rng.safetensors is missing"):
        load_checkpoint(path)
    path = _save(tmp_path, 2)
    data = json.loads((path / "trainer_state.json").read_text())
    (path / "trainer_state.json").write_text(json.dumps({**data, "global_step": 5}))
    with pytest.raises(CheckpointError, match="optimizer.safetensors: metadata"):
        load_checkpoint(path)
    (path / "trainer_state.json").write_text(json.dumps({**data, "epoch": -1}))
    with pytest.raises(CheckpointError, match="epoch=-1 is not a non-negative integer"):
        load_checkpoint(path)
    (path / "trainer_state.json").write_text("{")
    with pytest.raises(CheckpointError, match="trainer_state.json: not valid JSON"):
        load_checkpoint(path)
    (path / "trainer_state.json").write_text(json.dumps({**data, "surprise": 1}))
    with pytest.raises(CheckpointError, match="surprise"):
        load_checkpoint(path)


def test_resolve_resume(tmp_path):
    for step in (2, 10, 7):
        _save(tmp_path, step)
    (tmp_path / "checkpoints" / ".step-12.save-abc").mkdir()  # a killed save
    (tmp_path / "checkpoints" / "step-11").mkdir()  # no trainer_state.json: not a checkpoint
    assert resolve_resume(tmp_path) == step_dir(tmp_path, 10)
    assert resolve_resume(tmp_path / "checkpoints") == step_dir(tmp_path, 10)
    assert resolve_resume(step_dir(tmp_path, 2)) == step_dir(tmp_path, 2)
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        resolve_resume(tmp_path / "checkpoints" / "step-11")
    with pytest.raises(FileNotFoundError, match="no such directory"):
        resolve_resume(tmp_path / "missing")


def test_check_resume_names_the_field(tmp_path):
    args = TrainingArguments("o", task="mlm", model=str(tmp_path), seed=1).validate()
    state = TrainerState(global_step=1, epoch=0, micro_index=1, args=args.resume_fields())
    check_resume(state, args, "ckpt")
    check_resume(state, TrainingArguments("o", task="mlm", model=str(tmp_path / "." / ""), seed=1), "ckpt")
    with pytest.raises(ValueError, match=r"cannot resume from 'ckpt': task was 'mlm' in that run and is 'pretraining'"):
        check_resume(state, TrainingArguments("o", task="pretraining", model=str(tmp_path), seed=1), "ckpt")
    with pytest.raises(ValueError, match="gradient_accumulation_steps was 1"):
        check_resume(
            state, TrainingArguments("o", task="mlm", model=str(tmp_path), seed=1, gradient_accumulation_steps=2), "c"
        )


def test_rotation(tmp_path):
    for step in (1, 2, 3, 4, 5):
        _save(tmp_path, step)
    assert rotate_checkpoints(tmp_path, None) == []
    assert rotate_checkpoints(tmp_path, 2, best_step=1) == [2, 3]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1, 4, 5]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-1", "step-4", "step-5"]
