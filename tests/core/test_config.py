import json

import pytest

from bert_core.config import SUPPORTED_ACTIVATIONS, BertConfig, tiny_config


def test_defaults_match_hf_signature():
    c = BertConfig()
    expected = dict(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type="absolute",
        use_cache=True,
        classifier_dropout=None,
        is_decoder=False,
        add_cross_attention=False,
        tie_word_embeddings=True,
        problem_type=None,
        output_attentions=False,
        output_hidden_states=False,
        return_dict=True,
        chunk_size_feed_forward=0,
    )
    for k, v in expected.items():
        assert getattr(c, k) == v, k
    assert (
        c.num_labels == 2 and c.id2label == {0: "LABEL_0", 1: "LABEL_1"} and c.label2id == {"LABEL_0": 0, "LABEL_1": 1}
    )
    assert c.use_return_dict is True and c.head_dim == 64


def test_minilm_round_trip_keeps_unknown_keys_and_values(minilm_dir, tmp_path):
    original = json.loads((minilm_dir / "config.json").read_text())
    c = BertConfig.from_pretrained(minilm_dir)
    assert c.hidden_size == 384 and c.num_hidden_layers == 6
    assert c.architectures == ["BertModel"] and c.transformers_version == "4.8.2"
    c.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    for key, value in original.items():
        assert written[key] == value, key
    again = BertConfig.from_pretrained(tmp_path)
    assert again == c
    assert again.to_dict() == c.to_dict()


def test_overrides_and_labels(minilm_dir):
    c = BertConfig.from_pretrained(
        minilm_dir, num_labels=3, problem_type="multi_label_classification", hidden_dropout_prob=0.0
    )
    assert c.num_labels == 3 and c.problem_type == "multi_label_classification" and c.hidden_dropout_prob == 0.0
    c2 = BertConfig(id2label={"0": "neg", "1": "pos", "2": "neutral"})
    assert c2.num_labels == 3 and c2.label2id == {"neg": 0, "pos": 1, "neutral": 2}
    text = c2.to_json_string()
    assert json.loads(text)["id2label"] == {"0": "neg", "1": "pos", "2": "neutral"}
    c3 = BertConfig.from_dict(json.loads(text))
    assert c3.id2label == {0: "neg", 1: "pos", 2: "neutral"}
    c3.num_labels = 5
    assert len(c3.id2label) == 5


def test_to_json_string_use_diff_and_setattr_round_trip(tmp_path):
    c = tiny_config()
    c.my_flag = "x"
    d = json.loads(c.to_json_string(use_diff=True))
    assert d["hidden_size"] == 32 and d["my_flag"] == "x" and "layer_norm_eps" not in d
    c.save_pretrained(tmp_path)
    assert BertConfig.from_pretrained(tmp_path / "config.json").my_flag == "x"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(hidden_size=30, num_attention_heads=4), "hidden_size"),
        (dict(hidden_act="gelu_2"), "hidden_act"),
        (dict(position_embedding_type="rotary"), "position_embedding_type"),
        (dict(num_labels=3, id2label={0: "a", 1: "b"}), "num_labels"),
        (dict(vocab_size=-1), "vocab_size"),
        (dict(num_hidden_layers=0), "num_hidden_layers"),
        (dict(intermediate_size=-5), "intermediate_size"),
        (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
        (dict(problem_type="ranking"), "problem_type"),
        (dict(layer_norm_eps=0), "layer_norm_eps"),
        (dict(pad_token_id=40000), "pad_token_id"),
        (dict(classifier_dropout=2.0), "classifier_dropout"),
    ],
)
def test_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BertConfig(**kwargs)


def test_every_supported_activation_is_accepted():
    for act in SUPPORTED_ACTIVATIONS:
        assert BertConfig(hidden_act=act).hidden_act == act


def test_missing_config_and_bad_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BertConfig.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="model_type"):
        BertConfig.from_pretrained(tmp_path)


def test_hub_id_resolves_from_offline_cache(hub_cache):
    c = BertConfig.from_pretrained("sentence-transformers/all-MiniLM-L6-v2", cache_dir=hub_cache)
    assert c.hidden_size == 384
    with pytest.raises(FileNotFoundError, match="could not resolve 'nobody/missing'"):
        BertConfig.from_pretrained("nobody/missing", cache_dir=hub_cache)
