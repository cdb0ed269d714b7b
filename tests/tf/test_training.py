"""bert_tf.training on tiny configs: the Keras optimizer against the numpy reference of torch.optim.AdamW (decay mask,
schedule, clipping, accumulation), fit on the model's own loss, MaskedAccuracy, prepare_tf_dataset's order, optimizer
and RNG state, and the Trainer (checkpoints, resume equal to the uninterrupted run, Ctrl-C, bf16)."""

import json
import os
import signal

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import bert_tf  # noqa: E402
from bert_core import tiny_config  # noqa: E402
from bert_core.tasks import TASKS  # noqa: E402
from bert_core.tokenization_fast import BertTokenizerFast  # noqa: E402
from bert_core.training import TrainingArguments, decay, order, reference, schedules  # noqa: E402
from bert_core.training.loop import TrainLoop, read_log  # noqa: E402
from bert_core.training.state import load_checkpoint  # noqa: E402
from bert_tf import training as T  # noqa: E402

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
WORDS = "the a cat dog sat ran on mat fast slow big small red blue happy sad good bad".split()


def _classifier(seed=0, **overrides):
    return bert_tf.BertForSequenceClassification(tiny_config(num_labels=2, **overrides), seed=seed)


def _batch(rng, batch=4, seq=6):
    return {"input_ids": rng.integers(5, 99, (batch, seq)), "labels": rng.integers(0, 2, (batch,))}


# ------------------------------------------------------------------------------------------------ optimizer


def test_decay_mask_follows_canonical_names():
    model = _classifier()
    optimizer = T.create_optimizer(model, 1e-3, total_steps=4, weight_decay=0.1)
    variables = T.canonical_variables(model)
    assert len(variables) == len(model.trainable_variables)
    used = {name: optimizer._use_weight_decay(v) for name, v in variables.items()}
    assert used == decay.decay_mask(variables)
    assert used["bert.embeddings.word_embeddings.weight"] and used["classifier.weight"]
    assert not used["classifier.bias"] and not used["bert.embeddings.LayerNorm.weight"]


def test_schedule_is_the_core_schedule_by_update_count():
    args = TrainingArguments(output_dir="x", learning_rate=3e-4, lr_scheduler_type="cosine", warmup_steps=3)
    total = 10
    schedule = T.RecipeSchedule(3e-4, "cosine", 3, total)
    for u in range(total + 1):
        expected = schedules.learning_rate(u, args, total)
        assert schedule.value(u) == expected
        assert float(schedule(tf.constant(u))) == expected
    assert float(schedule(tf.constant(total + 5))) == schedule.value(total)  # past T: the last value
    with pytest.raises(ValueError, match="schedule='step'"):
        T.create_optimizer(_classifier(), 1e-3, schedule="step", total_steps=3)
    with pytest.raises(ValueError, match="gradient_accumulation_steps=0"):
        T.create_optimizer(_classifier(), 1e-3, total_steps=3, gradient_accumulation_steps=0)


def _apply_reference(params, grads, state, lr, max_norm, **kw):
    clipped, norm = reference.clip_by_global_norm(grads, max_norm)
    params, state = reference.adamw_step(params, clipped, state, lr, **kw)
    return params, state, norm


def test_adamw_equals_torch_reference_and_differs_from_keras_adamw():
    """Random variables and gradients, 5 updates with warmup, decay mask and clipping. eps=1e-3 makes the place of
    eps visible: Keras' own AdamW (eps on sqrt(v)) misses the reference by far more than the tolerance."""
    rng = np.random.default_rng(0)
    shapes = {"w": (16, 9), "b": (9,), "e": (31,)}
    init = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    steps, lr, wd, eps, max_norm = 5, 1e-2, 0.1, 1e-3, 1.0
    grads = [
        {k: (rng.standard_normal(s) * (5.0 if u % 2 else 0.01)).astype(np.float32) for k, s in shapes.items()}
        for u in range(steps)
    ]
    mask = {"w": True, "b": False, "e": True}
    schedule = T.RecipeSchedule(lr, "linear", 2, steps)

    params, state, norms = dict(init), reference.init_state(init), []
    for u in range(steps):
        params, state, norm = _apply_reference(
            params, grads[u], state, schedule.value(u), max_norm, eps=eps, weight_decay=wd, decay=mask
        )
        norms.append(norm)

    def run(optimizer):
        variables = {k: keras.Variable(v.copy()) for k, v in init.items()}
        optimizer.exclude_from_weight_decay(var_list=[variables["b"]])
        optimizer.build(list(variables.values()))
        seen = []
        for u in range(steps):
            optimizer.apply([tf.constant(grads[u][k]) for k in variables], list(variables.values()))
            seen.append(float(optimizer.grad_norm.numpy()) if isinstance(optimizer, T.AdamW) else None)
        return {k: v.numpy() for k, v in variables.items()}, seen

    ours, seen = run(T.AdamW(schedule, weight_decay=wd, epsilon=eps, max_grad_norm=max_norm))
    for k in init:
        np.testing.assert_allclose(ours[k], params[k], rtol=1e-6, atol=1e-7, err_msg=k)
        assert not np.allclose(ours[k], init[k])
    np.testing.assert_allclose(seen, norms, rtol=1e-6)
    assert max(norms) > max_norm > min(norms)  # clipping was both active and inactive
    keras_adamw, _ = run(keras.optimizers.AdamW(schedule, weight_decay=wd, epsilon=eps, global_clipnorm=max_norm))
    assert max(np.max(np.abs(keras_adamw[k] - params[k])) for k in init) > 1e-4


def test_accumulation_averages_micro_batches_and_ends_epochs_early():
    """K=3 over an epoch of M=5 micro-batches: updates of 3 then 2 micro-batches; each update's gradient is the mean
    of its micro-batches' gradients (of their mean losses), clipped, then AdamW — as the numpy reference."""
    model, ref = _classifier(**NO_DROPOUT), _classifier(**NO_DROPOUT)
    optimizer = T.create_optimizer(
        model, 1e-2, total_steps=4, warmup_steps=0, weight_decay=0.01, max_grad_norm=0.5,
        gradient_accumulation_steps=3, micro_batches_per_epoch=5,
    )  # fmt: skip
    model.compile(optimizer=optimizer, run_eagerly=True)  # eager: no traces for the 2 batch shapes
    rng = np.random.default_rng(1)
    batches = [_batch(rng, batch=4 if i < 4 else 2) for i in range(5)]
    params, state = ref.canonical_weights(), reference.init_state(ref.canonical_weights())
    mask = decay.decay_mask(params)
    for u, group in enumerate((batches[:3], batches[3:])):
        losses, grads = [], []
        for b in group:
            loss, g = bert_tf.canonical_grads(ref, b)
            losses.append(loss)
            grads.append(g)
            model.train_on_batch({"input_ids": b["input_ids"]}, b["labels"])
        mean = {k: np.mean([g[k] for g in grads], axis=0) for k in params}
        params, state, norm = _apply_reference(
            params, mean, state, optimizer._learning_rate.value(u), 0.5, weight_decay=0.01, decay=mask
        )
        ref.load_canonical_weights(params)
        assert int(optimizer.iterations.numpy()) == u + 1
        np.testing.assert_allclose(float(optimizer.step_loss.numpy()), np.mean(losses), rtol=1e-6)
        np.testing.assert_allclose(float(optimizer.grad_norm.numpy()), norm, rtol=1e-5)
        weights = model.canonical_weights()
        for name in params:
            # Adam's step is ~lr whatever the gradient's size: elements with near-zero gradients carry their float noise
            np.testing.assert_allclose(weights[name], params[name], rtol=1e-5, atol=1e-3 * 1e-2, err_msg=name)
    assert optimizer.position == order.Position(1, 0)


def test_optimizer_state_round_trip_in_canonical_layout():
    rng = np.random.default_rng(2)
    model = _classifier(**NO_DROPOUT)
    optimizer = T.create_optimizer(model, 1e-3, total_steps=5)
    model.compile(optimizer=optimizer, run_eagerly=True)
    for _ in range(2):
        b = _batch(rng)
        model.train_on_batch({"input_ids": b["input_ids"]}, b["labels"])
    state = T.optimizer_state(model, optimizer)
    assert int(state["step"]) == 2
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert state[f"exp_avg/{name}"].shape == model._weight_table()[name].shape  # (out, in): PyTorch layout
    kernel = T.canonical_variables(model)[name]
    np.testing.assert_array_equal(
        state[f"exp_avg/{name}"], optimizer._exp_avgs[optimizer._get_variable_index(kernel)].numpy().T
    )

    other = _classifier(seed=1, **NO_DROPOUT)
    fresh = T.create_optimizer(other, 1e-3, total_steps=5)
    T.load_optimizer_state(other, fresh, state)
    assert int(fresh.iterations.numpy()) == 2
    again = T.optimizer_state(other, fresh)
    assert list(again) == list(state)
    for key in state:
        np.testing.assert_array_equal(again[key], state[key], err_msg=key)
    broken = dict(state)
    del broken[f"exp_avg_sq/{name}"]
    broken["exp_avg/not.a.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"missing \['exp_avg_sq/bert.encoder.*unexpected \['exp_avg/not.a.weight"):
        T.load_optimizer_state(other, fresh, broken)


def test_rng_state_names_and_round_trip():
    model = _classifier()
    T.seed_dropout(model, 7)
    state = T.rng_state(model)
    assert "bert/encoder/layer.1/attention/self/dropout" in state and "dropout" in state
    keys = [tuple(v) for v in state.values()]
    assert len(set(keys)) == len(keys)  # independent streams per layer
    other = _classifier()
    T.load_rng_state(other, state)
    ids = np.random.default_rng(0).integers(5, 99, (2, 6))
    np.testing.assert_array_equal(
        model(input_ids=ids, training=True).logits, other(input_ids=ids, training=True).logits
    )
    with pytest.raises(ValueError, match="missing"):
        T.load_rng_state(other, {"dropout": state["dropout"]})


# ------------------------------------------------------------------------------------------------ metric / dataset


def test_masked_accuracy_ignores_minus_100():
    metric = T.MaskedAccuracy()
    logits = np.array([[[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]], np.float32)
    labels = np.array([[1, 1, -100], [0, -100, 0]])
    metric.update_state(labels, logits)
    assert float(metric.result()) == pytest.approx(2 / 4)
    metric.update_state(np.array([-100]), np.zeros((1, 2), np.float32))
    assert float(metric.result()) == pytest.approx(2 / 4)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_prepare_tf_dataset_follows_the_recipe_order():
    features = [{"index": i, "length": 1 + i % 3} for i in range(7)]

    def collate(rows, rng):
        width = max(r["length"] for r in rows)
        ids = np.array([[r["index"]] * width for r in rows], np.int64)
        return {"input_ids": ids, "labels": np.full(len(rows), rng.integers(1000), np.int64)}

    ds = T.prepare_tf_dataset(features, collate, 3, shuffle=True, seed=5, epochs=2)
    items = list(ds.as_numpy_iterator())
    assert int(ds.cardinality()) == len(items) == 6  # ceil(7 / 3) per epoch
    for k, (x, y) in enumerate(items):
        epoch, i = divmod(k, 3)
        expected = order.epoch_order(7, 5, epoch, True)[i * 3 : (i + 1) * 3]
        np.testing.assert_array_equal(x["input_ids"][:, 0], expected)
        assert y[0] == order.batch_rng(5, epoch, i).integers(1000)
    assert not np.array_equal(items[0][0]["input_ids"][:, 0], items[3][0]["input_ids"][:, 0])
    resumed = list(T.prepare_tf_dataset(features, collate, 3, True, 5, epochs=2, start=(0, 2)).as_numpy_iterator())
    assert len(resumed) == 4
    for a, b in zip(resumed, items[2:]):
        np.testing.assert_array_equal(a[0]["input_ids"], b[0]["input_ids"])


def test_fit_trains_on_the_model_own_loss_with_masked_accuracy():
    """compile without a loss: the head's loss (labels from the dataset's y) is what fit minimises."""
    rng = np.random.default_rng(3)
    # learnable: the label is whether token 7 occurs
    features = []
    for i in range(32):
        ids = rng.integers(10, 99, 6)
        ids[rng.integers(6)] = 7 if i % 2 else 8
        features.append({"input_ids": ids, "labels": i % 2})

    def collate(rows, rng=None):
        return {"input_ids": np.stack([r["input_ids"] for r in rows]), "labels": np.array([r["labels"] for r in rows])}

    model = _classifier(**NO_DROPOUT)
    epochs, micro = 6, 4
    model.compile(
        optimizer=T.create_optimizer(model, 3e-3, total_steps=epochs * micro, micro_batches_per_epoch=micro),
        metrics=[T.MaskedAccuracy()],
    )
    ds = T.prepare_tf_dataset(features, collate, 8, seed=0, epochs=epochs)
    history = model.fit(ds, epochs=epochs, steps_per_epoch=micro, shuffle=False, verbose=0).history
    assert all(b < a for a, b in zip(history["loss"], history["loss"][1:]))
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["masked_accuracy"][-1] == 1.0
    assert int(model.optimizer.iterations.numpy()) == epochs * micro


# ------------------------------------------------------------------------------------------------ Trainer


@pytest.fixture(scope="module")
def text_data():
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    tokenizer = BertTokenizerFast(vocab=vocab)
    rng = np.random.default_rng(0)
    examples = [
        {"text": " ".join(rng.choice(WORDS, rng.integers(3, 9))), "label": ["neg", "pos"][i % 2]} for i in range(22)
    ]
    return tokenizer, examples


def _trainer(text_data, out, model=None, **overrides):
    tokenizer, examples = text_data
    values = dict(
        output_dir=str(out), task="text-classification", backend="tf", model="tiny", num_train_epochs=2,
        per_device_train_batch_size=4, gradient_accumulation_steps=4, learning_rate=1e-3, warmup_steps=1,
        weight_decay=0.01, quiet=True, save_steps=1, seed=3,
    )  # fmt: skip
    values.update(overrides)
    args = TrainingArguments(**values)
    task = TASKS["text-classification"]
    updates = task.label_config(examples)
    train = task.features(examples, tokenizer, args, training=True)
    evals = task.features(examples[:8], tokenizer, args, training=False)
    # one layer: a run's cost is mostly tracing the train step, which grows with the layers
    model = model or bert_tf.BertForSequenceClassification(tiny_config(num_hidden_layers=1, **updates), seed=0)
    return T.Trainer(model, args, task, train, evals, examples[:8], tokenizer)


def _losses(out):
    return {r["step"]: r["loss"] for r in read_log(out / "log.jsonl") if "loss" in r}


@pytest.fixture(scope="module")
def full_run(text_data, tmp_path_factory):
    """Dropout on, K=4 over 6 micro-batches per epoch (updates of 4 and 2), 2 epochs, a checkpoint every step."""
    out = tmp_path_factory.mktemp("full")
    trainer = _trainer(text_data, out)
    return trainer, out, trainer.train()


def test_trainer_writes_logs_checkpoints_and_outputs(full_run):
    trainer, out, metrics = full_run
    assert metrics["global_step"] == 4 and set(_losses(out)) == {1, 2, 3, 4}
    assert "eval_accuracy" in metrics and metrics["best_step"] in (2, 4)
    records = read_log(out / "log.jsonl")
    assert [r["step"] for r in records if "eval_loss" in r] == [2, 4]  # eval_steps=0: at each epoch end
    assert records[0]["learning_rate"] == 0.0 and records[1]["learning_rate"] == 1e-3  # 1 warmup step
    assert all(r["grad_norm"] > 0 and r["epoch"] == r["step"] / 2 for r in records if "loss" in r)
    for name in ("model.safetensors", "metrics.json", "args.json", "training.png", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-1", "step-2", "step-3", "step-4"]
    optimizer_state, rng, state = load_checkpoint(out / "checkpoints" / "step-1")
    assert (state.global_step, state.epoch, state.micro_index) == (1, 0, 4)
    assert int(optimizer_state["step"]) == 1 and len(optimizer_state) == 2 * len(trainer.model.trainable_variables) + 1
    assert rng and all(v.dtype == np.int64 for v in rng.values())
    # bert evaluate: a Trainer without training features scores the trained model alike
    evaluation = T.Trainer(trainer.model, trainer.args, trainer.task, [], trainer.eval_features, trainer.eval_examples)
    assert evaluation.evaluate() == {k: v for k, v in metrics.items() if k.startswith("eval_")}


def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_equals_the_uninterrupted_one(full_run, text_data, tmp_path):
    full, full_out, _ = full_run
    trainer = _trainer(text_data, tmp_path, save_steps=100)
    collate, calls = trainer.task.collate, []

    def interrupting_collate(rows, rng=None):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # deferred by the Trainer to the end of the running step
        return collate(rows, rng)

    trainer.task.collate = interrupting_collate
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    (step,) = [int(p.name.split("-")[1]) for p in (tmp_path / "checkpoints").iterdir()]
    assert 1 <= step < 4 and max(_losses(tmp_path)) == step

    resumed = _trainer(text_data, tmp_path, resume_from=str(tmp_path))
    resumed.train()
    assert _losses(tmp_path) == _losses(full_out)
    a, b = full.model.canonical_weights(), resumed.model.canonical_weights()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_fit_and_train_loop_take_the_same_steps(full_run, text_data, tmp_path):
    """bert_core's TrainLoop over the tf LoopBackend (the same Keras train_step, one optimizer step at a time) logs
    the losses of the fit Trainer."""
    full, full_out, _ = full_run
    looped = _trainer(text_data, tmp_path, save_steps=0)
    backend = T.LoopBackend(looped.model, looped.args, looped.total_steps, len(looped.train_features))
    TrainLoop(
        backend, looped.task, looped.args, looped.train_features, looped.eval_features, looped.eval_examples
    ).train()
    assert _losses(tmp_path) == _losses(full_out)
    a, b = full.model.canonical_weights(), looped.model.canonical_weights()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_bf16_trains_with_float32_master_weights(text_data, tmp_path):
    trainer = _trainer(text_data, tmp_path, bf16=True, warmup_steps=0)
    backend = T.LoopBackend(trainer.model, trainer.args, trainer.total_steps, len(trainer.train_features))
    assert trainer.model.dtype_policy.name == "mixed_bfloat16"
    assert trainer.model.bert.encoder.layer[0].attention.self.query.compute_dtype == "bfloat16"
    before = trainer.model.canonical_weights()
    batches = [trainer.task.collate(trainer.train_features[i : i + 4]) for i in range(0, 16, 4)]
    loss, grad_norm = backend.train_step(batches)
    assert np.isfinite(loss) and grad_norm > 0
    assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)
    after = trainer.model.canonical_weights()
    assert all(v.dtype == np.float32 for v in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    outputs = backend.eval_step(batches[0])
    assert outputs["logits"].dtype == np.float32 and np.isfinite(outputs["loss"])
