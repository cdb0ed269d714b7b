"""(g) The whole fine-tuning loop, data included: our ``Trainer`` per backend against HF's loop for the same framework.

Every contender trains ``BertForSequenceClassification`` from one checkpoint on the same ``text-classification``
features (``bert_core.tasks``: the JSONL file read, tokenized once, collated per step), with one recipe: AdamW
(lr 2e-5, weight decay 0.01 off biases and LayerNorm weights, betas 0.9/0.999, eps 1e-8), linear decay without
warmup, gradient clipping at global norm 1.0, dropout on, fp32, batch B, no evaluation, no checkpoint. A run is
``warmup + steps`` optimizer steps; its measured window is the wall time from the end of step ``warmup`` to the end
of step ``warmup + steps`` (compilation and tracing fall in the warm-up steps):

- ours: ``bert_<b>.training.Trainer(model, args, task, features).train()`` with its defaults (shuffled order,
  ``log.jsonl`` every step, progress bar off); the end of a step is when the loop reports it to its progress bar
  (``LogWriter.progress``: once per optimizer step in the torch/flax ``TrainLoop`` and in tf's ``TrainLog``).
- HF torch: ``transformers.Trainer`` (``DataCollatorWithPadding`` from the tokenizer, its ``RandomSampler``,
  ``save_strategy="no"``, ``report_to="none"``), end of step = ``TrainerCallback.on_step_end``.
- HF TF: ``TFBertForSequenceClassification.compile(optimizer=transformers.create_optimizer(...))`` (the model's own
  loss: HF's default compile) and ``fit`` on a shuffled ``tf.data`` of ``DataCollatorWithPadding(return_tensors="np")``
  batches with ``prefetch(AUTOTUNE)`` (what ``model.prepare_tf_dataset`` builds); end of step =
  ``on_train_batch_end``.
- HF Flax: the ``run_flax_glue`` pattern: ``FlaxBertForSequenceClassification``, a ``flax.training.train_state``
  with ``optax`` (clip + ``adamw`` with the decay mask and a linear schedule), one ``jax.jit`` train step with the
  state donated, numpy batches from ``DataCollatorWithPadding``; JAX's asynchronous dispatch is kept (the loss is not
  fetched per step), the clock waits for the device at the two window ends only.

Frameworks are imported lazily, as in :mod:`benchmarks.frameworks`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .frameworks import _quiet_hf, hf_tf_checkpoint
from .workloads import StepClock

TASK = "text-classification"
HEAD = "BertForSequenceClassification"
#: the recipe every contender runs (names of bert_core.training.TrainingArguments)
RECIPE = dict(
    learning_rate=2e-5,
    weight_decay=0.01,
    max_grad_norm=1.0,
    lr_scheduler_type="linear",
    warmup_steps=0,
    adam_beta1=0.9,
    adam_beta2=0.999,
    adam_epsilon=1e-8,
    seed=42,
)
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "labels")

#: run() -> seconds of the measured window; the contender's train losses are appended to ``losses``
Contender = Tuple[Callable[[], float], List[float]]


def _workdir(tag: str) -> str:
    return tempfile.mkdtemp(prefix=f"{tag}-", dir=os.environ.get("BERT_BENCH_TMP"))


def our_args(framework: str, ckpt: str, output_dir: str, batch: int, length: int, total_steps: int):
    from bert_core.training import TrainingArguments

    return TrainingArguments(
        output_dir=output_dir,
        task=TASK,
        backend=framework,
        model=ckpt,
        max_steps=total_steps,
        per_device_train_batch_size=batch,
        max_length=length,
        save_steps=10**9,  # never inside the run (0 would checkpoint at the end of each epoch)
        quiet=True,
        **RECIPE,
    )


def load_features(ckpt: str, data_file: str, length: int) -> Tuple[Any, List[Dict[str, Any]], Any]:
    """(task, training features, tokenizer): ``data_file`` read by the task and tokenized with the checkpoint's
    tokenizer (truncated to ``length``), the labels taken from the checkpoint's ``id2label``."""
    from bert_core import BertConfig
    from bert_core.tasks import TASKS
    from bert_core.tokenization_fast import BertTokenizerFast

    task = TASKS[TASK]
    task.set_label_config(BertConfig.from_pretrained(ckpt))
    tokenizer = BertTokenizerFast.from_pretrained(ckpt)
    examples = task.read(data_file)
    return task, task.features(examples, tokenizer, SimpleNamespace(max_length=length), training=True), tokenizer


@contextlib.contextmanager
def our_step_clock(clock: StepClock):
    """Tick ``clock`` whenever one of our trainers reports a finished optimizer step to its progress bar."""
    from bert_core.training import loop

    original = loop.LogWriter.progress

    def progress(self, steps: int = 1, **postfix: float) -> None:
        original(self, steps, **postfix)
        clock.tick()

    loop.LogWriter.progress = progress
    try:
        yield clock
    finally:
        loop.LogWriter.progress = original


def ours(framework: str, ckpt: str, features: Sequence[Mapping[str, Any]], task: Any, shape: Mapping[str, int]):
    """Our ``Trainer`` of ``framework`` on a model loaded once (each run trains it further)."""
    from bert_core.backends import BACKENDS

    package = importlib.import_module(BACKENDS[framework].package)
    training = importlib.import_module(f"{BACKENDS[framework].package}.training")
    model = getattr(package, HEAD).from_pretrained(ckpt)
    warmup, steps = shape["warmup_steps"], shape["steps"]
    losses: List[float] = []

    def run() -> float:
        out = _workdir(f"ours-{framework}")
        args = our_args(framework, ckpt, out, shape["batch"], shape["length"], warmup + steps)
        try:
            with our_step_clock(StepClock()) as clock:
                metrics = training.Trainer(model, args, task, features).train()
            losses.append(float(metrics["train_loss"]))
            return clock.window(warmup, steps)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return run, losses


def _hf_rows(features: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    return [{k: f[k] for k in MODEL_INPUTS} for f in features]


def hf_torch(ckpt: str, features: Sequence[Mapping[str, Any]], shape: Mapping[str, int]) -> Contender:
    transformers = _quiet_hf()
    model = transformers.BertForSequenceClassification.from_pretrained(ckpt, attn_implementation="sdpa")
    tokenizer = transformers.BertTokenizerFast.from_pretrained(ckpt)
    rows = _hf_rows(features)
    warmup, steps = shape["warmup_steps"], shape["steps"]
    losses: List[float] = []

    class Clock(transformers.TrainerCallback):
        def __init__(self) -> None:
            self.clock = StepClock()

        def on_step_end(self, args, state, control, **kwargs):
            self.clock.tick()

    def run() -> float:
        out = _workdir("hf-torch")
        targs = transformers.TrainingArguments(
            output_dir=out,
            max_steps=warmup + steps,
            per_device_train_batch_size=shape["batch"],
            learning_rate=RECIPE["learning_rate"],
            weight_decay=RECIPE["weight_decay"],
            max_grad_norm=RECIPE["max_grad_norm"],
            lr_scheduler_type=RECIPE["lr_scheduler_type"],
            warmup_steps=RECIPE["warmup_steps"],
            adam_beta1=RECIPE["adam_beta1"],
            adam_beta2=RECIPE["adam_beta2"],
            adam_epsilon=RECIPE["adam_epsilon"],
            seed=RECIPE["seed"],
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
        )
        callback = Clock()
        trainer = transformers.Trainer(
            model=model, args=targs, train_dataset=rows, processing_class=tokenizer, callbacks=[callback]
        )
        try:
            losses.append(float(trainer.train().training_loss))
            return callback.clock.window(warmup, steps)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return run, losses


def hf_tf(ckpt: str, features: Sequence[Mapping[str, Any]], shape: Mapping[str, int]) -> Contender:
    import tensorflow as tf
    import tf_keras

    transformers = _quiet_hf()
    model = transformers.TFBertForSequenceClassification.from_pretrained(hf_tf_checkpoint(ckpt), from_pt=True)
    collator = transformers.DataCollatorWithPadding(
        transformers.BertTokenizerFast.from_pretrained(ckpt), return_tensors="np"
    )
    rows = _hf_rows(features)
    batch, warmup, steps = shape["batch"], shape["warmup_steps"], shape["steps"]
    inputs = [k for k in MODEL_INPUTS if k != "labels"]
    signature = ({k: tf.TensorSpec((None, None), tf.int64, name=k) for k in inputs}, tf.TensorSpec((None,), tf.int64))
    losses: List[float] = []
    runs = [0]

    def batches():
        # shuffled full batches, as prepare_tf_dataset(shuffle=True) gives (drop_remainder follows shuffle there)
        order = np.random.default_rng([RECIPE["seed"], runs[0]]).permutation(len(rows))
        for start in range(0, len(rows) - batch + 1, batch):
            collated = collator([rows[i] for i in order[start : start + batch]])
            yield {k: collated[k] for k in inputs}, collated["labels"]

    def run() -> float:
        runs[0] += 1
        optimizer, _ = transformers.create_optimizer(
            init_lr=RECIPE["learning_rate"],
            num_train_steps=warmup + steps,
            num_warmup_steps=RECIPE["warmup_steps"],
            adam_beta1=RECIPE["adam_beta1"],
            adam_beta2=RECIPE["adam_beta2"],
            adam_epsilon=RECIPE["adam_epsilon"],
            adam_global_clipnorm=RECIPE["max_grad_norm"],
            weight_decay_rate=RECIPE["weight_decay"],
        )
        model.compile(optimizer=optimizer)  # no loss given: the model's own (HF's default)
        clock = StepClock()

        def tick(index, logs=None):
            float((logs or {}).get("loss", 0.0))  # the step's result on the host
            clock.tick()

        dataset = tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(tf.data.AUTOTUNE)
        history = model.fit(
            dataset,
            epochs=1,
            steps_per_epoch=warmup + steps,
            callbacks=[tf_keras.callbacks.LambdaCallback(on_train_batch_end=tick)],
            verbose=0,
        )
        losses.append(float(history.history["loss"][-1]))
        return clock.window(warmup, steps)

    return run, losses


def _decay_mask(params: Any) -> Any:
    """run_flax_glue's mask: no decay on biases and LayerNorm scales."""
    from flax import traverse_util

    flat = traverse_util.flatten_dict(params)
    norms = {path[-2:] for path in flat if "layernorm" in "".join(path).lower()}
    return traverse_util.unflatten_dict({path: path[-1] != "bias" and path[-2:] not in norms for path in flat})


def hf_flax(ckpt: str, features: Sequence[Mapping[str, Any]], shape: Mapping[str, int]) -> Contender:
    import jax
    import optax
    from flax.training import train_state

    transformers = _quiet_hf()
    model = transformers.FlaxBertForSequenceClassification.from_pretrained(ckpt, from_pt=True)
    collator = transformers.DataCollatorWithPadding(
        transformers.BertTokenizerFast.from_pretrained(ckpt), return_tensors="np"
    )
    rows = _hf_rows(features)
    batch, warmup, steps = shape["batch"], shape["warmup_steps"], shape["steps"]
    total = warmup + steps
    tx = optax.chain(
        optax.clip_by_global_norm(RECIPE["max_grad_norm"]),
        optax.adamw(
            learning_rate=optax.linear_schedule(RECIPE["learning_rate"], 0.0, total),
            b1=RECIPE["adam_beta1"],
            b2=RECIPE["adam_beta2"],
            eps=RECIPE["adam_epsilon"],
            weight_decay=RECIPE["weight_decay"],
            mask=_decay_mask,
        ),
    )

    class TrainState(train_state.TrainState):
        dropout_rng: jax.Array

    def train_step(state, inputs):
        dropout_rng, next_rng = jax.random.split(state.dropout_rng)
        labels = inputs.pop("labels")

        def loss_fn(params):
            logits = state.apply_fn(**inputs, params=params, dropout_rng=dropout_rng, train=True)[0]
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads, dropout_rng=next_rng), loss

    step_fn = jax.jit(train_step, donate_argnums=(0,))
    held = {"params": model.params}
    losses: List[float] = []

    def run() -> float:
        state = TrainState.create(
            apply_fn=model.__call__, params=held["params"], tx=tx, dropout_rng=jax.random.PRNGKey(len(losses))
        )
        order = np.random.default_rng([RECIPE["seed"], len(losses)]).permutation(len(rows))
        clock = StepClock()
        loss = None
        for step in range(1, total + 1):
            indices = order[(step - 1) * batch : step * batch]
            state, loss = step_fn(state, dict(collator([rows[i] for i in indices])))
            if step in (warmup, total):
                jax.block_until_ready(loss)
            clock.tick()  # only the ticks at the window ends are read, and the device is done at those
        held["params"] = state.params
        losses.append(float(loss))
        return clock.window(warmup, steps)

    return run, losses


HF = {"torch": hf_torch, "tf": hf_tf, "flax": hf_flax}
