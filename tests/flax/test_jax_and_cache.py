"""JAX integration (nnx.jit, split/merge + jax.jit/grad/vmap, remat, training), caches, generate, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bert_flax
from bert_core.config import tiny_config
from bert_flax.training import make_optimizer, train_step

IDS = np.random.default_rng(1).integers(1, 99, (2, 8))


@pytest.fixture(scope="module")
def mlm():
    return bert_flax.BertForMaskedLM(tiny_config(), seed=2)


def test_nnx_jit_and_split_merge_jax_jit_vmap(mlm):
    eager = mlm(IDS, output_hidden_states=True)
    jitted = nnx.jit(lambda m, x: m(x, output_hidden_states=True))(mlm, IDS)
    assert type(jitted) is type(eager)  # outputs are pytrees
    np.testing.assert_allclose(jitted.logits, eager.logits, atol=1e-5)
    graphdef, state = nnx.split(mlm)
    logits = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x).logits)(state, IDS)
    np.testing.assert_allclose(logits, eager.logits, atol=1e-5)
    per_row = jax.vmap(lambda x: nnx.merge(graphdef, state)(x[None]).logits[0])(jnp.asarray(IDS))
    np.testing.assert_allclose(per_row, eager.logits, atol=1e-5)


def test_grad_tied_embedding_and_remat():
    inputs = dict(input_ids=IDS, labels=IDS)
    plain = bert_flax.BertForMaskedLM(tiny_config(), seed=3)
    remat = bert_flax.BertForMaskedLM(tiny_config(gradient_checkpointing=True), seed=3)
    loss, grads = bert_flax.canonical_grads(plain, inputs)
    loss_r, grads_r = bert_flax.canonical_grads(remat, inputs)
    assert list(grads) == list(plain.canonical_weights())
    assert loss == pytest.approx(loss_r, abs=1e-6)
    for name in grads:
        np.testing.assert_allclose(grads[name], grads_r[name], atol=1e-6, err_msg=name)
    # the tied decoder's gradient reaches word_embeddings: rows never fed as input still get one
    unused = sorted(set(range(99)) - set(IDS.ravel().tolist()))[0]
    assert np.abs(grads["bert.embeddings.word_embeddings.weight"][unused]).max() > 0
    # linear weight gradients come back in PyTorch layout (out, in)
    assert grads["bert.encoder.layer.0.intermediate.dense.weight"].shape == (37, 32)
    # a finite difference on one weight agrees
    name, idx, eps = "cls.predictions.transform.dense.bias", 3, 1e-2
    w = plain.canonical_weights()
    w[name] = w[name].copy()
    w[name][idx] += eps
    plain.load_canonical_weights(w)
    up = float(plain(**inputs).loss)
    w[name][idx] -= 2 * eps
    plain.load_canonical_weights(w)
    down = float(plain(**inputs).loss)
    assert (up - down) / (2 * eps) == pytest.approx(float(grads[name][idx]), rel=2e-2, abs=1e-4)


def test_adamw_training_reduces_loss():
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 99, (16, 6))
    labels = (ids[:, 1] > 50).astype(np.int32)  # learnable from one token
    model = bert_flax.BertForSequenceClassification(tiny_config(), seed=0)
    optimizer = make_optimizer(model, learning_rate=3e-3)
    batch = dict(input_ids=ids, labels=labels)
    first = float(model(**batch).loss)
    for _ in range(30):
        train_step(model, optimizer, batch)
    assert float(model(**batch).loss) < 0.5 * first


@pytest.mark.parametrize("kind", ["absolute", "relative_key_query"])
def test_cached_decoding_equals_full_decoding(kind):
    config = tiny_config(is_decoder=True, add_cross_attention=True, position_embedding_type=kind)
    model = bert_flax.BertLMHeadModel(config, seed=4)
    enc = np.random.default_rng(2).normal(size=(2, 5, 32)).astype(np.float32)
    full = model(IDS, encoder_hidden_states=enc, use_cache=False).logits
    # legacy tuples, growing
    out = model(IDS[:, :1], encoder_hidden_states=enc, use_cache=True)
    steps = [out.logits]
    for t in range(1, 8):
        out = model(IDS[:, t : t + 1], encoder_hidden_states=enc, past_key_values=out.past_key_values)
        steps.append(out.logits)
    assert len(out.past_key_values[0]) == 4 and out.past_key_values[0][0].shape == (2, 4, 8, 8)
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)
    # fixed cache under jit: one compile, reused for every step
    step = nnx.jit(lambda m, x, c: m(x, encoder_hidden_states=enc, past_key_values=c))
    cache = model.init_cache(2, 10)
    fixed = []
    for t in range(8):
        out = step(model, IDS[:, t : t + 1], cache)
        cache = out.past_key_values
        fixed.append(out.logits)
    assert int(cache.index) == 8 and cache.layers[0][0].shape == (2, 4, 10, 8)
    np.testing.assert_allclose(np.concatenate(fixed, 1), full, atol=1e-5)


def test_generate_is_greedy_and_stops_at_eos():
    model = bert_flax.BertLMHeadModel(tiny_config(is_decoder=True), seed=5)
    prompt = IDS[:, :3]
    got = np.asarray(model.generate(prompt, max_new_tokens=4))
    seq = prompt
    for _ in range(4):
        nxt = np.asarray(model(seq, use_cache=False).logits[:, -1].argmax(-1))
        seq = np.concatenate([seq, nxt[:, None]], 1)
    np.testing.assert_array_equal(got, seq)
    eos = int(seq[0, 3])
    stopped = np.asarray(model.generate(prompt, max_new_tokens=4, eos_token_id=eos, pad_token_id=0))
    assert stopped[0, 3] == eos and (stopped[0, 4:] == 0).all()


def test_bad_inputs_raise_before_tracing(mlm):
    with pytest.raises(ValueError, match="id 99, out of range for vocab_size=99"):
        mlm(np.array([[1, 99]]))
    with pytest.raises(ValueError, match="negative id -1"):
        mlm(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="token_type_ids contains 2"):
        mlm(IDS, token_type_ids=np.full_like(IDS, 2))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=64"):
        mlm(np.ones((1, 65), np.int32))
    with pytest.raises(ValueError, match="both input_ids and inputs_embeds"):
        mlm(IDS, inputs_embeds=np.zeros((2, 8, 32), np.float32))
    with pytest.raises(ValueError, match="either input_ids or inputs_embeds"):
        mlm()
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 7\) but input_ids has shape \(2, 8\)"):
        mlm(IDS, attention_mask=np.ones((2, 7)))
    with pytest.raises(ValueError, match=r"token_type_ids has shape \(2, 7\)"):
        mlm(IDS, token_type_ids=np.zeros((2, 7), np.int32))
    with pytest.raises(ValueError, match="head_mask has shape"):
        mlm(IDS, head_mask=np.ones(3))
    with pytest.raises(ValueError, match="is_decoder is False"):
        bert_flax.BertModel(tiny_config())(IDS, past_key_values=((np.zeros((2, 4, 1, 8)),) * 2,) * 2)
    # static checks still fire inside jit, with the same wording
    with pytest.raises(ValueError, match="attention_mask has shape"):
        nnx.jit(lambda m, x, a: m(x, attention_mask=a))(mlm, IDS, np.ones((2, 7)))
    decoder = bert_flax.BertLMHeadModel(tiny_config(is_decoder=True), seed=0)
    past = decoder(IDS, use_cache=True).past_key_values
    with pytest.raises(ValueError, match=r"sequence length 65 \(8 cached \+ 57 new\)"):
        decoder(np.ones((2, 57), np.int32), past_key_values=past)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        decoder.init_cache(1, 65)
