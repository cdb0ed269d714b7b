"""Decoder caches: incremental decoding equals the full pass, with padding, cross-attention and relative positions."""

from __future__ import annotations

import numpy as np
import pytest

from bert_core.config import tiny_config

from .conftest import random_ids


@pytest.mark.parametrize("cross", [False, True])
def test_cache_equals_full_pass(backend, cross):
    config = tiny_config(is_decoder=True, add_cross_attention=cross)
    model = backend.make("BertLMHeadModel", config)
    ids = random_ids(config, seq=9)
    enc = {}
    if cross:
        enc = dict(
            encoder_hidden_states=np.random.default_rng(3).standard_normal((2, 5, 32)).astype(np.float32),
            encoder_attention_mask=np.array([[1] * 5, [1, 1, 1, 0, 0]]),
        )
    full = backend.run(model, input_ids=ids, use_cache=False, **enc)
    assert not any(k.startswith("past_key_values") for k in full)
    first = backend.raw(model, input_ids=ids[:, :6], **enc)  # use_cache defaults to config.use_cache in decoders
    past = first.past_key_values
    assert len(past) == config.num_hidden_layers and len(past[0]) == (4 if cross else 2)
    assert tuple(past[0][0].shape) == (2, 4, 6, 8)
    if cross:
        assert tuple(past[0][2].shape) == (2, 4, 5, 8)
    step = backend.run(model, input_ids=ids[:, 6:], past_key_values=past, **enc)
    assert step["past_key_values.0.0"].shape == (2, 4, 9, 8)
    np.testing.assert_allclose(step["logits"], full["logits"][:, 6:], atol=1e-5)
    np.testing.assert_allclose(backend.numpy(first.logits), full["logits"][:, :6], atol=1e-5)
    changed = ids.copy()
    changed[:, -1] = 5  # causal: a later token does not change earlier logits
    later = backend.run(model, input_ids=changed, use_cache=False, **enc)["logits"]
    np.testing.assert_allclose(later[:, :-1], full["logits"][:, :-1], atol=1e-6)
    att = backend.run(model, input_ids=ids, output_attentions=True, use_cache=False, **enc)
    assert np.all(att["attentions.0"][:, :, 0, 1:] == 0)
    if cross:
        assert att["cross_attentions.0"].shape == (2, 4, 9, 5)
        assert np.all(att["cross_attentions.0"][1, :, :, 3:] == 0)


def test_cache_with_padding_mask(backend):
    model = backend.make("BertLMHeadModel")
    ids = random_ids(model.config, seq=6)
    mask = np.array([[1] * 6, [1, 1, 1, 1, 0, 1]])
    full = backend.run(model, input_ids=ids, attention_mask=mask, use_cache=False)["logits"]
    first = backend.raw(model, input_ids=ids[:, :4], attention_mask=mask[:, :4])
    step = backend.run(model, input_ids=ids[:, 4:], attention_mask=mask, past_key_values=first.past_key_values)
    np.testing.assert_allclose(step["logits"], full[:, 4:], atol=1e-5)


def test_relative_positions_with_cache(backend):
    # HF 4.57 places every query at the last key position whenever a cache is in use
    model = backend.make("BertLMHeadModel", position_embedding_type="relative_key_query")
    ids = random_ids(model.config, seq=5)
    with_cache = backend.run(model, input_ids=ids)["logits"]
    again = backend.raw(model, input_ids=ids[:, :4])
    step = backend.run(model, input_ids=ids[:, 4:], past_key_values=again.past_key_values)["logits"]
    np.testing.assert_allclose(step[:, 0], with_cache[:, -1], atol=1e-5)
