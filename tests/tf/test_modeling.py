"""bert_tf's model API on tiny configs: structure and weights, call semantics (HF-TF input formats), losses, the
decoder cache, generate, and input validation."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import bert_tf  # noqa: E402
from bert_core import init_weights, stored_weights, tiny_config  # noqa: E402
from bert_core.weights import backend_path  # noqa: E402

CLASSES = {cls.head_name: cls for cls in bert_tf.ALL_MODEL_CLASSES}
HEADS = list(CLASSES)


def _ids(shape, seed=0, high=99):
    return np.random.default_rng(seed).integers(1, high, shape)


@pytest.fixture(scope="module")
def models():
    """One model of each head on the tiny config (decoder config for the LM head), built once."""
    out = {}
    for head in HEADS:
        config = tiny_config(is_decoder=True) if head == "BertLMHeadModel" else tiny_config()
        out[head] = CLASSES[head](config, seed=0)
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
    """Each variable's Keras path is the model name, then the canonical module path with '/' and the Keras leaf."""
    model = models[head]
    variables = model.canonical_variables()
    for name, spec in stored_weights(model.config, head).items():
        path, _ = backend_path(spec, "tf")
        expected = head + "/" + "/".join(path).replace("layer/", "layer.")  # a layer list entry is ``layer.{i}``
        assert variables[name].path == expected, (name, variables[name].path)


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
    # a list follows ``call``'s parameter order (HF 4.57 PyTorch order: labels 7th)
    labels = np.array([0, 1])
    listed = model([tf.constant(ids), tf.constant(mask), tf.constant(types), None, None, None, tf.constant(labels)])
    np.testing.assert_allclose(
        float(listed.loss), float(model(input_ids=ids, attention_mask=mask, labels=labels).loss), rtol=1e-6
    )
    # positional arguments bind in call order, Python lists included
    np.testing.assert_allclose(model(ids.tolist(), mask).logits, ref, atol=1e-6)
    no_mask = model(ids).logits
    assert not np.allclose(no_mask, ref)
    with pytest.raises(TypeError, match="twice"):
        model({"input_ids": ids, "attention_mask": mask}, attention_mask=mask)
    with pytest.raises(TypeError, match="start_positions"):
        model(input_ids=ids, start_positions=np.array([0, 1]))
    with pytest.raises(TypeError, match="unexpected input 'start_positions'"):
        model({"input_ids": ids, "start_positions": np.array([0, 1])})


@pytest.mark.parametrize("tensors", ["tf", "np"])
def test_batch_encoding_as_first_argument(models, tensors):
    """``model(tokenizer(..., return_tensors="tf"))``: a BatchEncoding (a Mapping) unpacks into the inputs."""
    from bert_core import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "jumps"]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    encoding = tokenizer(["the quick brown fox", "the fox jumps"], padding=True, return_tensors=tensors)
    model = models["BertForSequenceClassification"]
    out = model(encoding)
    ref = model(
        input_ids=np.asarray(encoding["input_ids"]),
        attention_mask=np.asarray(encoding["attention_mask"]),
        token_type_ids=np.asarray(encoding["token_type_ids"]),
    )
    np.testing.assert_allclose(out.logits, ref.logits, atol=1e-6)
    np.testing.assert_allclose(models["BertModel"](encoding, training=False).last_hidden_state.shape, (2, 6, 32))


def test_training_flag_controls_dropout(models):
    model = models["BertModel"]
    ids = _ids((2, 6))
    a = model(input_ids=ids, training=False).last_hidden_state
    b = model(input_ids=ids, training=False).last_hidden_state
    c = model(input_ids=ids, training=True).last_hidden_state
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


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


def _greedy_reference(model, ids, steps, **extra):
    """Uncached argmax loop: the whole sequence through the model at every step."""
    for _ in range(steps):
        nxt = np.argmax(model(input_ids=ids, use_cache=False, **extra).logits.numpy()[:, -1], -1)
        ids = np.concatenate([ids, nxt[:, None]], 1)
    return ids


def _eos_expected(free, eos, pad):
    """What generate must return given the free-running tokens: pad after a row's eos, stop once all rows are done."""
    rows, done = [], np.zeros(len(free), bool)
    for step in range(free.shape[1]):
        rows.append(np.where(done, pad, free[:, step]))
        done |= free[:, step] == eos
        if done.all():
            break
    return np.stack(rows, 1)


# ------------------------------------------------------------------------------------------------ validation


def test_add_cross_attention_requires_decoder():
    with pytest.raises(ValueError, match="is_decoder"):
        bert_tf.BertModel(tiny_config(add_cross_attention=True))
