"""bert_tf.compile_for_inference (XLA): compiled == eager for every head, mixed_bfloat16, shapes, errors, Keras'
own ``jit_compile`` / ``predict`` path, and pipelines."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import bert_tf
from bert_core.config import tiny_config
from bert_core.tokenization_fast import BertTokenizerFast

HEADS = [cls.__name__ for cls in bert_tf.ALL_MODEL_CLASSES]
SEQ = 8


def _config(**overrides):
    return tiny_config(num_hidden_layers=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)


def _inputs(head: str, batch: int = 2, seq: int = SEQ, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (batch, 2, seq) if head == "BertForMultipleChoice" else (batch, seq)
    ids = rng.integers(1, 99, shape).astype(np.int32)
    mask = np.ones(shape, np.int32)
    mask[0, ..., seq - 3 :] = 0  # padding: the masked attention path
    types = np.zeros(shape, np.int32)
    types[..., seq // 2 :] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _arrays(out):
    return {k: np.asarray(v, np.float32) for k, v in out.items() if tf.is_tensor(v)}


@pytest.fixture(scope="module")
def heads():
    """head -> (model, compiled, eager outputs, compiled outputs), each XLA-compiled once on (2, 8) inputs."""
    found = {}
    for cls in bert_tf.ALL_MODEL_CLASSES:
        model = cls(_config(), seed=0)
        inputs = _inputs(cls.__name__)
        compiled = bert_tf.compile_for_inference(model)
        found[cls.__name__] = (model, compiled, _arrays(model(**inputs)), compiled(**inputs))
    return found


@pytest.mark.parametrize("head", HEADS)
def test_every_head_compiled_equals_eager(heads, head):
    model, compiled, eager, out = heads[head]
    assert type(out) is type(model(**_inputs(head)))  # the same output dataclass
    got = _arrays(out)
    assert set(got) == set(eager)
    for name, value in eager.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, atol=1e-5, rtol=0, err_msg=f"{head}.{name}")


def test_call_forms_and_shapes(heads):
    model, compiled, eager, _ = heads["BertModel"]
    inputs = _inputs("BertModel")
    packed = compiled(inputs)  # HF-TF idiom: a dict as the first argument
    np.testing.assert_allclose(_arrays(packed)["last_hidden_state"], eager["last_hidden_state"], atol=1e-5)
    two = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
    listed = compiled(input_ids=two["input_ids"].tolist(), attention_mask=two["attention_mask"])  # nested lists
    want = _arrays(model(**two))["last_hidden_state"]
    np.testing.assert_allclose(_arrays(listed)["last_hidden_state"], want, atol=1e-5)
    as_tuple = compiled(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple)
    np.testing.assert_allclose(np.asarray(as_tuple[0]), eager["last_hidden_state"], atol=1e-5)
    for batch, seq in ((3, 16), (1, 24)):
        other = _inputs("BertModel", batch, seq, seed=seq)
        np.testing.assert_allclose(
            _arrays(compiled(**other))["last_hidden_state"],
            _arrays(model(**other))["last_hidden_state"],
            atol=1e-5,
            rtol=0,
        )


def test_ids_and_length_are_checked_eagerly_with_the_eager_wording(heads):
    compiled = heads["BertForSequenceClassification"][1]
    with pytest.raises(ValueError, match=r"input_ids contains id 99, out of range for vocab_size=99"):
        compiled(np.array([[1, 2, 99]]))
    with pytest.raises(ValueError, match=r"sequence length 65 exceeds max_position_embeddings=64"):
        compiled(np.ones((1, 65), np.int32))


def test_a_call_with_labels_runs_eagerly_with_its_checks(heads):
    compiled = heads["BertForSequenceClassification"][1]
    out = compiled(**_inputs("BertForSequenceClassification"), labels=np.array([0, 1]))
    assert np.isfinite(float(out.loss))
    with pytest.raises(ValueError, match=r"labels contains 5, out of range for num_labels=2"):
        compiled(**_inputs("BertForSequenceClassification"), labels=np.array([0, 5]))


def test_mixed_bfloat16_under_xla(heads):
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = bert_tf.BertModel(_config(), seed=0)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    inputs = _inputs("BertModel")
    got = bert_tf.compile_for_inference(model)(**inputs)["last_hidden_state"]
    assert got.dtype == tf.bfloat16
    eager = np.asarray(model(**inputs)["last_hidden_state"], np.float32)
    np.testing.assert_allclose(np.asarray(got, np.float32), eager, atol=5e-2, rtol=0)
    fp32 = heads["BertModel"][2]["last_hidden_state"].ravel()
    got32 = np.asarray(got, np.float32).ravel()
    assert got32 @ fp32 / np.linalg.norm(got32) / np.linalg.norm(fp32) > 0.999


def test_keras_jit_compile_predict(heads):
    model, _, eager, _ = heads["BertForTokenClassification"]
    model.jit_compile = True
    assert model.jit_compile is True  # Keras keeps it: every layer supports XLA
    got = model.predict(_inputs("BertForTokenClassification"), batch_size=2, verbose=0)
    np.testing.assert_allclose(got["logits"], eager["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"jit_compile": 1}, "compile_for_inference: jit_compile must be True or False, got 1")],
)
def test_bad_arguments_give_the_shared_error(heads, kwargs, message):
    with pytest.raises(TypeError, match=message):
        bert_tf.compile_for_inference(heads["BertModel"][0], **kwargs)


def test_not_a_model_gives_the_shared_error():
    with pytest.raises(TypeError, match=r"expected a bert_tf model instance .*, got the class BertModel"):
        bert_tf.compile_for_inference(bert_tf.BertModel)
    with pytest.raises(TypeError, match=r"expected a bert_tf model instance .*, got a Dense"):
        bert_tf.compile_for_inference(keras.layers.Dense(2))


def test_pipeline_compile(minilm_dir):
    from bert_core.pipelines import pipeline

    tok = BertTokenizerFast.from_pretrained(minilm_dir)
    model = bert_tf.BertForSequenceClassification(_config(vocab_size=tok.vocab_size), seed=0)
    texts = ["a short one", "and a slightly longer sentence to classify"]
    eager = pipeline("text-classification", model, tokenizer=tok, backend="tf", top_k=None)(texts)
    got = pipeline("text-classification", model, tokenizer=tok, backend="tf", top_k=None, compile=True)(texts)
    for want, have in zip(eager, got):
        assert [d["label"] for d in want] == [d["label"] for d in have]
        np.testing.assert_allclose([d["score"] for d in have], [d["score"] for d in want], atol=1e-5)
