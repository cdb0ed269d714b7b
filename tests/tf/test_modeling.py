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


def _greedy_reference(model, ids, steps, **extra):
    """Uncached argmax loop: the whole sequence through the model at every step."""
    for _ in range(steps):
        nxt = np.argmax(model(input_ids=ids, use_cache=False, **extra).logits.numpy()[:, -1], -1)
        ids = np.concatenate([ids, nxt[:, None]], 1)
    return ids


def test_generate_greedy(models):
    model = models["BertLMHeadModel"]
    prompt = _ids((2, 3))
    out = model.generate(prompt, max_new_tokens=4)
    assert out.shape == (2, 7) and out.dtype == tf.int32
    np.testing.assert_array_equal(out[:, :3], prompt)
    np.testing.assert_array_equal(out.numpy(), _greedy_reference(model, prompt, 4))


@pytest.mark.parametrize("kind", ["absolute", "relative_key_query"])
def test_generate_left_padded_batch_equals_each_prompt_alone(kind):
    model = bert_tf.BertLMHeadModel(tiny_config(is_decoder=True, position_embedding_type=kind), seed=3)
    prompts = [[5, 17, 42, 8, 61], [23, 9], [70, 3, 44]]
    width = max(len(p) for p in prompts)
    ids = np.array([[0] * (width - len(p)) + p for p in prompts])
    mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    batch = model.generate(ids, attention_mask=mask, max_new_tokens=6).numpy()
    assert batch.shape == (3, width + 6)
    for row, prompt in enumerate(prompts):
        alone = model.generate(np.array([prompt]), max_new_tokens=6).numpy()
        np.testing.assert_array_equal(batch[row, width:], alone[0, len(prompt) :], err_msg=f"row {row}")


def _eos_expected(free, eos, pad):
    """What generate must return given the free-running tokens: pad after a row's eos, stop once all rows are done."""
    rows, done = [], np.zeros(len(free), bool)
    for step in range(free.shape[1]):
        rows.append(np.where(done, pad, free[:, step]))
        done |= free[:, step] == eos
        if done.all():
            break
    return np.stack(rows, 1)


def test_generate_eos_pads_finished_rows_and_stops_early(models):
    model = models["BertLMHeadModel"]
    prompt = _ids((2, 3), seed=5)
    free = model.generate(prompt, max_new_tokens=5).numpy()[:, 3:]
    eos = int(free[0, 0])  # row 0 finishes at once, row 1 later (or never)
    out = model.generate(prompt, max_new_tokens=5, eos_token_id=eos, pad_token_id=7).numpy()
    expected = _eos_expected(free, eos, 7)
    np.testing.assert_array_equal(out[:, 3:], expected)
    assert out[0, 4] == 7  # finished rows get the pad, not eos again
    # the pad defaults to config.pad_token_id
    default_pad = model.generate(prompt, max_new_tokens=5, eos_token_id=eos).numpy()
    np.testing.assert_array_equal(default_pad[:, 3:], _eos_expected(free, eos, model.config.pad_token_id))
    # every row finished: decoding stops early
    stopped = model.generate(prompt[:1], max_new_tokens=5, eos_token_id=eos).numpy()
    assert stopped.shape == (1, 4) and stopped[0, -1] == eos
    last = int(free[1, -1])
    if last not in free[1, :-1].tolist() and last not in free[0, :1].tolist():
        # an eos row 1 produces only at the last step: no early stop, row 0 keeps emitting its own tokens
        np.testing.assert_array_equal(
            model.generate(prompt, max_new_tokens=5, eos_token_id=last).numpy()[:, 3:],
            _eos_expected(free, last, model.config.pad_token_id),
        )
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(prompt, max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, do_sample=True, temperature=0.0)
    with pytest.raises(ValueError, match="is_decoder"):
        bert_tf.BertLMHeadModel(tiny_config(), seed=0).generate(prompt)


def test_generate_sampling_seeded_and_restricted(models):
    model = models["BertLMHeadModel"]
    prompt = _ids((2, 3), seed=6)
    a = model.generate(prompt, max_new_tokens=6, do_sample=True, top_k=5, seed=11).numpy()
    b = model.generate(prompt, max_new_tokens=6, do_sample=True, top_k=5, seed=11).numpy()
    np.testing.assert_array_equal(a, b)
    draws = {model.generate(prompt, max_new_tokens=6, do_sample=True, seed=s).numpy().tobytes() for s in range(4)}
    assert len(draws) > 1  # the seed matters
    # every sampled token is among the top_k logits of its step (ties with the k-th kept)
    for step in range(6):
        logits = model(input_ids=a[:, : 3 + step], use_cache=False).logits.numpy()[:, -1]
        kth = np.sort(logits, -1)[:, -5]
        assert (logits[np.arange(2), a[:, 3 + step]] >= kth).all(), step
    greedy = model.generate(prompt, max_new_tokens=6).numpy()
    # top_k=1, or a top_p that keeps only the most likely token, is greedy
    np.testing.assert_array_equal(model.generate(prompt, max_new_tokens=6, do_sample=True, top_k=1, seed=3), greedy)
    np.testing.assert_array_equal(
        model.generate(prompt, max_new_tokens=6, do_sample=True, top_p=1e-6, temperature=0.7, seed=3), greedy
    )
    # top_p keeps the smallest set whose probability exceeds top_p
    c = model.generate(prompt, max_new_tokens=4, do_sample=True, top_p=0.3, seed=5).numpy()
    for step in range(4):
        logits = model(input_ids=c[:, : 3 + step], use_cache=False).logits.numpy()[:, -1].astype(np.float64)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        for row in range(2):
            ascending = np.sort(probs[row])
            kept = ascending[np.cumsum(ascending) > 1 - 0.3 + 1e-6]
            assert probs[row, c[row, 3 + step]] >= kept.min() - 1e-6, (step, row)


def test_generate_with_cross_attention():
    config = tiny_config(is_decoder=True, add_cross_attention=True)
    model = bert_tf.BertLMHeadModel(config, seed=4)
    rng = np.random.default_rng(1)
    enc = rng.normal(size=(2, 5, 32)).astype(np.float32)
    enc_mask = np.ones((2, 5), np.int64)
    enc_mask[1, -2:] = 0
    prompt = _ids((2, 3), seed=8)
    out = model.generate(prompt, max_new_tokens=4, encoder_hidden_states=enc, encoder_attention_mask=enc_mask)
    ref = _greedy_reference(model, prompt, 4, encoder_hidden_states=enc, encoder_attention_mask=enc_mask)
    np.testing.assert_array_equal(out.numpy(), ref)
    # the encoder states matter
    other = model.generate(prompt, max_new_tokens=4, encoder_hidden_states=-enc, encoder_attention_mask=enc_mask)
    assert not np.array_equal(out.numpy(), other.numpy())


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
    with pytest.raises(TypeError, match="input_ids must hold integer ids, got a floating-point array"):
        model(input_ids=np.array([[1.0, 2.7]]))  # refused, never truncated to [[1, 2]]
    with pytest.raises(TypeError, match="token_type_ids must hold integer ids"):
        model(input_ids=np.array([[1, 2]]), token_type_ids=np.array([[0.0, 1.0]], np.float32))
    with pytest.raises(ValueError, match="both input_ids and inputs_embeds"):
        model(input_ids=np.ones((1, 3), np.int64), inputs_embeds=np.ones((1, 3, 32), np.float32))
    with pytest.raises(ValueError, match="either input_ids or inputs_embeds"):
        model(attention_mask=np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 4\).*\(1, 3\)"):
        model(input_ids=np.ones((1, 3), np.int64), attention_mask=np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"token_type_ids has shape \(2, 3\); expected input_ids \(1, 3\)"):
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
