import numpy as np
import pytest

from bert_core.checkpoint import read_safetensors
from bert_core.config import BertConfig, tiny_config
from bert_core.init import complete_weights, init_weights
from bert_core.weights import (
    HEADS,
    OPTIONAL_BUFFERS,
    backend_path,
    expected_weights,
    from_backend_array,
    match_state_dict,
    normalize_state_dict,
    stored_weights,
    to_backend_array,
)


def test_table_equals_minilm_keys_and_shapes_exactly(minilm_dir):
    state = read_safetensors(minilm_dir / "model.safetensors")
    config = BertConfig.from_pretrained(minilm_dir)
    table = stored_weights(config, "BertModel")
    buffers = set(state) - set(table)
    assert buffers == {"embeddings.position_ids"} and buffers <= set(OPTIONAL_BUFFERS)
    assert set(table) == set(state) - buffers
    for name, spec in table.items():
        assert tuple(state[name].shape) == spec.shape, name
    assert len(table) == 103


def test_head_tables():
    c = tiny_config(num_labels=3)
    names = {h: set(expected_weights(c, h)) for h in HEADS}
    assert "pooler.dense.weight" in names["BertModel"]
    assert "bert.pooler.dense.weight" not in names["BertForMaskedLM"]
    assert {"cls.predictions.bias", "cls.predictions.decoder.weight", "cls.seq_relationship.weight"} <= names[
        "BertForPreTraining"
    ]
    assert expected_weights(c, "BertForSequenceClassification")["classifier.weight"].shape == (3, 32)
    assert expected_weights(c, "BertForMultipleChoice")["classifier.weight"].shape == (1, 32)
    assert expected_weights(c, "BertForQuestionAnswering")["qa_outputs.weight"].shape == (3, 32)
    assert (
        expected_weights(c, "BertForMaskedLM")["cls.predictions.decoder.weight"].tied_to
        == "bert.embeddings.word_embeddings.weight"
    )
    assert "cls.predictions.decoder.weight" not in stored_weights(c, "BertForMaskedLM")
    untied = tiny_config(tie_word_embeddings=False)
    assert "cls.predictions.decoder.weight" in stored_weights(untied, "BertForMaskedLM")
    rel = tiny_config(position_embedding_type="relative_key", add_cross_attention=True, is_decoder=True)
    t = expected_weights(rel, "BertLMHeadModel")
    assert t["bert.encoder.layer.0.attention.self.distance_embedding.weight"].shape == (127, 8)
    assert "bert.encoder.layer.1.crossattention.output.LayerNorm.bias" in t
    with pytest.raises(ValueError, match="unknown head"):
        expected_weights(c, "BertForEverything")


def test_backend_paths_are_mechanical():
    c = tiny_config()
    spec = expected_weights(c, "BertForMaskedLM")["bert.encoder.layer.1.attention.self.query.weight"]
    assert backend_path(spec, "torch") == (
        ("bert", "encoder", "layer", "1", "attention", "self", "query", "weight"),
        False,
    )
    assert backend_path(spec, "tf") == (("bert", "encoder", "layer", "1", "attention", "self", "query", "kernel"), True)
    ln = expected_weights(c)["embeddings.LayerNorm.weight"]
    assert backend_path(ln, "tf")[0][-1] == "gamma" and backend_path(ln, "flax")[0][-1] == "scale"
    emb = expected_weights(c)["embeddings.word_embeddings.weight"]
    assert backend_path(emb, "tf")[0][-1] == "embeddings" and backend_path(emb, "flax")[0][-1] == "embedding"
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert to_backend_array(w, spec, "flax").shape == (3, 2)
    np.testing.assert_array_equal(from_backend_array(to_backend_array(w, spec, "tf"), spec, "tf"), w)
    with pytest.raises(ValueError, match="unknown backend"):
        backend_path(spec, "mxnet")


def test_legacy_spellings_are_normalised():
    state = {
        "embeddings.LayerNorm.gamma": 1,
        "embeddings.LayerNorm.beta": 2,
        "embeddings.position_ids": 3,
        "cls.predictions.decoder.bias": 4,
        "bert.embeddings.token_type_ids": 5,
    }
    out = normalize_state_dict(state, "BertForMaskedLM")
    assert out == {
        "bert.embeddings.LayerNorm.weight": 1,
        "bert.embeddings.LayerNorm.bias": 2,
        "cls.predictions.bias": 4,
    }
    out = normalize_state_dict({"bert.pooler.dense.weight": 1, "cls.seq_relationship.bias": 2}, "BertModel")
    assert out == {"pooler.dense.weight": 1, "cls.seq_relationship.bias": 2}


def test_match_reports_missing_unexpected_mismatched(minilm_dir):
    state = read_safetensors(minilm_dir / "model.safetensors")
    config = BertConfig.from_pretrained(minilm_dir, num_labels=4)
    weights, info = match_state_dict(state, config, "BertForSequenceClassification")
    assert info.missing_keys == ["classifier.weight", "classifier.bias"] and not info.unexpected_keys
    assert len(weights) == 103 and all(k.startswith("bert.") for k in weights)
    bad = dict(state)
    bad["pooler.dense.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"pooler\.dense\.weight.*\(3, 3\).*\(384, 384\)"):
        match_state_dict(bad, config, "BertModel")
    _, info = match_state_dict(bad, config, "BertModel", ignore_mismatched_sizes=True)
    assert info.mismatched_keys == [("pooler.dense.weight", (3, 3), (384, 384))]
    assert "pooler.dense.weight" not in info.missing_keys


def test_init_distributions_and_determinism():
    c = BertConfig(
        hidden_size=64,
        num_attention_heads=4,
        num_hidden_layers=1,
        intermediate_size=128,
        vocab_size=5000,
        pad_token_id=3,
    )
    w = init_weights(c, "BertForPreTraining", seed=7)
    assert set(w) == set(stored_weights(c, "BertForPreTraining"))
    emb = w["bert.embeddings.word_embeddings.weight"]
    assert emb.dtype == np.float32 and np.all(emb[3] == 0)
    assert abs(emb.std() - 0.02) < 0.001 and abs(emb.mean()) < 0.001
    assert np.all(w["bert.embeddings.LayerNorm.weight"] == 1) and np.all(w["bert.embeddings.LayerNorm.bias"] == 0)
    assert np.all(w["cls.predictions.bias"] == 0) and np.all(w["bert.pooler.dense.bias"] == 0)
    again = init_weights(c, "BertForPreTraining", seed=7)
    assert all(np.array_equal(w[k], again[k]) for k in w)
    other = init_weights(c, "BertForPreTraining", seed=8)
    assert not np.array_equal(w["bert.pooler.dense.weight"], other["bert.pooler.dense.weight"])
    only = init_weights(c, "BertForPreTraining", seed=7, names=["cls.seq_relationship.weight"])
    np.testing.assert_array_equal(only["cls.seq_relationship.weight"], w["cls.seq_relationship.weight"])
    done = complete_weights({"bert.pooler.dense.bias": np.ones(64, np.float32)}, c, "BertForPreTraining", seed=7)
    assert np.all(done["bert.pooler.dense.bias"] == 1) and list(done) == list(stored_weights(c, "BertForPreTraining"))
