"""Flax training recipe: decay mask, schedule, AdamW vs the numpy torch-style reference (clipping, accumulation with a
short last group), canonical optimizer state, resume == uninterrupted, bf16, Trainer.

Compiles are the cost here, so the tests that run steps share one recipe (``ARGS``), one model config and one
micro-batch shape: the jitted micro-step and the accumulation padding compile once each for all of them.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bert_flax
from bert_core.config import tiny_config
from bert_core.training import decay, schedules
from bert_core.training.args import TrainingArguments
from bert_core.training.reference import adamw_step, clip_by_global_norm, init_state
from bert_core.weights import stored_weights
from bert_flax.training import LoopBackend, Trainer, create_optimizer, learning_rate_schedule

TOTAL = 4
ARGS = dict(
    learning_rate=1e-2,
    lr_scheduler_type="linear",
    warmup_steps=1,
    weight_decay=0.1,
    max_grad_norm=3.0,
    gradient_accumulation_steps=3,
    seed=7,
)
CONFIG = dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def _batch(rng: np.random.Generator, labelled: int) -> dict:
    """An MLM micro-batch (4, 6) with ``labelled`` positions that count in its mean loss (the rest -100)."""
    ids = rng.integers(1, 99, (4, 6))
    mask = np.ones((4, 6), np.int64)
    mask[0, 4:] = 0  # a padded row
    labels = np.full((4, 6), -100)
    labels.flat[rng.choice(np.flatnonzero(mask), labelled, replace=False)] = ids.flat[:labelled]
    return dict(input_ids=ids, attention_mask=mask, labels=labels)


_rng = np.random.default_rng(0)
# micro-batches of one shape (one compile) whose mean losses count different numbers of tokens, so the step loss (the
# mean of the micro-batch means) differs from a token-weighted mean
A, B, C = _batch(_rng, 6), _batch(_rng, 2), _batch(_rng, 11)
# one optimizer step each: a lone micro-batch, a full group of K=3, two short groups
STEPS = [[A], [A, B, C], [B, C], [C, A]]


def _args(tmp_path, **overrides) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), **{**ARGS, **overrides})


def _model(seed: int = 0, **kwargs) -> bert_flax.BertForMaskedLM:
    """MLM head: the tied decoder is the word embedding, one parameter and one optimizer entry."""
    return bert_flax.BertForMaskedLM(tiny_config(**CONFIG), seed=seed, **kwargs)


def _canonical(model, tree) -> dict:
    """A params-shaped tree (``nnx.State`` of Variables or arrays) by canonical name and layout, float64, read
    through the model's own weight mapping."""
    params = nnx.state(model, nnx.Param)
    tree = jax.tree.map(
        lambda p, x: p.replace(x), params, nnx.as_pure(tree), is_leaf=lambda x: isinstance(x, nnx.Variable)
    )
    graphdef, _, rest = nnx.split(model, nnx.Param, ...)
    return {k: v.astype(np.float64) for k, v in nnx.merge(graphdef, tree, rest).canonical_weights().items()}


def _eager_grads(model, batch) -> tuple:
    """Loss and canonical gradients of one micro-batch, eagerly, dropout on, advancing ``model``'s RNG streams
    exactly as a jitted micro-step does (``model`` is a clone taken before the step)."""
    loss, grads = nnx.value_and_grad(lambda m: m(**batch, deterministic=False, return_dict=True).loss)(model)
    return float(loss), _canonical(model, grads)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The uninterrupted run of STEPS, and the float64 torch-formula reference fed the same gradients."""
    args = _args(tmp_path_factory.mktemp("run"))
    model = _model()
    backend = LoopBackend(model, args, TOTAL)
    ref_params = {k: v.astype(np.float64) for k, v in model.canonical_weights().items()}
    ref_state = init_state(ref_params)
    mask = decay.decay_mask(ref_params)
    out = dict(losses=[], norms=[], ref_losses=[], ref_norms=[], token_weighted=[])
    for u, micro in enumerate(STEPS):
        clone = nnx.clone(model)
        per_batch = [_eager_grads(clone, b) for b in micro]
        grads = {k: np.mean([g[k] for _, g in per_batch], axis=0) for k in ref_params}
        clipped, norm = clip_by_global_norm(grads, args.max_grad_norm)
        ref_params, ref_state = adamw_step(
            ref_params,
            clipped,
            ref_state,
            schedules.learning_rate(u, args, TOTAL),
            betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon,
            weight_decay=args.weight_decay,
            decay=mask,
        )
        loss, grad_norm = backend.train_step(micro)
        out["losses"].append(loss)
        out["norms"].append(grad_norm)
        out["ref_losses"].append(np.mean([loss for loss, _ in per_batch]))
        out["ref_norms"].append(norm)
        counts = [np.sum(b["labels"] != -100) for b in micro]
        out["token_weighted"].append(np.average([loss for loss, _ in per_batch], weights=counts))
    out.update(
        backend=backend,
        weights=model.canonical_weights(),
        ref_params=ref_params,
        ref_state=ref_state,
        args=args,
    )
    return out


def _max_delta(got, want, keys) -> float:
    return max(float(np.max(np.abs(np.asarray(got[k], np.float64) - want[k]))) for k in keys)


def test_adamw_steps_equal_the_torch_formula_with_clipping_and_accumulation(run):
    # losses: the mean of the micro-batch mean losses, same dropout masks as the eager reference
    np.testing.assert_allclose(run["losses"], run["ref_losses"], rtol=1e-6)
    assert abs(run["losses"][1] - run["token_weighted"][1]) > 1e-3  # which a token-weighted mean would not match
    # the pre-clip norm of the averaged gradient; some steps clip (norm > max_grad_norm), some do not
    np.testing.assert_allclose(run["norms"], run["ref_norms"], rtol=2e-6)
    assert min(run["norms"]) < ARGS["max_grad_norm"] < max(run["norms"])
    # Attention key biases have an exactly zero gradient (softmax ignores a shift shared by all keys): both sides move
    # them by rounding noise / eps, so they are left out. Elsewhere the differences are optax's float32 bias
    # corrections (1 - 0.999**t with 0.999 rounded to float32: <= 1.3e-5 of an update) and the eager reference's
    # gradients against the jitted step's (~1e-7 relative), which Adam amplifies where v is small.
    names = [k for k in run["ref_params"] if not k.endswith("attention.self.key.bias")]
    assert _max_delta(run["weights"], run["ref_params"], names) < 1e-6  # the updates are ~1e-2 (lr)
    state = run["backend"].optimizer_state()
    assert int(state["step"]) == TOTAL and state["step"].dtype == np.int64
    assert set(state) == set(run["ref_state"])
    moments = [k for k in state if k != "step"]
    # canonical layout: a linear weight's moment is (out, in), as the table says; the tied decoder has no entry
    assert state["exp_avg/bert.encoder.layer.0.intermediate.dense.weight"].shape == (37, 32)
    assert "exp_avg/cls.predictions.decoder.weight" not in state
    assert _max_delta(state, run["ref_state"], [k for k in moments if k.startswith("exp_avg/")]) < 1e-7
    assert _max_delta(state, run["ref_state"], [k for k in moments if k.startswith("exp_avg_sq/")]) < 1e-9


def test_resume_equals_uninterrupted(run, tmp_path):
    args = _args(tmp_path)
    first = LoopBackend(_model(), args, TOTAL)
    losses = [first.train_step(micro)[0] for micro in STEPS[:2]]
    weights, optimizer, rngs = first.model.canonical_weights(), first.optimizer_state(), first.rng_state()
    assert all(np.issubdtype(v.dtype, np.integer) for v in rngs.values())
    # a different model and RNG; everything comes from the saved state
    model = _model(seed=5)
    model.load_canonical_weights(weights)
    second = LoopBackend(model, args, TOTAL)
    second.load_optimizer_state(optimizer)
    second.load_rng_state(rngs)
    losses += [second.train_step(micro)[0] for micro in STEPS[2:]]
    assert losses == run["losses"]
    final = model.canonical_weights()
    assert all(np.array_equal(final[k], run["weights"][k]) for k in final)
    again = second.optimizer_state()
    assert all(np.array_equal(again[k], v) for k, v in run["backend"].optimizer_state().items())


def test_state_refuses_other_names_and_shapes(run):
    backend = run["backend"]
    state = backend.optimizer_state()
    bad = dict(state)
    bad["exp_avg/cls.predictions.bias"] = np.zeros((3, 32), np.float32)
    del bad["exp_avg_sq/cls.predictions.bias"]
    with pytest.raises(
        ValueError, match=r"missing \['exp_avg_sq/cls.predictions.bias'\].*cls.predictions.bias: got \(3, 32\)"
    ):
        backend.load_optimizer_state(bad)
    with pytest.raises(ValueError, match="unexpected \\['torch_cpu'\\]"):
        backend.load_rng_state({**backend.rng_state(), "torch_cpu": np.zeros(4, np.uint8)})


def test_decay_mask_follows_the_weight_table():
    """Zero gradients: AdamW's step is 0, so each weight moves only by its decay, ``-lr * wd * p`` or nothing."""
    model = _model(seed=1)
    optimizer = create_optimizer(model, 0.5, schedule="constant", total_steps=1, weight_decay=0.2, max_grad_norm=0)
    params = _canonical(model, nnx.state(model, nnx.Param))
    updates = _canonical(model, optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))))
    assert list(updates) == list(stored_weights(model.config, "BertForMaskedLM"))
    for name, update in updates.items():
        want = -0.5 * 0.2 * params[name] if decay.decays(name) else np.zeros_like(update)
        np.testing.assert_allclose(update, want, rtol=1e-6, atol=1e-12, err_msg=name)
    assert not decay.decays("bert.encoder.layer.0.output.LayerNorm.weight")
    assert decay.decays("bert.embeddings.word_embeddings.weight")  # embeddings decay (and the tied decoder with them)


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant"])
def test_schedule_is_the_numpy_one(kind):
    total, warmup = 11, 3
    args = TrainingArguments(output_dir="-", learning_rate=3e-4, lr_scheduler_type=kind, warmup_steps=warmup)
    got = np.asarray(learning_rate_schedule(3e-4, kind, warmup, total)(jnp.arange(total + 3)))
    want = np.asarray([schedules.learning_rate(min(u, total), args, total) for u in range(total + 3)], np.float32)
    np.testing.assert_array_equal(got, want)


def test_clip_by_global_norm_against_torch_formula():
    """optax divides by the norm, torch by ``norm + 1e-6``: one AdamW update from large gradients, clipped and not."""
    model = _model()
    rng = np.random.default_rng(3)
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), nnx.state(model, nnx.Param))
    canonical = _canonical(model, grads)
    params = _canonical(model, nnx.state(model, nnx.Param))
    deltas, runs = {}, {}
    for max_norm in (1.0, 0.0):  # 0: no clipping
        # eps=1e-3 keeps Adam's first step sensitive to the gradient's scale (else m / sqrt(v) = sign(g))
        optimizer = create_optimizer(model, 1e-3, schedule="constant", total_steps=1, max_grad_norm=max_norm, eps=1e-3)
        updates = runs[max_norm] = _canonical(model, optimizer.update(nnx.clone(model), grads))
        clipped, norm = clip_by_global_norm(canonical, max_norm)
        want, _ = adamw_step(params, clipped, init_state(params), 1e-3, eps=1e-3)
        deltas[max_norm] = max(float(np.max(np.abs(updates[k] - (want[k] - params[k])) / 1e-3)) for k in want)
    assert norm > 100  # a clipping factor of ~1/140, which moves the update by a tenth of the learning rate
    assert max(float(np.max(np.abs(runs[1.0][k] - runs[0.0][k]))) for k in params) > 0.1 * 1e-3
    # relative to the learning rate (the size of an update): optax's float32 bias correction 1 - 0.999 is 1.29e-5 off,
    # so sqrt(v_hat) is 6.4e-6 off; torch's 1e-6 in the clipping factor is 1e-6 / norm, under 1e-8 here
    assert max(deltas.values()) < 1e-5


def test_accumulation_refuses_more_micro_batches_than_k(run):
    with pytest.raises(ValueError, match="got 4 micro-batches; expected 1 to gradient_accumulation_steps=3"):
        run["backend"].train_step([A, A, A, A])


@pytest.mark.parametrize(
    "setting, value, expected",
    [
        ("total_steps", 0, "an integer >= 1"),
        ("schedule", "poly", "one of linear, cosine, constant"),
        ("betas", (0.9, 1.0), "two finite numbers >= 0 and < 1"),
        ("gradient_accumulation_steps", 0, "an integer >= 1"),
        ("max_grad_norm", -1.0, "a finite number >= 0"),
    ],
)
def test_create_optimizer_names_bad_settings(setting, value, expected):
    kwargs = {"total_steps": 10, setting: value}
    with pytest.raises(ValueError, match=f"create_optimizer: {setting}=.* is invalid; expected {expected}"):
        create_optimizer(_model(), 1e-3, **kwargs)


def test_bf16_trains_float32_master_weights(tmp_path):
    args = _args(tmp_path, bf16=True, gradient_accumulation_steps=1)
    with pytest.raises(ValueError, match="bf16=True needs a model with dtype=bfloat16 and param_dtype=float32"):
        LoopBackend(_model(), args, TOTAL)
    model = _model(dtype=jnp.bfloat16)
    backend = LoopBackend(model, args, TOTAL)
    losses = [backend.train_step([A])[0] for _ in range(3)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert {v.dtype for v in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.float32)}
    state = backend.optimizer_state()
    moment = state["exp_avg/bert.embeddings.word_embeddings.weight"]
    assert moment.dtype == np.float32 and np.abs(moment).max() > 0


WORDS = ["good", "great", "fine", "bad", "awful", "poor", "movie", "film", "plot", "story"]


def _classification_data(tmp_path):
    """A ten-word tokenizer and 8 four-word reviews (one token shape, one compile) labelled by their first word."""
    from bert_core.tasks import TASKS
    from bert_core.tokenization_fast import BertTokenizerFast

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    rng = np.random.default_rng(4)
    rows = []
    for i in range(8):
        first = WORDS[i % 6]
        rows.append({"text": " ".join([first, *rng.choice(WORDS[6:], 3)]), "label": "pos" if i % 6 < 3 else "neg"})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = TASKS["text-classification"]
    examples = task.read(path)
    return task, tokenizer, examples, task.label_config(examples)


def test_trainer_trains_checkpoints_and_resumes(tmp_path):
    task, tokenizer, examples, labels = _classification_data(tmp_path)
    features = task.features(examples, tokenizer, TrainingArguments(output_dir="-", max_length=16), training=True)
    kwargs = dict(learning_rate=5e-3, num_train_epochs=2, per_device_train_batch_size=4, per_device_eval_batch_size=8)
    kwargs.update(max_length=16, seed=3, quiet=True, warmup_ratio=0.25, weight_decay=0.01)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), **kwargs)
    model = bert_flax.BertForSequenceClassification(tiny_config(**CONFIG, **labels), seed=0)
    trainer = Trainer(model, args, task, features, features, examples, tokenizer)
    assert trainer.model is model  # float32 already: trained in place
    metrics = trainer.train()
    assert metrics["global_step"] == 4 and np.isfinite(metrics["train_loss"]) and 0 <= metrics["eval_accuracy"] <= 1
    out = tmp_path / "run"
    for name in ("model.safetensors", "config.json", "vocab.txt", "metrics.json", "args.json", "training.png"):
        assert (out / name).is_file(), name
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in log if "loss" in r}
    assert sorted(losses) == [1, 2, 3, 4] and all(r["grad_norm"] > 0 for r in log if "grad_norm" in r)
    # the saved model is the trained one, in canonical form
    saved = bert_flax.BertForSequenceClassification.from_pretrained(out)
    assert all(np.array_equal(v, model.canonical_weights()[k]) for k, v in saved.canonical_weights().items())
    assert saved.config.id2label == {0: "neg", 1: "pos"}
    # resume from the epoch-1 checkpoint (files on disk) in a new model: the same losses and weights
    resumed_args = TrainingArguments(
        output_dir=str(tmp_path / "resumed"), resume_from=str(out / "checkpoints" / "step-2"), **kwargs
    )
    other = bert_flax.BertForSequenceClassification(tiny_config(**CONFIG, **labels), seed=9)
    Trainer(other, resumed_args, task, features, features, examples, tokenizer).train()
    log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert {r["step"]: r["loss"] for r in log if "loss" in r} == {3: losses[3], 4: losses[4]}
    assert all(np.array_equal(v, model.canonical_weights()[k]) for k, v in other.canonical_weights().items())
    # bf16 takes a bfloat16-computing copy of a float32 model (same float32 weights); evaluation only
    bf16 = Trainer(model, TrainingArguments(output_dir=str(tmp_path / "bf16"), bf16=True), task, [], features, examples)
    assert bf16.model is not model and bf16.model.dtype == jnp.bfloat16 and bf16.model.param_dtype == jnp.float32
    assert all(np.array_equal(v, model.canonical_weights()[k]) for k, v in bf16.model.canonical_weights().items())
