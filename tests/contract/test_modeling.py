"""Shared model behaviour: activations, output classes and tuples, masks, positions, head_mask, chunking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bert_core import outputs as core_outputs
from bert_core.config import tiny_config
from bert_core.weights import HEADS

from .conftest import random_ids

_ERF = np.vectorize(math.erf)
_X = np.linspace(-4, 4, 101).astype(np.float32)
_TANH_GELU = 0.5 * _X * (1 + np.tanh(math.sqrt(2 / math.pi) * (_X + 0.044715 * _X**3)))
_SIGMOID = 1 / (1 + np.exp(-_X.astype(np.float64)))
ACTIVATIONS = {
    "gelu": _X * 0.5 * (1 + _ERF(_X / math.sqrt(2))),
    "gelu_python": _X * 0.5 * (1 + _ERF(_X / math.sqrt(2))),
    "gelu_new": _TANH_GELU,
    "gelu_fast": _TANH_GELU,
    "gelu_pytorch_tanh": _TANH_GELU,
    "quick_gelu": _X / (1 + np.exp(-1.702 * _X.astype(np.float64))),
    "relu": np.maximum(_X, 0),
    "silu": _X * _SIGMOID,
    "swish": _X * _SIGMOID,
    "tanh": np.tanh(_X),
    "mish": _X * np.tanh(np.log1p(np.exp(_X.astype(np.float64)))),
}
OUTPUT_CLASS = {
    "BertModel": core_outputs.BaseModelOutputWithPoolingAndCrossAttentions,
    "BertForPreTraining": core_outputs.BertForPreTrainingOutput,
    "BertLMHeadModel": core_outputs.CausalLMOutputWithCrossAttentions,
    "BertForMaskedLM": core_outputs.MaskedLMOutput,
    "BertForNextSentencePrediction": core_outputs.NextSentencePredictorOutput,
    "BertForSequenceClassification": core_outputs.SequenceClassifierOutput,
    "BertForMultipleChoice": core_outputs.MultipleChoiceModelOutput,
    "BertForTokenClassification": core_outputs.TokenClassifierOutput,
    "BertForQuestionAnswering": core_outputs.QuestionAnsweringModelOutput,
}


def test_activation_table(backend):
    assert set(backend.modeling.ACT2FN) == set(ACTIVATIONS)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activations(backend, act):
    got = backend.numpy(backend.modeling.ACT2FN[act](backend.tensor(_X)))
    np.testing.assert_allclose(got, ACTIVATIONS[act], atol=2e-6, err_msg=act)
    model = backend.make("BertForMaskedLM", hidden_act=act)
    assert np.isfinite(backend.run(model, input_ids=random_ids(model.config))["logits"]).all()


@pytest.mark.parametrize("head", HEADS)
def test_output_class_fields_and_tuple(backend, head):
    model = backend.make(head)
    ids = random_ids(model.config, choices=3 if head == "BertForMultipleChoice" else 0)
    out = backend.raw(model, input_ids=ids, output_hidden_states=True, output_attentions=True)
    assert type(out) is OUTPUT_CLASS[head]
    layers = model.config.num_hidden_layers
    assert len(out.hidden_states) == layers + 1 and len(out.attentions) == layers
    tup = backend.adapter.call(model, dict(input_ids=backend.tensor(ids), return_dict=False))
    assert isinstance(tup, tuple) and len(tup) == len(backend.raw(model, input_ids=ids).to_tuple())


def test_padding_does_not_leak(backend):
    model = backend.make("BertModel")
    ids = random_ids(model.config)
    mask = np.ones_like(ids)
    mask[1, 4:] = 0
    out = backend.run(model, input_ids=ids, attention_mask=mask)["last_hidden_state"]
    changed = ids.copy()
    changed[1, 4:] = 3
    again = backend.run(model, input_ids=changed, attention_mask=mask)["last_hidden_state"]
    np.testing.assert_allclose(out[1, :4], again[1, :4], atol=1e-5)
    trimmed = backend.run(model, input_ids=ids[1:, :4])["last_hidden_state"]
    np.testing.assert_allclose(out[1, :4], trimmed[0], atol=1e-5)


def test_mask_ranks_agree(backend):
    """A (B, K) mask, its (B, S, K) and (B, 1, S, K) forms give the same result."""
    model = backend.make("BertModel")
    ids = random_ids(model.config)
    mask = np.ones_like(ids)
    mask[0, 5:] = 0
    two = backend.run(model, input_ids=ids, attention_mask=mask)["last_hidden_state"]
    three = np.repeat(mask[:, None, :], ids.shape[1], axis=1)
    for m in (three, three[:, None]):
        got = backend.run(model, input_ids=ids, attention_mask=m)["last_hidden_state"]
        np.testing.assert_allclose(got, two, atol=1e-5)


def test_token_types_position_ids_inputs_embeds_and_head_mask(backend):
    model = backend.make("BertModel")
    config = model.config
    ids = random_ids(config)
    base = backend.run(model, input_ids=ids)["last_hidden_state"]
    explicit = backend.run(
        model, input_ids=ids, token_type_ids=np.zeros_like(ids), position_ids=np.arange(ids.shape[1])[None].repeat(2, 0)
    )["last_hidden_state"]
    np.testing.assert_allclose(explicit, base, atol=1e-6)
    shifted = backend.run(model, input_ids=ids, position_ids=np.arange(1, ids.shape[1] + 1)[None])["last_hidden_state"]
    assert not np.allclose(shifted, base, atol=1e-4)
    types = backend.run(model, input_ids=ids, token_type_ids=np.ones_like(ids))["last_hidden_state"]
    assert not np.allclose(types, base, atol=1e-4)
    word = backend.numpy(model.canonical_weights()["embeddings.word_embeddings.weight"])
    embeds = word[ids].astype(np.float32)
    np.testing.assert_allclose(backend.run(model, inputs_embeds=embeds)["last_hidden_state"], base, atol=1e-5)
    head_mask = np.ones((config.num_hidden_layers, config.num_attention_heads), np.float32)
    head_mask[0, 1] = 0
    out = backend.run(model, input_ids=ids, head_mask=head_mask, output_attentions=True)
    assert np.all(out["attentions.0"][:, 1] == 0) and not np.allclose(out["last_hidden_state"], base, atol=1e-5)


@pytest.mark.parametrize("pos", ["relative_key", "relative_key_query"])
def test_relative_positions_are_translation_invariant(backend, pos):
    model = backend.make("BertModel", position_embedding_type=pos)
    ids = random_ids(model.config)
    out = backend.run(model, input_ids=ids, output_attentions=True)
    assert np.isfinite(out["last_hidden_state"]).all()
    # relative scores ignore position_ids
    moved = backend.run(model, input_ids=ids, position_ids=np.arange(3, 3 + ids.shape[1])[None], output_attentions=True)
    np.testing.assert_allclose(moved["last_hidden_state"], out["last_hidden_state"], atol=1e-6)


@pytest.mark.parametrize("seq, chunk", [(8, 4), (7, 3), (5, 9)])
def test_chunked_feed_forward_is_equal(backend, seq, chunk):
    """Even, uneven (a shorter last chunk) and larger-than-sequence chunks all give the unchunked result."""
    ids = random_ids(tiny_config(), seq=seq)
    plain = backend.run(backend.make("BertModel"), input_ids=ids)["last_hidden_state"]
    chunked = backend.run(backend.make("BertModel", chunk_size_feed_forward=chunk), input_ids=ids)["last_hidden_state"]
    np.testing.assert_allclose(chunked, plain, atol=1e-6)


def test_seeded_init_is_the_same_everywhere(backend):
    """Weights come from bert_core.init: a seed gives the same arrays in every backend (and differ across seeds)."""
    from bert_core.init import init_weights

    model = backend.make("BertForMaskedLM", seed=5)
    expected = init_weights(model.config, "BertForMaskedLM", 5)
    got = model.canonical_weights()
    assert list(got) == list(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(backend.numpy(got[name]), array, err_msg=name)
