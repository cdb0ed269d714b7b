"""bert_flax on tiny configs: every class, argument and option, the ladder, caches, generate, input checks."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bert_flax
from bert_core.config import tiny_config
from bert_core.init import init_weights
from bert_core.weights import HEADS, stored_weights

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(0)
IDS = RNG.integers(1, 99, (2, 8))
MASK = np.ones((2, 8), np.int32)
MASK[1, -3:] = 0


@pytest.fixture(scope="module")
def models():
    """One instance per public class on the tiny config (decoder for the LM head)."""
    out = {}
    for cls in bert_flax.ALL_MODEL_CLASSES:
        config = tiny_config(is_decoder=True) if cls is bert_flax.BertLMHeadModel else tiny_config()
        out[cls.head_name] = cls(config, seed=1)
    return out


def call_inputs(head):
    if head == "BertForMultipleChoice":
        return dict(input_ids=np.stack([IDS, IDS[::-1]], 1), attention_mask=np.stack([MASK, MASK], 1))
    return dict(input_ids=IDS, attention_mask=MASK)


EXPECTED = {
    "BertModel": {"last_hidden_state": (2, 8, 32), "pooler_output": (2, 32)},
    "BertForPreTraining": {"prediction_logits": (2, 8, 99), "seq_relationship_logits": (2, 2)},
    "BertLMHeadModel": {"logits": (2, 8, 99)},
    "BertForMaskedLM": {"logits": (2, 8, 99)},
    "BertForNextSentencePrediction": {"logits": (2, 2)},
    "BertForSequenceClassification": {"logits": (2, 2)},
    "BertForMultipleChoice": {"logits": (2, 2)},
    "BertForTokenClassification": {"logits": (2, 8, 2)},
    "BertForQuestionAnswering": {"start_logits": (2, 8), "end_logits": (2, 8)},
}


@pytest.mark.parametrize("head", HEADS)
def test_every_head_shapes_flags_and_tuple(models, head):
    model = models[head]
    assert model.head_name == head
    out = model(**call_inputs(head), use_cache=False) if head == "BertLMHeadModel" else model(**call_inputs(head))
    for key, shape in EXPECTED[head].items():
        assert out[key].shape == shape and out[key].dtype == jnp.float32, key
    assert "hidden_states" not in out and "attentions" not in out
    full = model(**call_inputs(head), output_attentions=True, output_hidden_states=True)
    assert len(full.hidden_states) == 3 and len(full.attentions) == 2
    assert full.attentions[0].shape[1:] == (4, 8, 8)
    tup = model(**call_inputs(head), output_hidden_states=True, return_dict=False)
    assert isinstance(tup, tuple)
    np.testing.assert_allclose(tup[0], full[0], atol=1e-6)
    assert model.config.output_attentions is False  # flags never mutate the config


def test_weights_roundtrip_and_paths(models):
    for head, model in models.items():
        got = model.canonical_weights()
        want = init_weights(model.config, head, 1)
        assert list(got) == list(stored_weights(model.config, head))
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    state = nnx.state(models["BertForMaskedLM"], nnx.Param)
    paths = {
        tuple(getattr(k, "key", getattr(k, "name", k)) for k in p[:-1])
        for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]
    }
    assert ("bert", "encoder", "layer", 0, "attention", "self", "query", "kernel") in paths
    assert ("cls", "predictions", "bias") in paths


def test_load_canonical_weights_errors_name_the_tensor(models):
    model = models["BertForSequenceClassification"]
    weights = model.canonical_weights()
    weights.pop("classifier.bias")
    with pytest.raises(ValueError, match="classifier.bias"):
        model.load_canonical_weights(weights)
    weights = model.canonical_weights()
    weights["classifier.weight"] = np.zeros((3, 32), np.float32)
    with pytest.raises(ValueError, match="classifier.weight"):
        model.load_canonical_weights(weights)


def test_tied_and_untied_decoder():
    tied = bert_flax.BertForMaskedLM(tiny_config(), seed=2)
    assert "cls.predictions.decoder.weight" not in tied.canonical_weights()
    word = tied.bert.embeddings.word_embeddings
    assert tied.cls.predictions.decoder is word  # one nnx.Embed reached from two places
    paths = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(nnx.state(tied, nnx.Param))[0]}
    assert not any("decoder" in p for p in paths)  # stored once, under bert.embeddings
    word.embedding[...] = word.embedding[...].at[5].add(1.0)  # the decoder follows the embedding
    untied = bert_flax.BertForMaskedLM(tiny_config(tie_word_embeddings=False), seed=2)
    assert untied.canonical_weights()["cls.predictions.decoder.weight"].shape == (99, 32)
    assert untied.cls.predictions.decoder is not untied.bert.embeddings.word_embeddings
    ids = IDS[:, :4]
    h = tied.cls.predictions.transform(tied.bert(ids).last_hidden_state)
    want = h @ word.embedding[...].T + tied.cls.predictions.bias[...]
    np.testing.assert_allclose(tied(ids).logits, want, atol=1e-5)
    # split / merge keep the sharing
    again = nnx.merge(*nnx.split(tied))
    assert again.cls.predictions.decoder is again.bert.embeddings.word_embeddings


def _np_ce(logits, labels, ignore=-100):
    logits = np.asarray(logits, np.float64)
    logp = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - logits.max(-1, keepdims=True)
    )
    keep = labels != ignore
    return -np.mean(np.take_along_axis(logp[keep], labels[keep][:, None], -1))


def test_head_mask_and_chunking_and_relative_and_options():
    model = bert_flax.BertModel(tiny_config(), seed=5)
    out = model(IDS, head_mask=np.array([1.0, 0.0, 1.0, 1.0]), output_attentions=True)
    assert float(jnp.abs(out.attentions[0][:, 1]).max()) == 0.0 and float(out.attentions[1][:, 0].max()) > 0
    out2 = model(IDS, head_mask=np.array([[1.0, 0.0, 1.0, 1.0]] * 2), output_attentions=True)
    np.testing.assert_allclose(out.last_hidden_state, out2.last_hidden_state, atol=1e-6)
    chunked = bert_flax.BertModel(tiny_config(chunk_size_feed_forward=4), seed=5)
    np.testing.assert_allclose(chunked(IDS).last_hidden_state, model(IDS).last_hidden_state, atol=1e-6)
    for kind in ("relative_key", "relative_key_query"):
        rel = bert_flax.BertModel(tiny_config(position_embedding_type=kind), seed=5)
        assert rel.encoder.layer[0].attention.self.distance_embedding.embedding.shape == (127, 8)
        a = rel(IDS).last_hidden_state
        assert not np.allclose(a, model(IDS).last_hidden_state)
    # padding: masked keys get no attention
    out = model(IDS, attention_mask=MASK, output_attentions=True)
    assert float(out.attentions[0][1, :, :, -3:].max()) < 1e-6
    # inputs_embeds equals ids through the embedding table
    emb = model.embeddings.word_embeddings(IDS)
    np.testing.assert_allclose(model(inputs_embeds=emb).last_hidden_state, model(IDS).last_hidden_state, atol=1e-6)
    # explicit default ids change nothing
    pos = np.broadcast_to(np.arange(8), (2, 8))
    np.testing.assert_allclose(
        model(IDS, position_ids=pos, token_type_ids=np.zeros_like(IDS)).last_hidden_state,
        model(IDS).last_hidden_state,
        atol=1e-6,
    )
    nopool = bert_flax.BertModel(tiny_config(), add_pooling_layer=False)
    assert nopool(IDS).pooler_output is None and "pooler.dense.weight" not in nopool.canonical_weights()


def test_dropout_train_mode_and_classifier_dropout():
    model = bert_flax.BertForSequenceClassification(tiny_config(classifier_dropout=0.5), seed=6)
    assert model.dropout.rate == 0.5
    eval1, eval2 = model(IDS).logits, model(IDS).logits
    np.testing.assert_array_equal(eval1, eval2)
    train1, train2 = model(IDS, deterministic=False).logits, model(IDS, deterministic=False).logits
    assert not np.allclose(train1, eval1) and not np.allclose(train1, train2)


def test_dtype_and_param_dtype():
    model = bert_flax.BertForMaskedLM(tiny_config(), dtype=jnp.bfloat16, seed=7)
    ref = bert_flax.BertForMaskedLM(tiny_config(), seed=7)
    out = model(IDS, labels=IDS)
    assert out.logits.dtype == jnp.bfloat16 and out.loss.dtype == jnp.float32
    assert model.bert.embeddings.word_embeddings.embedding[...].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out.logits, np.float32), ref(IDS).logits, atol=0.1)
    half = bert_flax.BertModel(tiny_config(), param_dtype=jnp.bfloat16, dtype=jnp.bfloat16)
    assert half.encoder.layer[0].output.dense.kernel[...].dtype == jnp.bfloat16
    assert half.canonical_weights()["encoder.layer.0.output.dense.weight"].dtype == np.float32


def _dot_types(model, **kwargs):
    """(operand dtypes, result dtype) of every dot_general in the jaxpr of a forward pass."""
    graphdef, state = nnx.split(model)
    jaxpr = jax.make_jaxpr(lambda s: nnx.merge(graphdef, s)(IDS, deterministic=True, **kwargs))(state)
    found = []

    def walk(jx):
        for eqn in jx.eqns:
            if eqn.primitive.name == "dot_general":
                found.append((tuple(str(v.aval.dtype) for v in eqn.invars), str(eqn.outvars[0].aval.dtype)))
            for param in eqn.params.values():
                for sub in param if isinstance(param, (tuple, list)) else (param,):
                    inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                    if hasattr(inner, "eqns"):
                        walk(inner)

    walk(jaxpr.jaxpr)
    return found


@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_bfloat16_dots_accumulate_in_float32(param_dtype):
    # bf16 x bf16 -> f32 dots are what XLA:CPU runs fast (bf16 -> bf16 ones fall back to a slow loop)
    config = tiny_config(position_embedding_type="relative_key_query")
    model = bert_flax.BertForMaskedLM(config, dtype=jnp.bfloat16, param_dtype=param_dtype, seed=7)
    dots = _dot_types(model, output_attentions=True)
    assert len(dots) >= 6 * config.num_hidden_layers + 2
    assert all(ins == ("bfloat16", "bfloat16") and out == "float32" for ins, out in dots), dots
    out = model(IDS, output_attentions=True, deterministic=True)
    assert out.logits.dtype == jnp.bfloat16 and out.attentions[0].dtype == jnp.bfloat16
    # the float32 computation keeps plain float32 dots
    ref = bert_flax.BertForMaskedLM(config, seed=7)
    assert all(ins == ("float32", "float32") and out == "float32" for ins, out in _dot_types(ref))


def test_aliases():
    assert bert_flax.FlaxBertForCausalLM is bert_flax.BertLMHeadModel
    for head in HEADS:
        alias = "FlaxBertForCausalLM" if head == "BertLMHeadModel" else "Flax" + head
        assert getattr(bert_flax, alias).head_name == head


# ------------------------------------------------------------------------------------------------ the ladder


LADDER_SIGNATURES = {
    "BertEmbeddings": ["input_ids", "token_type_ids", "position_ids", "inputs_embeds", "past_length"],
    "BertSelfAttention": [
        "hidden_states",
        "attention_mask",
        "head_mask",
        "encoder_hidden_states",
        "past_key_value",
        "cache_active",
        "output_attentions",
    ],
    "BertSelfOutput": ["hidden_states", "input_tensor"],
    "BertIntermediate": ["hidden_states"],
    "BertOutput": ["hidden_states", "input_tensor"],
    "BertLayer": [
        "hidden_states",
        "attention_mask",
        "head_mask",
        "encoder_hidden_states",
        "encoder_attention_mask",
        "past_key_value",
        "cache_active",
        "output_attentions",
    ],
    "BertEncoder": [
        "hidden_states",
        "attention_mask",
        "head_mask",
        "encoder_hidden_states",
        "encoder_attention_mask",
        "past_key_values",
        "use_cache",
        "cache_active",
        "output_attentions",
        "output_hidden_states",
    ],
    "BertPooler": ["hidden_states"],
    "BertPredictionHeadTransform": ["hidden_states"],
    "BertLMPredictionHead": ["hidden_states"],
    "BertOnlyMLMHead": ["sequence_output"],
    "BertOnlyNSPHead": ["pooled_output"],
    "BertPreTrainingHeads": ["sequence_output", "pooled_output"],
}
LADDER_SIGNATURES["BertAttention"] = LADDER_SIGNATURES["BertSelfAttention"]


def test_encoder_returns_output_class_and_heads_are_callable(models):
    from bert_core.outputs import BaseModelOutputWithPastAndCrossAttentions

    model = models["BertForPreTraining"]
    hidden = model.bert.embeddings(jnp.asarray(IDS), deterministic=True)
    encoded = model.bert.encoder(hidden, output_hidden_states=True, deterministic=True)
    assert isinstance(encoded, BaseModelOutputWithPastAndCrossAttentions)
    assert encoded.past_key_values is None and len(encoded.hidden_states) == 3
    pooled = model.bert.pooler(encoded.last_hidden_state)
    prediction, relationship = model.cls(encoded.last_hidden_state, pooled)
    out = model(IDS)
    np.testing.assert_allclose(prediction, out.prediction_logits, atol=1e-6)
    np.testing.assert_allclose(relationship, out.seq_relationship_logits, atol=1e-6)
    nsp = models["BertForNextSentencePrediction"]
    np.testing.assert_allclose(nsp.cls(nsp.bert(IDS).pooler_output), nsp(IDS).logits, atol=1e-6)


def test_seed_none_skips_bert_core_init():
    a = bert_flax.BertForTokenClassification(tiny_config(), seed=None)
    b = bert_flax.BertForTokenClassification(tiny_config(), seed=0)
    assert not np.allclose(a.canonical_weights()["classifier.weight"], b.canonical_weights()["classifier.weight"])
    np.testing.assert_array_equal(
        b.canonical_weights()["classifier.weight"],
        init_weights(tiny_config(), "BertForTokenClassification", 0)["classifier.weight"],
    )


def test_mask_and_loss_helpers():
    from bert_flax.modeling import _bce_with_logits, _cross_entropy, _extended_attention_mask, _head_mask, _mse

    config = tiny_config(is_decoder=True)
    mask = np.array([[0, 1, 1, 1]])
    ext = np.asarray(_extended_attention_mask(config, mask, 2, 2, jnp.float32))
    keep = ext == 0  # (1, 1, 2, 4): query i at position 2 + i sees keys 1..2+i
    np.testing.assert_array_equal(keep[0, 0], [[False, True, True, False], [False, True, True, True]])
    assert ext.min() == np.finfo(np.float32).min
    enc = np.asarray(_extended_attention_mask(tiny_config(), mask, 4, 0, jnp.float32))
    assert enc.shape == (1, 1, 1, 4) and (enc[..., 0] < 0).all() and (enc[..., 1:] == 0).all()
    assert _head_mask(np.array([1.0, 0.0, 1.0, 1.0]), 2, jnp.float32).shape == (2, 1, 4, 1, 1)
    assert _head_mask(None, 2, jnp.float32) is None
    logits = RNG.normal(size=(2, 3, 5)).astype(np.float32)
    labels = np.array([[1, -100, 4], [0, 2, -100]])
    assert abs(float(_cross_entropy(logits, labels)) - _np_ce(logits.reshape(-1, 5), labels.reshape(-1))) < 1e-6
    assert float(_cross_entropy(logits, labels, ignore_index=4)) != float(_cross_entropy(logits, labels))
    assert float(_mse(np.array([1.0, 2.0]), np.array([0.0, 0.0]))) == pytest.approx(2.5)
    x, y = np.array([0.3, -2.0]), np.array([1.0, 0.0])
    want = np.mean(np.log1p(np.exp(-x)) * y + np.log1p(np.exp(x)) * (1 - y))
    assert float(_bce_with_logits(x, y)) == pytest.approx(want, abs=1e-6)


# ------------------------------------------------------------------------------------------------ caches


def test_cache_interface():
    from bert_flax.modeling import BertKVCache, _as_cache, _LegacyCache

    k = jnp.ones((2, 4, 3, 8))
    legacy = _as_cache(((k, k), (k, k, k[:, :, :2], k[:, :, :2])))
    assert isinstance(legacy, _LegacyCache) and legacy.past_length == 3 and legacy.max_length is None
    assert legacy.key_length(2) == 5
    keys, values = legacy.update(1, 2 * k[:, :, :2], k[:, :, :2])
    assert keys.shape == (2, 4, 5, 8) and float(keys[0, 0, 4, 0]) == 2.0
    assert legacy.cross(0) is None and legacy.cross(1)[0].shape == (2, 4, 2, 8)
    assert legacy.next_cache(((keys, values),), 2) == ((keys, values),)
    empty = _as_cache(None)
    assert empty.past_length == 0 and empty.update(0, k, k)[0] is k and empty.cross(0) is None

    decoder = bert_flax.BertLMHeadModel(tiny_config(is_decoder=True), seed=0)
    fixed = decoder.init_cache(2, 10)
    assert _as_cache(fixed) is fixed and isinstance(fixed, BertKVCache)
    assert int(fixed.past_length) == 0 and fixed.max_length == 10 and fixed.key_length(3) == 10
    fixed = BertKVCache(fixed.layers, jnp.int32(3))
    keys, values = fixed.update(0, 2 * k[:, :, :2], k[:, :, :2])
    assert keys.shape == (2, 4, 10, 8)
    np.testing.assert_array_equal(keys[0, 0, :, 0], [0, 0, 0, 2, 2, 0, 0, 0, 0, 0])
    nxt = fixed.next_cache(((keys, values),) * 2, 2)
    assert isinstance(nxt, BertKVCache) and int(nxt.index) == 5
    # a pytree: through jit and back
    same = jax.jit(lambda c: c)(nxt)
    assert isinstance(same, BertKVCache) and int(same.index) == 5


@pytest.mark.parametrize("kind", ["absolute", "relative_key_query"])
def test_jit_cache_equals_legacy_cache_equals_full_pass(kind):
    config = tiny_config(is_decoder=True, add_cross_attention=True, position_embedding_type=kind)
    model = bert_flax.BertLMHeadModel(config, seed=4)
    enc = np.random.default_rng(2).normal(size=(2, 5, 32)).astype(np.float32)
    full = model(IDS, encoder_hidden_states=enc, use_cache=False).logits
    # legacy tuples, growing: a prefix, then one token at a time. With a cache, HF 4.57 places every query of a
    # multi-token call at the last key position for relative scores, so those start from a single token.
    prefix = 3 if kind == "absolute" else 1
    out = model(IDS[:, :prefix], encoder_hidden_states=enc, use_cache=True)
    steps = [out.logits]
    for t in range(prefix, 8):
        out = model(IDS[:, t : t + 1], encoder_hidden_states=enc, past_key_values=out.past_key_values)
        steps.append(out.logits)
    legacy = out.past_key_values
    assert len(legacy[0]) == 4 and legacy[0][0].shape == (2, 4, 8, 8) and legacy[0][2].shape == (2, 4, 5, 8)
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)
    # fixed cache under jit: one compile per input shape, reused for every step
    step = nnx.jit(lambda m, x, c: m(x, encoder_hidden_states=enc, past_key_values=c))
    cache = model.init_cache(2, 10)
    out = step(model, IDS[:, :prefix], cache)
    fixed = [out.logits]
    for t in range(prefix, 8):
        out = step(model, IDS[:, t : t + 1], out.past_key_values)
        fixed.append(out.logits)
    cache = out.past_key_values
    assert int(cache.index) == 8 and cache.layers[0][0].shape == (2, 4, 10, 8)
    np.testing.assert_allclose(np.concatenate(fixed, 1), full, atol=1e-5)
    # same keys and values as the legacy cache (the buffer's unwritten tail stays zero), cross K/V kept
    for got, want in zip(cache.layers, legacy):
        assert len(got) == 4
        np.testing.assert_allclose(got[0][:, :, :8], want[0], atol=1e-5)
        np.testing.assert_allclose(got[1][:, :, :8], want[1], atol=1e-5)
        assert float(jnp.abs(got[0][:, :, 8:]).max()) == 0.0
        np.testing.assert_allclose(got[2], want[2], atol=1e-5)
        np.testing.assert_allclose(got[3], want[3], atol=1e-5)


def test_cache_returned_only_with_use_cache():
    model = bert_flax.BertLMHeadModel(tiny_config(is_decoder=True), seed=1)
    assert model(IDS, use_cache=False).past_key_values is None
    past = model(IDS[:, :4], use_cache=True).past_key_values
    out = model(IDS[:, 4:], past_key_values=past, use_cache=False)
    assert out.past_key_values is None
    np.testing.assert_allclose(out.logits, model(IDS, use_cache=False).logits[:, 4:], atol=1e-5)
    assert bert_flax.BertModel(tiny_config())(IDS, use_cache=True).past_key_values is None  # encoders: never


# ------------------------------------------------------------------------------------------------ generate


def _greedy_reference(model, ids, steps, **kwargs):
    """Greedy decoding by full passes (no cache) of one unpadded prompt."""
    seq = np.asarray(ids)
    for _ in range(steps):
        nxt = np.asarray(model(seq, use_cache=False, **kwargs).logits[:, -1].argmax(-1))
        seq = np.concatenate([seq, nxt[:, None]], 1)
    return seq


@pytest.fixture(scope="module")
def decoder():
    return bert_flax.BertLMHeadModel(tiny_config(is_decoder=True), seed=5)


def _hf_allowed(logits, top_k=None, top_p=None):
    """numpy HF TopK then TopP warpers: bool (B, V) of the tokens that keep a finite score."""
    logits = np.array(logits, np.float64)
    if top_k is not None:
        kth = np.sort(logits, -1)[:, -top_k][:, None]
        logits[logits < kth] = -np.inf
    if top_p is not None:
        order = np.argsort(logits, -1, kind="stable")
        sorted_logits = np.take_along_axis(logits, order, -1)
        probs = np.exp(sorted_logits - sorted_logits.max(-1, keepdims=True))
        cumulative = np.cumsum(probs / probs.sum(-1, keepdims=True), -1)
        remove = cumulative <= 1 - top_p
        remove[:, -1] = False
        np.put_along_axis(logits, order, np.where(remove, -np.inf, sorted_logits), -1)
    return np.isfinite(logits)


@pytest.mark.parametrize("top_k, top_p", [(3, None), (None, 0.6), (4, 0.5), (None, None)])
def test_sampling_warpers_match_hf_sets(top_k, top_p):
    from bert_flax.modeling import _next_token

    logits = jnp.asarray(np.array([[2.0, 1.0, 0.5, 0.5, 3.0, -1.0, 0.0, 1.5]] * 2, np.float32))
    allowed = _hf_allowed(np.asarray(logits), top_k, top_p)[0]
    sample = jax.jit(
        jax.vmap(
            lambda key: _next_token(
                logits,
                key,
                1.0,
                1.0 if top_p is None else top_p,
                do_sample=True,
                top_k=top_k,
                use_top_p=top_p is not None,
            )
        )
    )
    seen = np.unique(np.asarray(sample(jax.random.split(jax.random.key(0), 2000))))
    np.testing.assert_array_equal(np.isin(np.arange(8), seen), allowed)
    greedy = _next_token(logits, None, 1.0, 1.0, do_sample=False, top_k=None, use_top_p=False)
    np.testing.assert_array_equal(greedy, [4, 4])


# ------------------------------------------------------------------------------------------------ input checks


def test_bad_inputs_raise_before_tracing(models):
    mlm = models["BertForMaskedLM"]
    with pytest.raises(ValueError, match="id 99, out of range for vocab_size=99"):
        mlm(np.array([[1, 99]]))
    with pytest.raises(ValueError, match="negative id -1"):
        mlm(np.array([[1, -1]]))
    with pytest.raises(TypeError, match="input_ids must hold integer ids"):
        mlm(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="token_type_ids contains 2"):
        mlm(IDS, token_type_ids=np.full_like(IDS, 2))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=64"):
        mlm(np.ones((1, 65), np.int32))
    with pytest.raises(ValueError, match="both input_ids and inputs_embeds"):
        mlm(IDS, inputs_embeds=np.zeros((2, 8, 32), np.float32))
    with pytest.raises(ValueError, match="either input_ids or inputs_embeds"):
        mlm()
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 7\) but the input needs \(2, 8\)"):
        mlm(IDS, attention_mask=np.ones((2, 7)))
    with pytest.raises(ValueError, match=r"token_type_ids has shape \(2, 7\)"):
        mlm(IDS, token_type_ids=np.zeros((2, 7), np.int32))
    with pytest.raises(ValueError, match="head_mask has shape"):
        mlm(IDS, head_mask=np.ones(3))
    with pytest.raises(ValueError, match="is_decoder is False"):
        bert_flax.BertModel(tiny_config())(IDS, past_key_values=((np.zeros((2, 4, 1, 8)),) * 2,) * 2)
    with pytest.raises(ValueError, match="for multiple choice must be"):
        models["BertForMultipleChoice"](IDS)
    # static checks still fire inside jit, with the same wording
    with pytest.raises(ValueError, match="attention_mask has shape"):
        nnx.jit(lambda m, x, a: m(x, attention_mask=a))(mlm, IDS, np.ones((2, 7)))
    decoder = models["BertLMHeadModel"]
    past = decoder(IDS, use_cache=True).past_key_values
    with pytest.raises(ValueError, match=r"sequence length 65 \(8 cached \+ 57 new\)"):
        decoder(np.ones((2, 57), np.int32), past_key_values=past)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        decoder.init_cache(1, 65)
    # a fixed cache's mask covers its whole buffer
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 8\) but the input needs \(2, 10\)"):
        decoder(IDS, attention_mask=np.ones((2, 8)), past_key_values=decoder.init_cache(2, 10))
