"""A save is all or nothing: kill -9 at random points, a full disk, corrupted and mixed checkpoints, bad names.

The kill tests run a real process that saves two alternating checkpoints in a loop (single file and sharded, two
sizes) and SIGKILL it at random moments; after each kill the directory must load as exactly one complete version,
config and weights agreeing, and the next save must clean up what the kill left.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bert_core import checkpoint
from bert_core.checkpoint import CheckpointError, load_head_weights, read_state_dict, save_pretrained
from bert_core.config import tiny_config
from bert_core.init import init_weights

ROOT = Path(__file__).resolve().parents[2]

_LOOPER = """
import sys
sys.path.insert(0, {root!r})
from bert_core.checkpoint import save_pretrained
from bert_core.config import tiny_config
from bert_core.init import init_weights
versions = [(tiny_config(vocab_size={vocab}, num_hidden_layers=2, type_vocab_size=2 + v), v) for v in (0, 1)]
states = [(c, init_weights(c, "BertModel", seed=v)) for c, v in versions]
print("ready", flush=True)
i = 0
while True:
    config, state = states[i % 2]
    save_pretrained({target!r}, config, state, max_shard_size={shard!r})
    i += 1
"""


def _version_of(directory: Path, vocab: int) -> int:
    """Which of the two versions ``directory`` holds; fails unless it is exactly one of them, whole."""
    config, weights, info = load_head_weights(directory, "BertModel")
    version = config.type_vocab_size - 2
    assert version in (0, 1)
    expected = init_weights(
        tiny_config(vocab_size=vocab, num_hidden_layers=2, type_vocab_size=2 + version), "BertModel", seed=version
    )
    assert set(weights) == set(expected) and not info.missing_keys
    for name, array in expected.items():
        np.testing.assert_array_equal(weights[name], array, err_msg=name)
    return version


@pytest.mark.parametrize("vocab, shard", [(2000, "5GB"), (2000, "60KB"), (6000, "200KB")])
def test_kill_during_save_leaves_one_complete_version(tmp_path, vocab, shard):
    target = tmp_path / "ckpt"
    (tmp_path / "ckpt").mkdir()
    (target / "vocab.txt").write_text("kept\n")  # an unrelated file in the directory survives every save
    code = _LOOPER.format(root=str(ROOT), target=str(target), vocab=vocab, shard=shard)
    rng = random.Random(vocab)
    seen = set()
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            proc.stdout.close()
        if not (target / "config.json").exists():
            continue  # killed before the first save completed: nothing was ever there
        seen.add(_version_of(target, vocab))
        assert (target / "vocab.txt").read_text() == "kept\n"
    assert seen, "no save completed in any run"
    # the next save clears what the kills left beside and inside the directory
    save_pretrained(target, *_first(vocab), max_shard_size=shard)
    assert not [p for p in tmp_path.iterdir() if p.name != "ckpt"]
    assert not [p for p in target.iterdir() if p.name.startswith(".")]
    assert _version_of(target, vocab) == 0


def _first(vocab):
    config = tiny_config(vocab_size=vocab, num_hidden_layers=2, type_vocab_size=2)
    return config, init_weights(config, "BertModel", seed=0)


def test_full_disk_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    config, old = _first(2000)
    save_pretrained(tmp_path, config, old, max_shard_size="60KB")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    new = {k: v + 1 for k, v in old.items()}
    real = checkpoint._write_safetensors
    calls = []

    def failing(target, tensors, metadata):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        real(target, tensors, metadata)

    monkeypatch.setattr(checkpoint, "_write_safetensors", failing)
    with pytest.raises(OSError, match="No space left"):
        save_pretrained(tmp_path, config, new, max_shard_size="60KB")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.save-")]
    _, again, _ = load_head_weights(tmp_path, "BertModel")
    assert all(np.array_equal(again[k], old[k]) for k in old)


def test_switching_layout_removes_the_other_layout(tmp_path):
    config, state = _first(2000)
    save_pretrained(tmp_path, config, state, max_shard_size="60KB")
    assert (tmp_path / "model.safetensors.index.json").exists() and not (tmp_path / "model.safetensors").exists()
    save_pretrained(tmp_path, config, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_saved_files_are_world_readable(tmp_path):
    config, state = _first(2000)
    old = os.umask(0o022)
    try:
        save_pretrained(tmp_path / "out", config, state, max_shard_size="60KB")
    finally:
        os.umask(old)
    for path in (tmp_path / "out").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path.name


def test_mixed_shards_are_refused(tmp_path):
    config, state = _first(2000)
    save_pretrained(tmp_path / "a", config, state, max_shard_size="60KB")
    index = json.loads((tmp_path / "a" / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[1]
    other = sorted(set(index["weight_map"].values()))[0]
    (tmp_path / "a" / shard).write_bytes((tmp_path / "a" / other).read_bytes())  # a shard from elsewhere
    with pytest.raises(CheckpointError, match=rf"{shard}: the index model.safetensors.index.json puts \d+ tensors"):
        read_state_dict(tmp_path / "a")


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "sub/dir.safetensors", "..", ""])
def test_shard_names_must_stay_in_the_directory(tmp_path, name):
    config, state = _first(2000)
    save_pretrained(tmp_path, config, state, max_shard_size="60KB")
    path = tmp_path / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = name
    path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="is not a file name in the checkpoint directory"):
        read_state_dict(tmp_path)


@pytest.mark.parametrize("weight_map", [[1, 2], "x", {"a": 3}])
def test_index_without_a_weight_map_object(tmp_path, weight_map):
    config, state = _first(2000)
    save_pretrained(tmp_path, config, state, max_shard_size="60KB")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match=r"model.safetensors.index.json: not a valid shard index"):
        read_state_dict(tmp_path)


def test_integer_weights_are_refused(tmp_path):
    config, state = _first(2000)
    state = dict(state)
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"].astype(np.int32)
    checkpoint.save_pretrained(tmp_path, config, state)
    with pytest.raises(CheckpointError, match=r"model.safetensors: BERT weights must be floating point.*int32"):
        load_head_weights(tmp_path, "BertModel")


def test_empty_name_is_refused():
    with pytest.raises(ValueError, match="name_or_path is empty"):
        load_head_weights("", "BertModel")
