"""from_pretrained's deferred load: variables are created from the loaded arrays (no zero fill, no assign over it),
every head equals what was saved, the mixed-precision policy still applies, and a model stays trainable."""

import keras
import numpy as np
import tensorflow as tf

import bert_tf
from bert_core.config import tiny_config


def test_heads_load_exactly_what_was_saved(tmp_path):
    config = tiny_config(position_embedding_type="relative_key")
    ids = np.array([[1, 5, 9, 2]])
    for head in ("BertModel", "BertForPreTraining", "BertForMultipleChoice", "BertForQuestionAnswering"):
        cls = getattr(bert_tf, head)
        source = cls(config, seed=3)
        source.save_pretrained(tmp_path / head)
        loaded = cls.from_pretrained(tmp_path / head)
        for name, value in source.canonical_weights().items():
            np.testing.assert_array_equal(loaded.canonical_weights()[name], value, err_msg=f"{head}: {name}")
        inputs = ids if head != "BertForMultipleChoice" else ids[None]
        np.testing.assert_allclose(
            np.asarray(loaded(inputs)[0]), np.asarray(source(inputs)[0]), rtol=1e-6, atol=1e-6, err_msg=head
        )


def test_mixed_precision_and_training_after_a_deferred_load(tmp_path):
    config = tiny_config()
    bert_tf.BertForSequenceClassification(config, seed=0).save_pretrained(tmp_path)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        half = bert_tf.BertForSequenceClassification.from_pretrained(tmp_path)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert all(v.dtype == "float32" for v in half.weights)  # variables stay float32 under mixed precision
    assert half(np.array([[1, 5, 9, 2]])).logits.dtype == tf.bfloat16
    model = bert_tf.BertForSequenceClassification.from_pretrained(tmp_path)
    before = model.bert.embeddings.word_embeddings.embeddings.numpy().copy()
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.fit({"input_ids": np.array([[1, 5, 9, 2]] * 2), "labels": np.array([0, 1])}, epochs=1, verbose=0)
    assert not np.array_equal(model.bert.embeddings.word_embeddings.embeddings.numpy(), before)
