"""bert_torch.training on a tiny config: decay groups, schedule, AdamW step, accumulation, clipping, state, bf16."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bert_core.config import tiny_config
from bert_core.training import schedules
from bert_core.training.args import TrainingArguments
from bert_torch import BertForMaskedLM, BertForSequenceClassification, canonical_grads
from bert_torch.training import LoopBackend, canonical_parameters, create_optimizer

SEQ = 8


def _model(head=BertForSequenceClassification, dropout=0.0, seed=0):
    config = tiny_config(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, num_labels=3)
    return head(config, seed=seed)


def _batch(rng: np.random.Generator, size: int, num_labels: int = 3):
    ids = rng.integers(5, 99, size=(size, SEQ))
    mask = np.ones((size, SEQ), np.int64)
    mask[0, -3:] = 0  # some padding, so the mask matters
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": np.zeros((size, SEQ), np.int64),
        "labels": rng.integers(0, num_labels, size=(size,)),
    }


def _args(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        learning_rate=1e-2,
        weight_decay=0.01,
        max_grad_norm=1.0,
        warmup_steps=0,
        gradient_accumulation_steps=1,
        seed=7,
    )
    values.update(overrides)
    return TrainingArguments(**values).validate()


def _weights(model):
    return {k: v.copy() for k, v in model.canonical_weights().items()}


def _copy_model(model):
    fresh = type(model)(model.config, seed=None)
    fresh.load_canonical_weights(model.canonical_weights())
    return fresh


# ------------------------------------------------------------------------------------------------ decay groups


def test_decay_groups_exclude_exactly_biases_and_layernorm():
    model = _model(BertForMaskedLM)
    optimizer, _ = create_optimizer(model, 1e-3, total_steps=10, weight_decay=0.1)
    names = {id(p): n for n, p in canonical_parameters(model).items()}
    decayed = [names[id(p)] for p in optimizer.param_groups[0]["params"]]
    kept = [names[id(p)] for p in optimizer.param_groups[1]["params"]]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    # HF Trainer's rule, by name: "bias" in the name, or a LayerNorm module
    expected_kept = {n for n in names.values() if n.endswith("bias") or ".LayerNorm." in n}
    assert set(kept) == expected_kept
    assert set(decayed) == set(names.values()) - expected_kept
    assert "bert.embeddings.word_embeddings.weight" in decayed  # embeddings decay (and the tied decoder is it)
    assert "cls.predictions.bias" in kept
    # every trainable parameter once: the tied decoder is not a second entry
    all_params = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(all_params) == len({id(p) for p in all_params}) == len(list(model.parameters()))


def test_create_optimizer_refuses_bad_settings():
    model = _model()
    with pytest.raises(ValueError, match=r"learning_rate=-1\.0 is invalid; expected a finite number >= 0"):
        create_optimizer(model, -1.0, total_steps=10)
    with pytest.raises(ValueError, match=r"schedule='step' is invalid; expected one of linear, cosine, constant"):
        create_optimizer(model, 1e-3, schedule="step", total_steps=10)
    with pytest.raises(ValueError, match=r"total_steps=0 is invalid"):
        create_optimizer(model, 1e-3, total_steps=0)
    with pytest.raises(ValueError, match=r"betas=\(0\.9, 1\.0\) is invalid"):
        create_optimizer(model, 1e-3, total_steps=10, betas=(0.9, 1.0))


# ----------------------------------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    "kind,warmup", [("linear", dict(warmup_steps=3)), ("cosine", dict(warmup_ratio=0.25)), ("constant", {})]
)
def test_schedule_through_the_optimizer_equals_bert_core(tmp_path, kind, warmup):
    total = 10
    args = _args(tmp_path, lr_scheduler_type=kind, learning_rate=3e-4, **warmup)
    backend = LoopBackend(_model(), args, total)
    seen = []
    for _ in range(total):
        seen.append(backend.learning_rate)
        backend.optimizer.step()  # no gradients: the parameters are left alone, the schedule advances
        backend.scheduler.step()
    expected = [schedules.learning_rate(u, args, total) for u in range(total)]
    assert seen == expected  # same float operations: exact
    assert all(g["lr"] == backend.learning_rate for g in backend.optimizer.param_groups)
    if warmup:
        assert seen[0] == 0.0 and seen[schedules.warmup_steps(args, total)] == pytest.approx(3e-4)


# ---------------------------------------------------------------------------------------------- AdamW reference


def _numpy_adamw(weights, grads, state, *, lr, wd, b1, b2, eps, max_norm, decays):
    """torch.optim.AdamW after clip_grad_norm_, in float64 numpy; updates ``weights`` and ``state`` in place."""
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    coef = min(1.0, max_norm / (norm + 1e-6))
    state["t"] += 1
    t = state["t"]
    for name, g in grads.items():
        g = g.astype(np.float64) * coef
        p = weights[name].astype(np.float64)
        if decays(name):
            p = p * (1 - lr * wd)
        m = state.setdefault(("m", name), np.zeros_like(g)) * b1 + (1 - b1) * g
        v = state.setdefault(("v", name), np.zeros_like(g)) * b2 + (1 - b2) * g * g
        state[("m", name)], state[("v", name)] = m, v
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
        weights[name] = p - (lr / (1 - b1**t)) * m / denom
    return norm


def test_steps_equal_a_numpy_adamw_with_clipping(tmp_path):
    """Three steps (linear decay, decay mask, clipping that engages) against float64 numpy: the torch update."""
    from bert_core.training.decay import decays

    rng = np.random.default_rng(0)
    args = _args(tmp_path, learning_rate=5e-3, weight_decay=0.1, max_grad_norm=0.1, adam_epsilon=1e-6)
    model = _model()
    backend = LoopBackend(model, args, total_steps=4)
    reference = _copy_model(model)
    ref_weights = {k: v.astype(np.float64) for k, v in model.canonical_weights().items()}
    state = {"t": 0}
    for u in range(3):
        batch = _batch(rng, 4)
        reference.load_canonical_weights({k: v.astype(np.float32) for k, v in ref_weights.items()})
        ref_loss, grads = canonical_grads(reference, batch)
        loss, grad_norm = backend.train_step([batch])
        ref_norm = _numpy_adamw(
            ref_weights,
            grads,
            state,
            lr=schedules.learning_rate(u, args, 4),
            wd=0.1,
            b1=0.9,
            b2=0.999,
            eps=1e-6,
            max_norm=0.1,
            decays=decays,
        )
        assert ref_norm > 0.1, "clipping must engage for this test to mean anything"
        assert loss == pytest.approx(ref_loss, rel=1e-6)
        assert grad_norm == pytest.approx(ref_norm, rel=1e-5)
        ours = model.canonical_weights()
        for name, value in ref_weights.items():
            # float32 arithmetic vs float64: a few ulps of the weights (|w| ~ 0.02-1), not of the update
            np.testing.assert_allclose(ours[name], value, rtol=0, atol=2e-6, err_msg=name)


def test_no_clipping_when_max_grad_norm_is_zero(tmp_path):
    """With max_grad_norm=0 the full gradient is applied; the logged norm is still the true one."""
    rng = np.random.default_rng(1)
    batch = _batch(rng, 4)
    results = {}
    for max_norm in (0.0, 1e-3):
        model = _model()
        backend = LoopBackend(model, _args(tmp_path, max_grad_norm=max_norm), total_steps=2)
        results[max_norm] = (backend.train_step([batch])[1], model.canonical_weights())
    assert results[0.0][0] == pytest.approx(results[1e-3][0], rel=1e-6)
    name = "classifier.weight"
    assert not np.allclose(results[0.0][1][name], results[1e-3][1][name])


# ------------------------------------------------------------------------------------------------- accumulation


def test_accumulating_two_batches_equals_one_batch_of_twice_the_size(tmp_path):
    rng = np.random.default_rng(2)
    first, second = _batch(rng, 3), _batch(rng, 3)
    joined = {k: np.concatenate([first[k], second[k]]) for k in first}
    model_k2, model_k1 = _model(), _model()
    # Adam's first update is ~lr * sign(g): a large eps keeps it Lipschitz in g, so the test sees gradient
    # differences (summation order, ~1e-9) and not sign flips of gradients that cancel to ~0
    k2 = LoopBackend(model_k2, _args(tmp_path, gradient_accumulation_steps=2, adam_epsilon=1e-3), total_steps=2)
    k1 = LoopBackend(model_k1, _args(tmp_path, adam_epsilon=1e-3), total_steps=2)
    loss_k2, norm_k2 = k2.train_step([first, second])
    loss_k1, norm_k1 = k1.train_step([joined])
    assert loss_k2 == pytest.approx(loss_k1, rel=1e-6)
    assert norm_k2 == pytest.approx(norm_k1, rel=1e-5)
    w2, w1 = model_k2.canonical_weights(), model_k1.canonical_weights()
    for name in w1:
        np.testing.assert_allclose(w2[name], w1[name], rtol=0, atol=1e-6, err_msg=name)


def test_train_step_refuses_more_micro_batches_than_accumulation(tmp_path):
    rng = np.random.default_rng(3)
    backend = LoopBackend(_model(), _args(tmp_path, gradient_accumulation_steps=2), total_steps=2)
    with pytest.raises(ValueError, match="got 3 micro-batches; expected 1 to gradient_accumulation_steps=2"):
        backend.train_step([_batch(rng, 2) for _ in range(3)])


# ---------------------------------------------------------------------------------------------- state round trip


def test_optimizer_and_rng_state_resume_exactly(tmp_path):
    """Save after step 1 (dropout on), load into a fresh backend and model: steps 2-3 equal the uninterrupted run."""
    rng = np.random.default_rng(4)
    batches = [[_batch(rng, 2), _batch(rng, 2)] for _ in range(3)]
    args = _args(tmp_path, gradient_accumulation_steps=2, warmup_steps=1)
    model = _model(dropout=0.1)
    start = _copy_model(model)
    whole = LoopBackend(model, args, total_steps=3)
    losses = [whole.train_step(b) for b in batches]

    first = LoopBackend(start, args, total_steps=3)
    assert first.train_step(batches[0]) == losses[0]
    saved = first.optimizer_state(), first.rng_state(), _weights(start)
    opt_state, rng_state, weights = saved
    assert int(opt_state["step"]) == 1
    assert set(opt_state) == {"step"} | {f"{m}/{n}" for n in weights for m in ("exp_avg", "exp_avg_sq")}
    assert all(opt_state[f"exp_avg/{n}"].shape == w.shape for n, w in weights.items())
    assert rng_state["torch_cpu"].dtype == np.uint8

    first.train_step(batches[1])  # move the global RNG and the state on, so the load has to restore them
    resumed_model = _model(dropout=0.1, seed=123)
    resumed_model.load_canonical_weights(weights)
    resumed = LoopBackend(resumed_model, args, total_steps=3)
    resumed.load_optimizer_state(opt_state)
    resumed.load_rng_state(rng_state)
    assert resumed.learning_rate == schedules.learning_rate(1, args, 3)
    assert [resumed.train_step(b) for b in batches[1:]] == losses[1:]
    for name, value in model.canonical_weights().items():
        np.testing.assert_array_equal(resumed_model.canonical_weights()[name], value, err_msg=name)


def test_optimizer_state_before_the_first_step_is_zero_and_loads(tmp_path):
    backend = LoopBackend(_model(), _args(tmp_path), total_steps=2)
    state = backend.optimizer_state()
    assert int(state["step"]) == 0
    assert all(not np.any(v) for k, v in state.items())
    backend.load_optimizer_state(state)
    loss, _ = backend.train_step([_batch(np.random.default_rng(5), 2)])
    assert math.isfinite(loss)


def test_load_optimizer_state_names_what_is_wrong(tmp_path):
    backend = LoopBackend(_model(), _args(tmp_path), total_steps=2)
    state = backend.optimizer_state()
    del state["exp_avg/classifier.bias"]
    state["exp_avg_sq/classifier.weight"] = np.zeros((2, 2), np.float32)
    state["exp_avg/extra"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as err:
        backend.load_optimizer_state(state)
    message = str(err.value)
    assert "missing ['exp_avg/classifier.bias']" in message
    assert "unexpected ['exp_avg/extra']" in message
    assert "exp_avg_sq/classifier.weight: got (2, 2), expected (3, 32)" in message


# ------------------------------------------------------------------------------------------------- eval and bf16


def test_eval_step_returns_float32_numpy_and_keeps_the_mode(tmp_path):
    model = _model(dropout=0.1)
    backend = LoopBackend(model, _args(tmp_path), total_steps=1)
    model.train()
    batch = _batch(np.random.default_rng(6), 3)
    out = backend.eval_step(batch)
    assert list(out) == ["loss", "logits"]
    assert out["logits"].shape == (3, 3) and out["logits"].dtype == np.float32 and out["loss"].shape == ()
    assert model.training
    no_labels = backend.eval_step({k: v for k, v in batch.items() if k != "labels"})
    assert list(no_labels) == ["logits"]
    np.testing.assert_array_equal(no_labels["logits"], out["logits"])  # eval mode: no dropout, deterministic


def test_bf16_trains_with_float32_master_weights(tmp_path):
    rng = np.random.default_rng(7)
    batches = [_batch(rng, 4) for _ in range(2)]
    losses = {}
    for bf16 in (False, True):
        model = _model()
        backend = LoopBackend(model, _args(tmp_path, bf16=bf16), total_steps=2)
        losses[bf16] = [backend.train_step([b])[0] for b in batches]
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert backend.eval_step(batches[0])["logits"].dtype == np.float32
    assert losses[True] != losses[False]  # autocast did run in bfloat16
    np.testing.assert_allclose(losses[True], losses[False], rtol=2e-2)
