import os
from pathlib import Path

import numpy as np
import pytest

from bert_core.checkpoint import (
    CheckpointError,
    load_head_weights,
    parse_size,
    read_flax_msgpack,
    read_safetensors,
    read_state_dict,
    read_tf_h5,
    save_pretrained,
    save_state_dict,
)
from bert_core.config import tiny_config
from bert_core.init import init_weights

ROOT = Path(__file__).resolve().parents[2]


def test_minilm_load_save_load_is_exact(minilm_dir, tmp_path):
    config, weights, info = load_head_weights(minilm_dir, "BertModel")
    assert not info.missing_keys and not info.unexpected_keys and len(weights) == 103
    save_pretrained(tmp_path, config, weights, architecture="BertModel")
    from safetensors import safe_open

    with safe_open(tmp_path / "model.safetensors", framework="np") as handle:
        assert handle.metadata() == {"format": "pt"}  # what transformers needs to load it
    config2, weights2, _ = load_head_weights(tmp_path, "BertModel")
    assert config2.to_dict() == {**config.to_dict(), "architectures": ["BertModel"]}
    assert list(weights2) == list(weights)
    for k in weights:
        assert weights2[k].dtype == weights[k].dtype and np.array_equal(weights2[k], weights[k]), k
    # our reader agrees with the safetensors library
    from safetensors.numpy import load_file

    ref = load_file(str(minilm_dir / "model.safetensors"))
    raw = read_safetensors(minilm_dir / "model.safetensors")
    assert all(np.array_equal(ref[k], raw[k]) for k in ref)


def test_hub_id_from_offline_cache(hub_cache):
    config, weights, _ = load_head_weights(
        "sentence-transformers/all-MiniLM-L6-v2", "BertForMaskedLM", cache_dir=hub_cache
    )
    assert "bert.embeddings.word_embeddings.weight" in weights and config.vocab_size == 30522


def test_sharded_save_and_load(tmp_path):
    c = tiny_config()
    w = init_weights(c, "BertForPreTraining", seed=1)
    files = save_state_dict(w, tmp_path, max_shard_size="20KB")
    assert len(files) > 2 and (tmp_path / "model.safetensors.index.json").is_file()
    assert not (tmp_path / "model.safetensors").exists()
    state, name = read_state_dict(tmp_path)
    assert name == "model.safetensors.index.json" and all(np.array_equal(state[k], w[k]) for k in w)
    # saving unsharded afterwards removes the stale shards and index
    save_state_dict(w, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    with pytest.raises(ValueError, match="max_shard_size"):
        parse_size("lots")
    assert parse_size("2MiB") == 2 * 2**20 and parse_size("5GB") == 5 * 10**9


def test_truncated_and_corrupted_safetensors_name_the_file(tmp_path):
    c = tiny_config()
    save_state_dict(init_weights(c), tmp_path)
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated"):
        read_state_dict(tmp_path)
    path.write_bytes(data[:4])
    with pytest.raises(CheckpointError, match="truncated"):
        read_safetensors(path)
    path.write_bytes(len(b"garbage!").to_bytes(8, "little") + b"garbage!" + data[16:])
    with pytest.raises(CheckpointError, match="corrupted safetensors header"):
        read_safetensors(path)


def test_missing_files_and_config_disagreement(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_head_weights(tmp_path / "absent", "BertModel")
    c = tiny_config()
    save_state_dict(init_weights(c), tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_head_weights(tmp_path, "BertModel")
    c.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_head_weights(tmp_path, "BertModel")
    save_state_dict(init_weights(c), tmp_path)
    c.copy(vocab_size=120).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"config and weights disagree.*vocab_size=120.*\(99, 32\)"):
        load_head_weights(tmp_path, "BertModel")
    c.copy(num_hidden_layers=3).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="num_hidden_layers=3 but the weights have 2 layers"):
        load_head_weights(tmp_path, "BertModel")


def test_wrong_shape_raises_unless_ignored(tmp_path):
    c = tiny_config(num_labels=2)
    w = init_weights(c, "BertForSequenceClassification")
    save_pretrained(tmp_path, c, w)
    with pytest.raises(ValueError, match=r"classifier\.weight.*\(2, 32\).*\(5, 32\)"):
        load_head_weights(tmp_path, "BertForSequenceClassification", num_labels=5)
    with pytest.warns(UserWarning, match="newly initialised"):
        _, weights, info = load_head_weights(
            tmp_path, "BertForSequenceClassification", num_labels=5, ignore_mismatched_sizes=True
        )
    assert [m[0] for m in info.mismatched_keys] == ["classifier.weight", "classifier.bias"]
    assert "classifier.weight" not in weights


def test_tf_h5_reader(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    q = rng.normal(size=(4, 4)).astype(np.float32)  # keras kernel (in, out)
    with h5py.File(tmp_path / "tf_model.h5", "w") as f:
        f["bert/tf_bert_for_masked_lm/bert/embeddings/word_embeddings/weight:0"] = np.ones((5, 4), np.float32)
        f["bert/tf_bert_for_masked_lm/bert/embeddings/position_embeddings/embeddings:0"] = np.zeros((6, 4), np.float32)
        f["bert/tf_bert_for_masked_lm/bert/embeddings/LayerNorm/gamma:0"] = np.ones(4, np.float32)
        f["bert/tf_bert_for_masked_lm/bert/encoder/layer_._0/attention/self/query/kernel:0"] = q
        f["mlm___cls/tf_bert_for_masked_lm/mlm___cls/predictions/bias:0"] = np.arange(5, dtype=np.float32)
    state = read_tf_h5(tmp_path / "tf_model.h5")
    assert set(state) == {
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "cls.predictions.bias",
    }
    np.testing.assert_array_equal(state["bert.encoder.layer.0.attention.self.query.weight"], q.T)


def test_flax_msgpack_reader(tmp_path):
    msgpack = pytest.importorskip("msgpack")

    def nd(a):
        return msgpack.ExtType(1, msgpack.packb((list(a.shape), a.dtype.name, a.tobytes())))

    k = np.arange(6, dtype=np.float32).reshape(2, 3)
    tree = {
        "embeddings": {
            "word_embeddings": {"embedding": nd(np.ones((3, 2), np.float32))},
            "LayerNorm": {"scale": nd(np.ones(2, np.float32))},
        },
        "encoder": {"layer": {"0": {"attention": {"self": {"query": {"kernel": nd(k)}}}}}},
    }
    (tmp_path / "flax_model.msgpack").write_bytes(msgpack.packb(tree))
    state = read_flax_msgpack(tmp_path / "flax_model.msgpack")
    assert set(state) == {
        "embeddings.word_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.self.query.weight",
    }
    np.testing.assert_array_equal(state["encoder.layer.0.attention.self.query.weight"], k.T)
    (tmp_path / "flax_model.msgpack").write_bytes(b"\xc1\xc1garbage")
    with pytest.raises(CheckpointError, match="flax_model.msgpack"):
        read_flax_msgpack(tmp_path / "flax_model.msgpack")


def test_pytorch_bin_only_tensors(tmp_path):
    import importlib.util

    c = tiny_config()
    if importlib.util.find_spec("torch") is None:  # tox -e core: the error names the extra
        (tmp_path / "pytorch_model.bin").write_bytes(b"not read without torch")
        with pytest.raises(CheckpointError, match=r"needs PyTorch \(pip install 'multi-bert\[torch\]'\)"):
            read_state_dict(tmp_path)
        return
    import torch

    w = init_weights(c)
    torch.save({k: torch.from_numpy(v) for k, v in w.items()}, tmp_path / "pytorch_model.bin")
    c.save_pretrained(tmp_path)
    _, weights, info = load_head_weights(tmp_path, "BertModel")
    assert not info.missing_keys and all(np.array_equal(weights[k], w[k]) for k in w)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"x": Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="tensors-only"):
        read_state_dict(tmp_path)
    assert not (tmp_path / "pwned").exists()
