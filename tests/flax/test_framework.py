"""JAX integration: nnx.jit, split/merge + jax.jit/grad/vmap, remat, the tied variable, optax training, generate compiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bert_flax
from bert_core.config import tiny_config
from bert_flax.training import create_optimizer, train_step

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
    optimizer = create_optimizer(model, 3e-3, schedule="constant", total_steps=30, weight_decay=0.01, max_grad_norm=0)
    batch = dict(input_ids=ids, labels=labels)
    first = float(model(**batch).loss)
    for _ in range(30):
        train_step(model, optimizer, batch)
    assert float(model(**batch).loss) < 0.5 * first


def test_tied_decoder_through_nnx_grad_and_train_step():
    model = bert_flax.BertForMaskedLM(tiny_config(), seed=3)
    batch = dict(input_ids=IDS, labels=IDS)
    _, want = bert_flax.canonical_grads(model, batch)
    grads = nnx.grad(lambda m: m(**batch).loss)(model)
    # one gradient for the shared variable: the lookup's and the decoder's contributions summed
    np.testing.assert_allclose(
        grads["bert"]["embeddings"]["word_embeddings"]["embedding"][...],
        want["bert.embeddings.word_embeddings.weight"],
        atol=1e-6,
    )
    assert "decoder" not in grads["cls"]["predictions"]
    optimizer = create_optimizer(model, 1e-2, schedule="constant", total_steps=1)
    before = np.asarray(model.bert.embeddings.word_embeddings.embedding[...])
    train_step(model, optimizer, batch)
    assert model.cls.predictions.decoder is model.bert.embeddings.word_embeddings
    assert not np.allclose(before, model.bert.embeddings.word_embeddings.embedding[...])


def test_generate_compiles_once_per_shape():
    from bert_flax.modeling import _generate

    model = bert_flax.BertLMHeadModel(tiny_config(is_decoder=True), seed=1)
    kw = dict(max_new_tokens=3, do_sample=True, top_p=0.8)
    model.generate(IDS[:, :4], seed=0, **kw)
    size = _generate._cache_size()
    model.generate(IDS[:, 4:], seed=1, temperature=0.5, **kw)  # new prompt, seed and temperature: same program
    assert _generate._cache_size() == size


def test_remat_matches_plain_under_nnx_jit_with_cache():
    config = tiny_config(is_decoder=True, gradient_checkpointing=True)
    model = bert_flax.BertLMHeadModel(config, seed=2)
    plain = bert_flax.BertLMHeadModel(tiny_config(is_decoder=True), seed=2)
    step = nnx.jit(lambda m, x, c: m(x, past_key_values=c))
    a = step(model, IDS[:, :4], model.init_cache(2, 8))
    b = step(plain, IDS[:, :4], plain.init_cache(2, 8))
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-6)
    np.testing.assert_allclose(a.past_key_values.layers[1][0], b.past_key_values.layers[1][0], atol=1e-6)


def test_jitted_train_step_refuses_bad_labels_before_touching_the_weights():
    """A bad batch used to give a NaN loss inside jit (label >= num_labels) or read -1 as the last class."""
    import numpy as np

    from bert_core.config import tiny_config
    from bert_flax import BertForSequenceClassification
    from bert_flax.training import create_optimizer, train_step

    model = BertForSequenceClassification(tiny_config())
    optimizer = create_optimizer(model, 1e-3, total_steps=1)
    before = model.canonical_weights()
    ids = np.ones((2, 5), np.int64)
    for labels, message in ((np.array([0, 2]), "labels contains 2"), (np.array([-1, 0]), "labels contains -1")):
        with pytest.raises(ValueError, match=message):
            train_step(model, optimizer, {"input_ids": ids, "labels": labels})
    with pytest.raises(ValueError, match="input_ids contains id 99"):
        train_step(model, optimizer, {"input_ids": np.full((2, 5), 99), "labels": np.array([0, 1])})
    after = model.canonical_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    loss, grad_norm = train_step(model, optimizer, {"input_ids": ids, "labels": np.array([0, 1])})
    assert np.isfinite(float(loss)) and float(grad_norm) > 0
