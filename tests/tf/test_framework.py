"""Keras / TensorFlow integration: compile+fit with the head's own loss, evaluate, predict, XLA with variable
shapes, SavedModel serving, the .keras format, and the import-time backend selection."""

import os
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import bert_tf  # noqa: E402
from bert_core import tiny_config  # noqa: E402

CLASSES = {cls.head_name: cls for cls in bert_tf.ALL_MODEL_CLASSES}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _task(n=32, seq=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 99, (n, seq))
    y = (ids[:, 1] > 50).astype(np.int64)  # learnable from one token
    return ids, y


@pytest.fixture(scope="module")
def classifier():
    config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return bert_tf.BertForSequenceClassification(config, seed=0)


def test_fit_reduces_loss_with_model_loss(classifier):
    ids, y = _task()
    model = bert_tf.BertForSequenceClassification(classifier.config, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"])
    ds = tf.data.Dataset.from_tensor_slices(({"input_ids": ids, "attention_mask": np.ones_like(ids)}, y)).batch(16)
    before = model.evaluate(ds, verbose=0, return_dict=True)
    # the loss the model reports is the head's own loss (PyTorch semantics)
    np.testing.assert_allclose(
        before["loss"],
        float(np.mean([float(model(input_ids=ids[i : i + 16], labels=y[i : i + 16]).loss) for i in (0, 16)])),
        rtol=1e-4,
    )
    history = model.fit(ds, epochs=4, verbose=0)
    after = model.evaluate(ds, verbose=0, return_dict=True)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert after["loss"] < before["loss"]
    assert "accuracy" in after
    # numpy dict + y, as fit() accepts too
    history = model.fit({"input_ids": ids}, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_fit_with_dict_labels_question_answering():
    config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = bert_tf.BertForQuestionAnswering(config, seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 99, (16, 8))
    y = {"start_positions": np.full((16,), 2), "end_positions": np.full((16,), 5)}
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(ids, y, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_fit_with_compiled_keras_loss(classifier):
    ids, y = _task(16)
    model = bert_tf.BertForSequenceClassification(classifier.config, seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = model.fit({"input_ids": ids}, y, batch_size=16, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], float(model(input_ids=ids, labels=y).loss), rtol=1e-4)


def test_predict_returns_logits(classifier):
    ids, _ = _task(10)
    out = classifier.predict({"input_ids": ids}, batch_size=4, verbose=0)
    np.testing.assert_allclose(out["logits"], classifier(input_ids=ids).logits, atol=1e-5)


def test_xla_variable_batch_and_length(classifier):
    spec = tf.TensorSpec((None, None), tf.int32)

    @tf.function(jit_compile=True, input_signature=[spec, spec])
    def logits(ids, mask):
        return classifier(input_ids=ids, attention_mask=mask, training=False).logits

    rng = np.random.default_rng(1)
    for shape in ((1, 5), (3, 11)):
        ids = rng.integers(1, 99, shape).astype(np.int32)
        mask = np.ones_like(ids)
        mask[0, -1] = 0
        np.testing.assert_allclose(logits(ids, mask), classifier(input_ids=ids, attention_mask=mask).logits, atol=1e-5)


def test_xla_decoder_with_cache():
    model = bert_tf.BertLMHeadModel(tiny_config(is_decoder=True, position_embedding_type="relative_key"), seed=0)
    ids = np.random.default_rng(0).integers(1, 99, (2, 6)).astype(np.int32)
    first = model(input_ids=ids[:, :4], use_cache=True)

    @tf.function(jit_compile=True)
    def step(ids, past):
        return model(input_ids=ids, past_key_values=past, use_cache=True).logits

    np.testing.assert_allclose(
        step(ids[:, 4:], first.past_key_values),
        model(input_ids=ids[:, 4:], past_key_values=first.past_key_values).logits,
        atol=1e-5,
    )


def test_saved_model_export_and_reload(classifier, tmp_path):
    classifier.export_serving(tmp_path / "sm")
    reloaded = tf.saved_model.load(str(tmp_path / "sm"))
    assert "serving_default" in reloaded.signatures
    rng = np.random.default_rng(2)
    for shape in ((1, 4), (3, 9)):
        ids = rng.integers(1, 99, shape).astype(np.int32)
        mask = np.ones_like(ids)
        types = np.zeros_like(ids)
        ref = classifier(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        np.testing.assert_allclose(reloaded.serve(ids, mask, types)["logits"], ref, atol=1e-5)
        sig = reloaded.signatures["serving_default"](
            input_ids=tf.constant(ids), attention_mask=tf.constant(mask), token_type_ids=tf.constant(types)
        )
        np.testing.assert_allclose(sig["logits"], ref, atol=1e-5)


@pytest.mark.parametrize("head", ["BertModel", "BertForSequenceClassification"])
def test_tf_saved_model_save(head, tmp_path):
    """Plain tf.saved_model.save, of the model itself and of a tf.Module holding it (the nested ``bert`` model
    must not contribute a bogus default signature)."""
    model = CLASSES[head](tiny_config(), seed=0)
    ids = np.random.default_rng(0).integers(1, 99, (2, 5)).astype(np.int32)
    tf.saved_model.save(model, str(tmp_path / "raw"), signatures=model.serving_function())
    reloaded = tf.saved_model.load(str(tmp_path / "raw"))
    out = reloaded.signatures["serving_default"](
        input_ids=tf.constant(ids), attention_mask=tf.ones_like(ids), token_type_ids=tf.zeros_like(ids)
    )
    key = "last_hidden_state" if head == "BertModel" else "logits"
    np.testing.assert_allclose(out[key], model(input_ids=ids)[key], atol=1e-5)

    class Holder(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)])
        def serve(self, input_ids):
            return {key: self.model(input_ids, training=False)[key]}

    holder = Holder()
    tf.saved_model.save(holder, str(tmp_path / "module"), signatures={"serving_default": holder.serve})
    served = tf.saved_model.load(str(tmp_path / "module")).signatures["serving_default"](input_ids=tf.constant(ids))
    np.testing.assert_allclose(served[key], model(input_ids=ids)[key], atol=1e-5)


@pytest.mark.parametrize("head", ["BertForMaskedLM", "BertLMHeadModel", "BertForMultipleChoice"])
def test_keras_file_round_trip(head, tmp_path):
    config = tiny_config(
        is_decoder=head == "BertLMHeadModel", position_embedding_type="relative_key_query", num_labels=3
    )
    model = CLASSES[head](config, seed=4)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    for name, value in model.canonical_weights().items():
        np.testing.assert_array_equal(loaded.canonical_weights()[name], value, err_msg=name)
    clone = type(model).from_config(model.get_config())
    assert clone.config == model.config and clone.name == model.name


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
