"""``BertLMHeadModel.generate``: one behaviour in every backend (docs/ladder.md, "Generation")."""

from __future__ import annotations

import numpy as np
import pytest

from bert_core.config import tiny_config

from .conftest import random_ids


def decoder(backend, **overrides):
    return backend.make("BertLMHeadModel", tiny_config(is_decoder=True, **overrides))


def greedy_by_recomputation(backend, model, ids, steps, mask=None, **extra):
    """Reference greedy decoding: a full forward pass (no cache) per step, HF's position ids for padded prompts."""
    seq = ids.copy()
    mask = np.ones_like(ids) if mask is None else mask.copy()
    for _ in range(steps):
        positions = np.where(mask == 0, 1, np.cumsum(mask, -1) - 1)
        logits = backend.run(
            model, input_ids=seq, attention_mask=mask, position_ids=positions, use_cache=False, **extra
        )
        nxt = logits["logits"][:, -1].argmax(-1)
        seq = np.concatenate([seq, nxt[:, None]], 1)
        mask = np.concatenate([mask, np.ones((mask.shape[0], 1), mask.dtype)], 1)
    return seq


def test_greedy_equals_recomputation(backend):
    model = decoder(backend)
    prompt = random_ids(model.config, seq=4)
    got = backend.generate(model, prompt, max_new_tokens=6)
    assert got.shape == (2, 10)
    np.testing.assert_array_equal(got, greedy_by_recomputation(backend, model, prompt, 6))


def test_left_padded_batch_equals_each_prompt_alone(backend):
    model = decoder(backend)
    long = random_ids(model.config, batch=1, seq=5, seed=1)[0]
    short = random_ids(model.config, batch=1, seq=3, seed=2)[0]
    pad = model.config.pad_token_id
    batch = np.stack([long, np.concatenate([[pad, pad], short])])
    mask = np.array([[1] * 5, [0, 0, 1, 1, 1]])
    got = backend.generate(model, batch, attention_mask=mask, max_new_tokens=5)
    alone_long = backend.generate(model, long[None], max_new_tokens=5)
    alone_short = backend.generate(model, short[None], max_new_tokens=5)
    np.testing.assert_array_equal(got[0], alone_long[0])
    np.testing.assert_array_equal(got[1, 2:], alone_short[0])
    np.testing.assert_array_equal(got, greedy_by_recomputation(backend, model, batch, 5, mask))


def test_eos_pads_finished_rows_and_stops_early(backend):
    model = decoder(backend)
    prompt = random_ids(model.config, seq=3)
    free = backend.generate(model, prompt, max_new_tokens=6)
    eos = int(free[0, 4])  # row 0 emits it at its second new token
    out = backend.generate(model, prompt, max_new_tokens=6, eos_token_id=eos, pad_token_id=0)
    for row in out[:, 3:]:
        hits = np.flatnonzero(row == eos)
        if hits.size:
            assert np.all(row[hits[0] + 1 :] == 0)
    # every row finished before max_new_tokens -> fewer steps are run and returned
    both = int(free[1, 3])
    first = backend.generate(model, prompt[1:], max_new_tokens=6, eos_token_id=both, pad_token_id=0)
    assert first.shape == (1, 4) and first[0, -1] == both


def test_sampling_is_reproducible_and_respects_top_k(backend):
    model = decoder(backend)
    prompt = random_ids(model.config, seq=3)
    kw = dict(max_new_tokens=5, do_sample=True, top_k=3, temperature=0.7, seed=1)
    a = backend.generate(model, prompt, **kw)
    b = backend.generate(model, prompt, **kw)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 8)
    logits = backend.run(model, input_ids=prompt, use_cache=False)["logits"][:, -1]
    top3 = np.argsort(-logits, -1)[:, :3]
    assert all(a[i, 3] in top3[i] for i in range(2))
    greedy = backend.generate(model, prompt, max_new_tokens=5)
    np.testing.assert_array_equal(
        backend.generate(model, prompt, max_new_tokens=5, do_sample=True, top_k=1, seed=4), greedy
    )
    # a tiny nucleus keeps only the most likely token: greedy again
    np.testing.assert_array_equal(
        backend.generate(model, prompt, max_new_tokens=5, do_sample=True, top_p=1e-6, seed=5), greedy
    )


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_sampling_distribution_matches_the_processed_softmax(backend):
    """First sampled token over many rows follows softmax(top_k/top_p-filtered logits / temperature)."""
    model = decoder(backend, vocab_size=20)
    prompt = np.tile(random_ids(model.config, batch=1, seq=3, seed=7), (2000, 1))
    logits = backend.run(model, input_ids=prompt[:1], use_cache=False)["logits"][0, -1].astype(np.float64)
    temperature, top_k, top_p = 0.8, 6, 0.9
    scaled = logits / temperature
    kth = np.sort(scaled)[-top_k]
    scaled = np.where(scaled < kth, -np.inf, scaled)
    order = np.argsort(scaled)  # ascending, as HF's TopPLogitsWarper
    cumulative = np.cumsum(_softmax(scaled[order]))
    removed = cumulative <= 1 - top_p
    removed[-1] = False
    scaled[order[removed]] = -np.inf
    expected = _softmax(scaled)
    drawn = backend.generate(
        model, prompt, max_new_tokens=1, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p, seed=11
    )[:, -1]
    observed = np.bincount(drawn, minlength=20) / len(drawn)
    assert np.all(observed[expected == 0] == 0)
    assert 0.5 * np.abs(observed - expected).sum() < 0.05, (observed, expected)


def test_cross_attention_generate(backend):
    model = decoder(backend, add_cross_attention=True)
    prompt = random_ids(model.config, seq=3)
    enc = dict(
        encoder_hidden_states=np.random.default_rng(3).standard_normal((2, 5, 32)).astype(np.float32),
        encoder_attention_mask=np.array([[1] * 5, [1, 1, 1, 0, 0]]),
    )
    got = backend.generate(model, prompt, max_new_tokens=4, **enc)
    np.testing.assert_array_equal(got, greedy_by_recomputation(backend, model, prompt, 4, **enc))


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(max_new_tokens=0), "max_new_tokens must be an integer >= 1"),
        (dict(do_sample=True, temperature=0.0), "temperature must be a number > 0"),
        (dict(do_sample=True, top_k=0), "top_k must be None or an integer >= 1"),
        (dict(do_sample=True, top_p=1.5), r"top_p must be None or a number in \(0, 1\]"),
        (dict(max_new_tokens=70), "sequence length 73 exceeds max_position_embeddings=64"),
        (dict(eos_token_id=500), r"eos_token_id must be None or an id in 0..98"),
    ],
)
def test_bad_generate_arguments(backend, kwargs, pattern):
    model = decoder(backend)
    with pytest.raises(ValueError, match=pattern):
        backend.generate(model, random_ids(model.config, seq=3), **kwargs)


def test_generate_needs_a_decoder(backend):
    model = backend.make("BertLMHeadModel", tiny_config())
    with pytest.raises(ValueError, match="generate needs config.is_decoder=True"):
        backend.generate(model, random_ids(model.config, seq=3))


def test_greedy_is_identical_across_backends(all_backends):
    """Same weights, same prompts (left-padded, eos): the same tokens in every backend."""
    outs = {}
    for driver in all_backends:
        model = decoder(driver)
        batch = random_ids(model.config, batch=3, seq=5, seed=9)
        batch[2, :2] = model.config.pad_token_id
        mask = np.ones_like(batch)
        mask[2, :2] = 0
        outs[driver.name] = driver.generate(model, batch, attention_mask=mask, max_new_tokens=8, eos_token_id=7)
    first = next(iter(outs.values()))
    for name, got in outs.items():
        np.testing.assert_array_equal(got, first, err_msg=name)
