"""Every head's loss equals the PyTorch-semantics formula, computed here in numpy from the head's own logits."""

from __future__ import annotations

import numpy as np
import pytest

from bert_core.config import tiny_config

from .conftest import random_ids


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def cross_entropy(logits: np.ndarray, labels: np.ndarray, ignore_index: int = -100) -> float:
    """torch.nn.CrossEntropyLoss: mean over labels != ignore_index."""
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    keep = labels != ignore_index
    logp = log_softmax(logits[keep])
    return float(-logp[np.arange(keep.sum()), labels[keep]].mean())


def bce_with_logits(logits: np.ndarray, labels: np.ndarray) -> float:
    x, y = logits.astype(np.float64), labels.astype(np.float64)
    return float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))


def close(a, b, tol=1e-5):
    assert abs(float(a) - float(b)) <= tol * (1 + abs(float(b))), (float(a), float(b))


def test_masked_lm_ignores_minus_100(backend):
    model = backend.make("BertForMaskedLM")
    ids = random_ids(model.config)
    labels = ids.copy()
    labels[:, ::2] = -100
    out = backend.run(model, input_ids=ids, labels=labels)
    close(out["loss"], cross_entropy(out["logits"], labels))


def test_causal_lm_shifts_labels_and_drops_the_cache(backend):
    model = backend.make("BertLMHeadModel")
    ids = random_ids(model.config)
    out = backend.run(model, input_ids=ids, labels=ids)
    close(out["loss"], cross_entropy(out["logits"][:, :-1], ids[:, 1:]))
    assert not any(k.startswith("past_key_values") for k in out)  # labels turn the cache off, as HF


def test_pretraining_sums_mlm_and_nsp_and_needs_both(backend):
    model = backend.make("BertForPreTraining")
    ids = random_ids(model.config)
    labels = ids.copy()
    labels[:, 1::2] = -100
    nsp = np.array([0, 1])
    out = backend.run(model, input_ids=ids, labels=labels, next_sentence_label=nsp)
    close(
        out["loss"],
        cross_entropy(out["prediction_logits"], labels) + cross_entropy(out["seq_relationship_logits"], nsp),
    )
    assert "loss" not in backend.run(model, input_ids=ids, labels=labels)


def test_next_sentence_labels_and_legacy_name(backend):
    model = backend.make("BertForNextSentencePrediction")
    ids = random_ids(model.config)
    nsp = np.array([1, 0])
    out = backend.run(model, input_ids=ids, labels=nsp)
    close(out["loss"], cross_entropy(out["logits"], nsp))
    close(backend.run(model, input_ids=ids, next_sentence_label=nsp)["loss"], out["loss"])


@pytest.mark.parametrize(
    "num_labels, problem_type, labels, kind",
    [
        (1, None, np.array([0.5, -1.0], np.float32), "mse_squeezed"),
        (3, None, np.array([2, 0]), "ce"),
        (3, None, np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], np.float32), "bce"),
        (3, "regression", np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], np.float32), "mse"),
        (2, "single_label_classification", np.array([1, -100]), "ce"),
    ],
)
def test_sequence_classification_problem_types(backend, num_labels, problem_type, labels, kind):
    config = tiny_config(num_labels=num_labels, problem_type=problem_type)
    model = backend.make("BertForSequenceClassification", config)
    out = backend.run(model, input_ids=random_ids(config), labels=labels)
    logits = out["logits"].astype(np.float64)
    expected = {
        "mse_squeezed": lambda: np.mean((logits[:, 0] - labels) ** 2),
        "mse": lambda: np.mean((logits - labels) ** 2),
        "ce": lambda: cross_entropy(logits, labels),
        "bce": lambda: bce_with_logits(logits, labels),
    }[kind]()
    close(out["loss"], expected)


def test_token_classification_ignores_minus_100(backend):
    config = tiny_config(num_labels=4)
    model = backend.make("BertForTokenClassification", config)
    ids = random_ids(config)
    labels = np.random.default_rng(1).integers(0, 4, ids.shape)
    labels[0, :3] = -100
    out = backend.run(model, input_ids=ids, labels=labels)
    close(out["loss"], cross_entropy(out["logits"], labels))


def test_multiple_choice_flattens_choices_in_order(backend):
    config = tiny_config()
    model = backend.make("BertForMultipleChoice", config)
    ids = random_ids(config, choices=3)
    y = np.array([2, 1])
    out = backend.run(
        model, input_ids=ids, attention_mask=np.ones_like(ids), token_type_ids=np.zeros_like(ids), labels=y
    )
    assert out["logits"].shape == (2, 3)
    close(out["loss"], cross_entropy(out["logits"], y))
    # choice j of example i is the (i * C + j)-th flattened sequence: each choice alone gives the same score
    alone = backend.run(model, input_ids=ids[1:2, 2:3])["logits"]
    np.testing.assert_allclose(alone[0, 0], out["logits"][1, 2], atol=1e-5)


def test_question_answering_clamps_and_ignores_out_of_range(backend):
    model = backend.make("BertForQuestionAnswering")
    ids = random_ids(model.config)  # seq 7: start 99 is clamped to 7 and ignored
    out = backend.run(model, input_ids=ids, start_positions=np.array([1, 99]), end_positions=np.array([[2], [3]]))
    expected = (
        cross_entropy(out["start_logits"][:1], np.array([1])) + cross_entropy(out["end_logits"], np.array([2, 3]))
    ) / 2
    close(out["loss"], expected)
    out = backend.run(model, input_ids=ids, start_positions=np.array([-5, 0]), end_positions=np.array([0, 0]))
    close(
        out["loss"],
        (cross_entropy(out["start_logits"], np.array([0, 0])) + cross_entropy(out["end_logits"], np.array([0, 0]))) / 2,
    )
