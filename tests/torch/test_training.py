"""bert_torch.training on a tiny config: decay groups, schedule, AdamW step, accumulation, clipping, state, bf16."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bert_core.config import tiny_config
from bert_core.training import schedules
from bert_core.training.args import TrainingArguments
from bert_core.training.decay import decay_mask
from bert_core.training.reference import adamw_step, clip_by_global_norm, init_state
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


def test_each_step_equals_the_numpy_reference_adamw_with_clipping(tmp_path):
    """Three steps (linear decay, decay mask, clipping that engages), each against bert_core.training.reference from
    the same weights and moments (ours, read back through optimizer_state)."""
    rng = np.random.default_rng(0)
    args = _args(tmp_path, learning_rate=5e-3, weight_decay=0.1, max_grad_norm=0.1, adam_epsilon=1e-6)
    model = _model()
    backend = LoopBackend(model, args, total_steps=4)
    reference = _copy_model(model)
    mask = decay_mask(model.canonical_weights())
    for u in range(3):
        batch = _batch(rng, 4)
        params, state = model.canonical_weights(), backend.optimizer_state()
        assert int(state["step"]) == u
        reference.load_canonical_weights(params)
        ref_loss, grads = canonical_grads(reference, batch)
        clipped, ref_norm = clip_by_global_norm(grads, 0.1)
        assert ref_norm > 0.1, "clipping must engage for this test to mean anything"
        lr = schedules.learning_rate(u, args, 4)
        params, state = adamw_step(
            params, clipped, state, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.1, decay=mask
        )
        loss, grad_norm = backend.train_step([batch])
        assert loss == ref_loss  # the same forward from the same weights (dropout off)
        assert grad_norm == pytest.approx(ref_norm, rel=1e-6)  # float32 vs float64 sum of squares
        ours = model.canonical_weights()
        for name, value in params.items():
            # float32 both, in torch's operation order; torch rounds the clip factor and sqrt(1 - beta2^t) to float32,
            # the reference keeps them float64: measured at most 1 ulp (6e-8 on LayerNorm weights near 1)
            np.testing.assert_allclose(ours[name], value, rtol=1.2e-7, atol=1e-9, err_msg=name)
        for key, value in backend.optimizer_state().items():
            # the moments see the clip factor directly (torch: float32 norm and factor; here float64), ~1e-7 of g,
            # and the lerp m + (1 - b1)(g - m) cancels where g ~ m: 1e-6 of the tensor's largest entry is allowed
            scale = float(np.max(np.abs(state[key]))) if key != "step" else 0.0
            np.testing.assert_allclose(value, state[key], rtol=4e-7, atol=1e-6 * scale, err_msg=key)


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
    model = _model()
    backend = LoopBackend(model, _args(tmp_path), total_steps=2)
    state = backend.optimizer_state()
    expected = init_state(model.canonical_weights())
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert state[key].dtype == value.dtype and state[key].shape == value.shape and not np.any(state[key]), key
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


# ------------------------------------------------------------------------------------------------------- Trainer

WORDS = "good great fine nice bad awful poor sad the a movie film plot was is very not".split()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from bert_core.tokenization import BertTokenizer

    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n", encoding="utf-8")
    return BertTokenizer(vocab_file=str(path))


def _sentiment(path, n, seed):
    import json

    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        positive = bool(rng.integers(0, 2))
        adjective = rng.choice(WORDS[:4] if positive else WORDS[4:8])
        words = ["the", str(rng.choice(["movie", "film", "plot"])), "was"] + ["very"] * int(rng.integers(0, 3))
        lines.append(json.dumps({"text": " ".join(words + [str(adjective)]), "label": "pos" if positive else "neg"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _trainer(tmp_path, tokenizer, output, **overrides):
    from bert_core.tasks import TASKS
    from bert_torch.training import Trainer

    task = TASKS["text-classification"]
    train = task.read(_sentiment(tmp_path / "train.jsonl", 22, 0))
    evaluation = task.read(_sentiment(tmp_path / "eval.jsonl", 8, 1))
    config = tiny_config(vocab_size=len(tokenizer.vocab), **task.label_config(train))
    values = dict(
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        num_train_epochs=2,
        learning_rate=1e-3,
        warmup_ratio=0.2,
        max_length=16,
        quiet=True,
    )
    values.update(overrides)
    args = _args(tmp_path / output, **values)
    model = BertForSequenceClassification(config, seed=0)  # dropout on (0.1): resume must restore the RNG
    train_features = task.features(train, tokenizer, args, training=True)
    eval_features = task.features(evaluation, tokenizer, args, training=False)
    return Trainer(model, args, task, train_features, eval_features, evaluation, tokenizer), args


def test_trainer_trains_writes_its_outputs_and_resumes_exactly(tmp_path, tokenizer):
    from bert_core.training import order
    from bert_core.training.loop import read_log
    from bert_core.training.state import load_checkpoint

    trainer, args = _trainer(tmp_path, tokenizer, "whole")
    metrics = trainer.train()
    out = tmp_path / "whole"
    records = read_log(out / "log.jsonl")
    train_records = [r for r in records if "loss" in r]
    total = order.total_steps(args, 22)
    assert total == 6  # 22 rows, B=4: 6 micro-batches per epoch (the last of 2), K=2: 3 steps, 2 epochs
    assert [r["step"] for r in train_records] == list(range(1, total + 1))
    assert [r["learning_rate"] for r in train_records] == [schedules.learning_rate(u, args, total) for u in range(6)]
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in train_records)
    assert [r["step"] for r in records if "eval_accuracy" in r] == [3, 6]
    assert metrics["global_step"] == 6 and "eval_accuracy" in metrics and "eval_loss" in metrics
    assert metrics["train_loss"] == pytest.approx(np.mean([r["loss"] for r in train_records]))
    # the final model is a canonical checkpoint holding the trained weights
    saved = BertForSequenceClassification.from_pretrained(out)
    for name, value in trainer.model.canonical_weights().items():
        np.testing.assert_array_equal(saved.canonical_weights()[name], value, err_msg=name)
    assert (out / "vocab.txt").is_file() and (out / "metrics.json").is_file() and (out / "training.png").is_file()
    opt_state, rng_state, state = load_checkpoint(out / "checkpoints" / "step-6")
    final_state = trainer.backend.optimizer_state()
    assert state.global_step == 6 and int(opt_state["step"]) == 6
    for key, value in final_state.items():
        np.testing.assert_array_equal(opt_state[key], value, err_msg=key)

    # resume from the end of epoch 1 in a fresh process-like setup: the remaining steps log exactly the same
    resumed, _ = _trainer(tmp_path, tokenizer, "resumed", resume_from=str(out / "checkpoints" / "step-3"))
    resumed.train()
    again = [r for r in read_log(tmp_path / "resumed" / "log.jsonl") if "loss" in r]
    assert [r["step"] for r in again] == [4, 5, 6]
    for mine, theirs in zip(again, train_records[3:]):
        assert (mine["loss"], mine["grad_norm"], mine["learning_rate"]) == (
            theirs["loss"],
            theirs["grad_norm"],
            theirs["learning_rate"],
        )
    for name, value in trainer.model.canonical_weights().items():
        np.testing.assert_array_equal(resumed.model.canonical_weights()[name], value, err_msg=name)
    evals = [[r for r in read_log(tmp_path / run / "log.jsonl") if "eval_loss" in r] for run in ("whole", "resumed")]
    assert evals[1] == [evals[0][-1]]  # the resumed run's only evaluation (step 6) is the uninterrupted one's


def test_bert_train_and_evaluate_run_the_torch_trainer(tmp_path, tokenizer):
    """``bert train`` / ``bert evaluate`` (bert_core.training.run) with --backend torch, end to end."""
    from bert_core.training import run

    start = tmp_path / "start"
    BertForSequenceClassification(tiny_config(vocab_size=len(tokenizer.vocab)), seed=0).save_pretrained(start)
    tokenizer.save_pretrained(start)
    common = dict(task="text-classification", backend="torch", max_length=16, quiet=True)
    args = _args(
        tmp_path / "out",
        model=str(start),
        train_file=str(_sentiment(tmp_path / "train.jsonl", 22, 0)),
        eval_file=str(_sentiment(tmp_path / "eval.jsonl", 8, 1)),
        per_device_train_batch_size=4,
        num_train_epochs=1,
        config_overrides={"hidden_dropout_prob": 0.0},
        **common,
    )
    metrics = run.train(args)
    assert metrics["global_step"] == 6 and set(metrics) >= {"eval_accuracy", "eval_f1", "eval_mcc", "eval_loss"}
    trained = BertForSequenceClassification.from_pretrained(tmp_path / "out")
    assert trained.config.id2label == {0: "neg", 1: "pos"} and trained.config.hidden_dropout_prob == 0.0
    # evaluation only: an empty training set, the trained model's label set
    again = run.evaluate(_args(tmp_path / "eval", model=str(tmp_path / "out"), eval_file=args.eval_file, **common))
    assert again == pytest.approx({k: v for k, v in metrics.items() if k.startswith("eval_")})
