"""Property-based cross-backend checks: random shapes, dtypes, ranges and masks.

For every generated input, either every backend computes outputs that agree (the project's tolerance policy) and
are finite, or every backend raises the same error class with the same message. Runs where two or more backends
are installed (the conformance env).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert_core.config import tiny_config
from conformance.tolerance import compare

HEADS = ["BertModel", "BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification"]


@st.composite
def model_inputs(draw):
    config = tiny_config()
    batch = draw(st.integers(1, 3))
    seq = draw(st.integers(1, 10))
    dtype = draw(st.sampled_from([np.int64, np.int32, np.float32]))
    low = draw(st.sampled_from([0, 0, 0, -1]))
    high = draw(st.sampled_from([config.vocab_size, config.vocab_size, config.vocab_size + 1]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    inputs = {"input_ids": rng.integers(low, high, (batch, seq)).astype(dtype)}
    if draw(st.booleans()):
        mask = rng.integers(0, 2, (batch, seq))
        mask[:, 0] = 1
        mask_seq = seq + draw(st.sampled_from([0, 0, 0, 1]))
        inputs["attention_mask"] = np.pad(mask, ((0, 0), (0, mask_seq - seq)), constant_values=1)
    if draw(st.booleans()):
        inputs["token_type_ids"] = rng.integers(0, draw(st.sampled_from([2, 2, 3])), (batch, seq))
    if draw(st.booleans()):
        start = draw(st.integers(0, 60))
        rows = draw(st.sampled_from([1, batch]))
        inputs["position_ids"] = np.tile(np.arange(start, start + seq), (rows, 1))
    head = draw(st.sampled_from(HEADS))
    if draw(st.booleans()) and head != "BertModel":
        classes = config.vocab_size if head == "BertForMaskedLM" else config.num_labels
        shape = (batch,) if head == "BertForSequenceClassification" else (batch, seq)
        labels = rng.integers(-1, classes + 1, shape)
        labels[rng.random(shape) < 0.3] = -100
        inputs["labels"] = labels
    return head, inputs


def _outcome(driver, model, inputs):
    try:
        return "ok", driver.run(model, **inputs)
    except (ValueError, TypeError) as err:
        return type(err).__name__, str(err)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=model_inputs())
def test_backends_agree_or_fail_alike(all_backends, case):
    head, inputs = case
    outcomes = {}
    for driver in all_backends:
        model = _model(driver, head)
        outcomes[driver.name] = _outcome(driver, model, inputs)
    kinds = {name: kind for name, (kind, _) in outcomes.items()}
    assert len(set(kinds.values())) == 1, {n: (k, v if k != "ok" else "outputs") for n, (k, v) in outcomes.items()}
    (first, (kind, ref)), *rest = outcomes.items()
    if kind != "ok":
        for name, (_, message) in rest:
            assert message == ref, (first, ref, name, message)
        return
    for field, value in ref.items():
        if field != "loss" or not np.isnan(value).all():
            assert np.isfinite(value).all(), (first, field)
        for name, (_, other) in rest:
            result = compare(value, other[field])
            assert result.passed, (field, first, name, result)


_MODELS = {}


def _model(driver, head):
    key = (driver.name, head)
    if key not in _MODELS:
        _MODELS[key] = driver.make(head, tiny_config())
    return _MODELS[key]


@pytest.mark.parametrize("head", HEADS)
def test_valid_random_inputs_never_give_nan(backend, head):
    """Fully masked rows, single tokens, the largest ids and positions: finite outputs everywhere."""
    model = backend.make(head, tiny_config())
    rng = np.random.default_rng(0)
    for batch, seq in ((1, 1), (3, 10), (2, 64)):
        ids = rng.integers(0, 99, (batch, seq))
        ids[0, -1] = 98
        mask = np.ones_like(ids)
        mask[-1] = 0  # a row with nothing to attend to
        out = backend.run(model, input_ids=ids, attention_mask=mask, position_ids=np.arange(64 - seq, 64)[None])
        for field, value in out.items():
            assert np.isfinite(value).all(), (head, batch, seq, field)
