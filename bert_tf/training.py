"""Keras 3 training: the recipe of ``docs/training.md`` as a Keras optimizer, metric, dataset and callbacks for ``fit``.

A Keras user keeps ``compile`` + ``fit``; everything the recipe adds is a Keras object:

- :class:`AdamW` (``keras.optimizers.Optimizer``): ``torch.optim.AdamW``'s arithmetic (Keras' own ``AdamW`` adds
  ``eps`` to ``sqrt(v)`` instead of ``sqrt(v_hat)``), the decay mask of ``bert_core.training.decay`` through Keras'
  ``exclude_from_weight_decay``, clipping by global norm with the pre-clip norm kept, and gradient accumulation with
  the recipe's averaging (``K`` micro-batches per update, fewer at an epoch's end, each micro-batch's loss divided by
  the step's micro-batch count in ``scale_loss``, which Keras' ``train_step`` calls). Keras' built-in
  ``gradient_accumulation_steps`` divides by a fixed ``K`` and runs across epoch ends, so it is not used.
- :class:`RecipeSchedule` (``LearningRateSchedule``): ``bert_core.training.schedules`` at update ``u``.
- :func:`create_optimizer`: the two above, built on the model's variables, masked by canonical name.
- :func:`prepare_tf_dataset`: ``tf.data`` micro-batches in the recipe's order, collated by the task's numpy collate.
- :class:`MaskedAccuracy`: accuracy over labels that are not -100.
- callbacks (:class:`TrainLog`, :class:`EvalCallback`, :class:`CheckpointCallback`) and :class:`Trainer`, which
  runs ``fit`` with them for ``bert train``.

Optimizer moments leave and enter in canonical names and PyTorch layout (``exp_avg/<name>``, ``exp_avg_sq/<name>``,
``step``) so a checkpoint resumes in any backend.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bert_core.data import IGNORE_INDEX
from bert_core.training import decay, order, schedules
from bert_core.training.args import check_optimizer_settings
from bert_core.training.loop import (
    Checkpointer,
    Evaluator,
    LogWriter,
    _due,
    _Interrupt,
    best_metric_name,
    finish,
    model_writer,
)
from bert_core.training.state import check_resume, load_checkpoint, load_model_weights, resolve_resume
from bert_core.weights import from_backend_array, to_backend_array

from . import distributed
from .modeling import BertPreTrainedModel, _cross_entropy, keras, tf

#: Keys of the optimizer state: ``exp_avg/<canonical name>``, ``exp_avg_sq/<canonical name>`` and ``step``.
MOMENTS = ("exp_avg", "exp_avg_sq")
STEP_KEY = "step"
#: Collated keys that are labels: :func:`prepare_tf_dataset` yields them as ``y`` (the model folds them back in).
LABEL_KEYS = ("labels", "start_positions", "end_positions", "next_sentence_label")
#: torch ``clip_grad_norm_``'s guard in ``max_norm / (norm + 1e-6)``.
_CLIP_EPS = 1e-6


# ------------------------------------------------------------------------------------------------------ schedule


@keras.saving.register_keras_serializable(package="bert_tf")
class RecipeSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of optimizer update ``u`` (0-based): ``learning_rate * schedules.multiplier(...)``.

    The values are computed once by ``bert_core.training.schedules`` in Python floats (as torch's ``LambdaLR`` does)
    and looked up by ``u``, so every backend uses the same numbers. Updates past ``total_steps`` keep the last value.

    Args:
        learning_rate: peak learning rate.
        schedule: "linear", "cosine" or "constant", each after linear warmup.
        warmup_steps: optimizer updates of warmup.
        total_steps: optimizer updates of the run (``T``).

    Calling it with an integer tensor ``step`` returns a float64 scalar tensor.
    """

    def __init__(self, learning_rate: float, schedule: str, warmup_steps: int, total_steps: int) -> None:
        self.learning_rate = float(learning_rate)
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        table = [self.value(u) for u in range(self.total_steps + 1)]
        self._table = tf.constant(np.asarray(table, np.float64))

    def value(self, step: int) -> float:
        """The learning rate of update ``step`` as a Python float."""
        return self.learning_rate * schedules.multiplier(self.schedule, int(step), self.warmup_steps, self.total_steps)

    def __call__(self, step):
        index = tf.clip_by_value(tf.cast(step, tf.int64), 0, self.total_steps)
        return tf.gather(self._table, index)

    def get_config(self) -> Dict[str, Any]:
        return {
            "learning_rate": self.learning_rate,
            "schedule": self.schedule,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


# ----------------------------------------------------------------------------------------------------- optimizer


@keras.saving.register_keras_serializable(package="bert_tf")
class AdamW(keras.optimizers.Optimizer):
    """``torch.optim.AdamW`` as a Keras optimizer, with the recipe's clipping and gradient accumulation.

    Per update ``u`` (``iterations`` before it) with learning rate ``lr`` and ``t = u + 1``, in float32 with the
    scalars computed in float64 as torch does in Python::

        p *= 1 - lr * wd                      (variables not excluded from weight decay)
        m += (1 - b1) * (g - m)               (torch's lerp)
        v = v * b2 + (1 - b2) * g * g
        p += -(lr / (1 - b1**t)) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)

    Before the update the gradients are clipped by global norm when ``max_grad_norm > 0``
    (``g *= min(max_grad_norm / (norm + 1e-6), 1)``, torch ``clip_grad_norm_``); the norm before clipping is kept
    in :attr:`grad_norm`.

    Accumulation: ``K = gradient_accumulation_steps`` consecutive micro-batches (``apply`` calls) make one update; with
    ``micro_batches_per_epoch = M`` an epoch's last update takes the ``M mod K`` left over. :meth:`scale_loss` (called
    by Keras' ``train_step`` on each micro-batch's loss) divides the loss by its update's micro-batch count ``n`` and
    adds it to :attr:`step_loss`, so the update's gradient is that of the mean of the micro-batch losses and
    ``step_loss`` is that mean. ``micro_batches`` counts the micro-batches seen (epoch-aligned: ``epoch * M + i``),
    ``iterations`` the updates, which is the step the learning-rate schedule sees.

    Args:
        learning_rate: a float, or a ``LearningRateSchedule`` called with the update count (:class:`RecipeSchedule`).
        weight_decay: decoupled decay rate (use ``exclude_from_weight_decay`` for the mask).
        beta_1, beta_2, epsilon: Adam's constants (torch's ``betas`` and ``eps``).
        max_grad_norm: global-norm clipping threshold; 0 turns clipping off.
        gradient_accumulation_steps: micro-batches per update, K >= 1.
        micro_batches_per_epoch: M, so that an epoch's last update may take fewer than K; None: always K.
        name, **kwargs: Keras' (``loss_scale_factor``); Keras' clipping arguments and EMA are refused.
    """

    def __init__(
        self,
        learning_rate: Any = 1e-3,
        weight_decay: float = 0.0,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        max_grad_norm: float = 0.0,
        gradient_accumulation_steps: int = 1,
        micro_batches_per_epoch: Optional[int] = None,
        name: str = "adamw",
        **kwargs: Any,
    ) -> None:
        # Keras' own clipping and EMA run in the base class' apply path, which this optimizer replaces
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            value = kwargs.pop(key, None)
            if value is not None:
                raise ValueError(f"AdamW: {key}={value!r} is not supported; use max_grad_norm (global norm)")
        if kwargs.pop("use_ema", False):
            raise ValueError("AdamW: use_ema=True is not supported")
        kwargs.pop("ema_momentum", None)
        kwargs.pop("ema_overwrite_frequency", None)
        check_optimizer_settings(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            max_grad_norm=max_grad_norm,
            betas=(beta_1, beta_2),
            eps=epsilon,
            gradient_accumulation_steps=gradient_accumulation_steps,
        )
        if micro_batches_per_epoch is not None and not _is_int(micro_batches_per_epoch, 1):
            raise ValueError(
                f"AdamW: micro_batches_per_epoch={micro_batches_per_epoch!r} is invalid; expected an integer >= 1"
            )
        super().__init__(learning_rate=learning_rate, weight_decay=float(weight_decay), name=name, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.max_grad_norm = float(max_grad_norm)
        self.accumulation = int(gradient_accumulation_steps)
        self.micro_batches_per_epoch = None if micro_batches_per_epoch is None else int(micro_batches_per_epoch)
        # Created here, not in build(): scale_loss runs inside the first traced train_step, before apply builds.
        self._updates = self.add_variable((), dtype="int64", name="updates", aggregation="only_first_replica")
        self._loss_sum = self.add_variable((), dtype="float32", name="loss_sum", aggregation="only_first_replica")
        self._step_loss = self.add_variable((), dtype="float32", name="step_loss", aggregation="only_first_replica")
        self._grad_norm = self.add_variable((), dtype="float32", name="grad_norm", aggregation="only_first_replica")

    @property
    def _accumulates(self) -> bool:
        return self.accumulation > 1

    # ---------------------------------------------------------------------------------------------- counters
    @property
    def iterations(self):
        """Optimizer updates done (int64 variable): the step the learning-rate schedule and logs see."""
        return self._updates

    @property
    def micro_batches(self):
        """Micro-batches seen (int64 variable; Keras' ``_iterations``): ``epoch * M + micro_index`` of the next one."""
        return self._iterations

    @property
    def step_loss(self):
        """Mean micro-batch loss of the last update (float32 variable)."""
        return self._step_loss

    @property
    def grad_norm(self):
        """Global gradient norm of the last update before clipping (float32 variable)."""
        return self._grad_norm

    @property
    def position(self) -> order.Position:
        """The next micro-batch as ``(epoch, micro_index)`` (needs ``micro_batches_per_epoch``)."""
        m = self._require_epoch_length("position")
        epoch, index = divmod(int(self._iterations.numpy()), m)
        return order.Position(epoch, index)

    def set_position(self, position: order.Position) -> None:
        """Continue at ``position`` (a resumed run): sets :attr:`micro_batches` to ``epoch * M + micro_index``."""
        m = self._require_epoch_length("set_position")
        epoch, index = int(position[0]), int(position[1])
        if epoch < 0 or not 0 <= index <= m:
            raise ValueError(
                f"AdamW.set_position: {tuple(position)} is invalid; expected epoch >= 0, 0 <= index <= {m}"
            )
        self._iterations.assign(epoch * m + index)

    def _require_epoch_length(self, what: str) -> int:
        if self.micro_batches_per_epoch is None:
            raise ValueError(
                f"AdamW.{what} needs micro_batches_per_epoch (create_optimizer(..., micro_batches_per_epoch=M))"
            )
        return self.micro_batches_per_epoch

    def _step_shape(self, micro: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """For micro-batch number ``micro``: (micro-batches in its update as float32, whether it ends the update)."""
        k = tf.constant(self.accumulation, tf.int64)
        if self.micro_batches_per_epoch is None:
            return tf.cast(k, tf.float32), tf.equal((micro + 1) % k, 0)
        m = tf.constant(self.micro_batches_per_epoch, tf.int64)
        index = micro % m
        first = index - index % k
        size = tf.minimum(k, m - first)
        return tf.cast(size, tf.float32), tf.logical_or(tf.equal((index + 1) % k, 0), tf.equal(index + 1, m))

    # ------------------------------------------------------------------------------------------------- build
    def build(self, var_list: Sequence[Any]) -> None:
        if self.built:
            return
        super().build(var_list)
        self._exp_avgs, self._exp_avg_sqs = self.add_optimizer_variables(var_list, list(MOMENTS))
        if self._accumulates:
            self._accumulators = self.add_optimizer_variables(var_list, "accumulator")

    def _get_current_learning_rate(self):
        # the schedule sees updates, not micro-batches (Keras' _iterations)
        if isinstance(self._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            return self._learning_rate(self._updates)
        return super()._get_current_learning_rate()

    # --------------------------------------------------------------------------------------------- the step
    def scale_loss(self, loss):
        """Divide a micro-batch's loss by its update's micro-batch count and add the quotient to the step loss.

        Keras' ``train_step`` (and ``BertPreTrainedModel.train_step``) call this on each micro-batch's loss inside the
        gradient tape, before ``apply``; gradients are then those of ``loss / n``, summed over the update.
        """
        loss = super().scale_loss(loss)
        scaled = loss
        if self.accumulation > 1:
            size, _ = self._step_shape(self._iterations)
            scaled = loss / tf.cast(size, loss.dtype)
        total = tf.cast(scaled, tf.float32)
        context = _replica_context()
        if context is not None:  # each replica holds its weighted part of the global mean: their sum is the loss
            total = context.all_reduce(tf.distribute.ReduceOp.SUM, total)
        self._loss_sum.assign_add(total)
        return scaled

    def _backend_apply_gradients(self, grads, trainable_variables):
        # embedding lookups give IndexedSlices; torch's embedding gradients (and the recipe's norm) are dense
        grads = [tf.convert_to_tensor(g) for g in grads]
        if not self._accumulates:
            self._update(grads, trainable_variables)
            return
        accumulators = [self._accumulators[self._get_variable_index(v)] for v in trainable_variables]
        _, ends = self._step_shape(self._iterations)

        def update():
            self._update([g + a for g, a in zip(grads, accumulators)], trainable_variables)
            for a in accumulators:
                a.assign(tf.zeros_like(a))

        def accumulate():
            for g, a in zip(grads, accumulators):
                a.assign_add(g)

        tf.cond(ends, update, accumulate)

    def _update(self, grads: List[tf.Tensor], trainable_variables: List[Any]) -> None:
        context = _replica_context()
        if context is not None:
            # the global gradient first (a SUM of the replicas' weighted parts): the norm and clipping are global
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        # torch clip_grad_norm_: the norm of the per-tensor norms, in float32
        norm = tf.norm(tf.stack([tf.norm(tf.cast(g, tf.float32)) for g in grads]))
        self._grad_norm.assign(norm)
        if self.max_grad_norm > 0:
            coef = tf.minimum(tf.constant(self.max_grad_norm, tf.float32) / (norm + _CLIP_EPS), 1.0)
            grads = [g * tf.cast(coef, g.dtype) for g in grads]
        # the update's scalars, once for all variables: in float64 as torch computes them in Python, then rounded
        # to float32 as torch's kernels take them
        lr = tf.cast(self.learning_rate, tf.float64)
        t = tf.cast(self._updates + 1, tf.float64)
        scalars = (
            -lr / (1.0 - tf.pow(tf.constant(self.beta_1, tf.float64), t)),  # -step_size
            tf.sqrt(1.0 - tf.pow(tf.constant(self.beta_2, tf.float64), t)),  # sqrt(bias_correction2)
            1.0 - lr * self.weight_decay,  # decoupled decay factor
        )
        self._scalars = tuple(tf.cast(x, tf.float32) for x in scalars)
        if context is None:
            self._backend_update_step(grads, trainable_variables, self.learning_rate)
        else:  # Keras' _backend_update_step would all-reduce the gradients a second time
            pairs = [(g, v.value if isinstance(v, keras.Variable) else v) for g, v in zip(grads, trainable_variables)]
            tf.__internal__.distribute.interim.maybe_merge_call(
                self._distributed_tf_update_step, self._distribution_strategy, pairs, self.learning_rate
            )
        self._updates.assign_add(1)
        self._step_loss.assign(self._loss_sum)
        self._loss_sum.assign(0.0)

    def update_step(self, gradient, variable, learning_rate):
        """torch ``_single_tensor_adam`` (decoupled decay, lerp, addcmul, addcdiv) on one variable, with the update's
        scalars from :meth:`_update` (``learning_rate`` is already in them)."""
        dtype = variable.dtype
        neg_step_size, bias_correction2_sqrt, keep = (
            x if x.dtype == dtype else tf.cast(x, dtype) for x in self._scalars
        )
        g = tf.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        m, v = self._exp_avgs[index], self._exp_avg_sqs[index]
        if self.weight_decay and self._use_weight_decay(variable):
            self.assign(variable, variable * keep)
        self.assign(m, m + (1.0 - self.beta_1) * (g - m))
        self.assign(v, v * self.beta_2 + (1.0 - self.beta_2) * g * g)
        denom = tf.sqrt(v) / bias_correction2_sqrt + self.epsilon
        self.assign(variable, variable + neg_step_size * m / denom)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        for key in ("clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum", "ema_overwrite_frequency"):
            config.pop(key, None)
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "max_grad_norm": self.max_grad_norm,
                "gradient_accumulation_steps": self.accumulation,
                "micro_batches_per_epoch": self.micro_batches_per_epoch,
            }
        )
        return config


def _replica_context() -> Optional[Any]:
    """The replica context of a ``tf.distribute`` step over more than one replica, else None (one replica: the
    gradients and loss are the global ones already)."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def canonical_variables(model: BertPreTrainedModel) -> "OrderedDict[str, keras.Variable]":
    """Every trainable variable of ``model`` by canonical name (``bert_core.weights.stored_weights`` order).

    Raises:
        ValueError: the model has trainable variables the weight table does not name (an added layer).
    """
    variables = model.canonical_variables()
    named = {id(v) for v in variables.values()}
    stray = [v.path for v in model.trainable_variables if id(v) not in named]
    if stray:
        raise ValueError(
            f"{type(model).__name__} has trainable variables outside the canonical weight table: {stray}; "
            "the optimizer state is kept by canonical name, so every trainable tensor must have one"
        )
    trainable = {id(v) for v in model.trainable_variables}
    return OrderedDict((n, v) for n, v in variables.items() if id(v) in trainable)


def create_optimizer(
    model: BertPreTrainedModel,
    learning_rate: float,
    *,
    schedule: str = "linear",
    warmup_steps: int = 0,
    total_steps: int,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    betas: Tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    gradient_accumulation_steps: int = 1,
    micro_batches_per_epoch: Optional[int] = None,
) -> AdamW:
    """The recipe's optimizer for ``model.compile(optimizer=...)``, built on the model's trainable variables.

    Args:
        model: a ``bert_tf`` model (float32 variables; under ``mixed_bfloat16`` they stay float32).
        learning_rate: peak learning rate.
        schedule: "linear", "cosine" or "constant" (``bert_core.training.schedules``), with linear warmup.
        warmup_steps: optimizer updates of warmup.
        total_steps: optimizer updates of the whole run (the schedule's ``T``).
        weight_decay: decoupled decay of every tensor ``bert_core.training.decay.decays`` (not biases, LayerNorm).
        max_grad_norm: global-norm clipping threshold (0 turns clipping off).
        betas, eps: Adam's moment decays and denominator epsilon (added to ``sqrt(v_hat)``, as torch does).
        gradient_accumulation_steps: micro-batches per optimizer update (K).
        micro_batches_per_epoch: ``ceil(N / B)`` of the training data, so that an epoch's last update may have fewer
            than K micro-batches (the recipe); None: every update has K. Also gives :attr:`AdamW.position`.

    Returns:
        a built :class:`AdamW` with a :class:`RecipeSchedule`.
    """
    check_optimizer_settings(
        learning_rate=learning_rate,
        schedule=schedule,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        betas=betas,
        eps=eps,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
    variables = canonical_variables(model)
    mask = decay.decay_mask(variables)
    optimizer = AdamW(
        RecipeSchedule(learning_rate, schedule, warmup_steps, total_steps),
        weight_decay=weight_decay,
        beta_1=betas[0],
        beta_2=betas[1],
        epsilon=eps,
        max_grad_norm=max_grad_norm,
        gradient_accumulation_steps=gradient_accumulation_steps,
        micro_batches_per_epoch=micro_batches_per_epoch,
    )
    optimizer.exclude_from_weight_decay(var_list=[v for n, v in variables.items() if not mask[n]])
    optimizer.build(model.trainable_variables)
    return optimizer


# -------------------------------------------------------------------------------------- optimizer state (canonical)


def optimizer_state(model: BertPreTrainedModel, optimizer: AdamW) -> Dict[str, np.ndarray]:
    """AdamW's moments by canonical name and PyTorch layout, and the update count.

    Returns:
        ``{"exp_avg/<name>": float32, "exp_avg_sq/<name>": float32 (canonical shapes), "step": int64 ()}``.
    """
    table = model._weight_table()
    out: Dict[str, np.ndarray] = OrderedDict()
    for name, variable in canonical_variables(model).items():
        index = optimizer._get_variable_index(variable)
        for moment, slots in zip(MOMENTS, (optimizer._exp_avgs, optimizer._exp_avg_sqs)):
            array = np.asarray(slots[index].numpy(), np.float32)
            out[f"{moment}/{name}"] = np.ascontiguousarray(from_backend_array(array, table[name], "tf"))
    out[STEP_KEY] = np.asarray(int(optimizer.iterations.numpy()), np.int64)
    return out


def load_optimizer_state(model: BertPreTrainedModel, optimizer: AdamW, state: Mapping[str, np.ndarray]) -> None:
    """Set AdamW's moments and update count from :func:`optimizer_state`'s layout (any backend wrote it).

    The optimizer must be built (:func:`create_optimizer` builds it). The micro-batch position is separate
    (:meth:`AdamW.set_position`).

    Raises:
        ValueError: missing or unexpected keys, or arrays of the wrong shape (all named).
    """
    table = model._weight_table()
    variables = canonical_variables(model)
    expected = [f"{m}/{n}" for n in variables for m in MOMENTS] + [STEP_KEY]
    missing = [k for k in expected if k not in state]
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{m}/{n}: got {tuple(np.shape(state[f'{m}/{n}']))}, expected {table[n].shape}"
        for n in variables
        for m in MOMENTS
        if f"{m}/{n}" in state and tuple(np.shape(state[f"{m}/{n}"])) != tuple(table[n].shape)
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"cannot load optimizer state into {model.head_name}: missing {missing}, "
            f"unexpected {unexpected}, wrong shapes {wrong}"
        )
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    for name, variable in variables.items():
        index = optimizer._get_variable_index(variable)
        for moment, slots in zip(MOMENTS, (optimizer._exp_avgs, optimizer._exp_avg_sqs)):
            array = to_backend_array(np.asarray(state[f"{moment}/{name}"], np.float32), table[name], "tf")
            slots[index].assign(array)
    optimizer.iterations.assign(int(np.asarray(state[STEP_KEY])))


# --------------------------------------------------------------------------------------------------------- RNG


def _named_layers(layer: keras.layers.Layer, prefix: str = "") -> Iterator[Tuple[str, keras.layers.Layer]]:
    """Every sublayer with its path of explicit layer names (``bert/encoder/layer.0/attention/self/dropout``), as
    the variable paths have them; stable across processes, unlike Keras' auto-numbered seed-generator names."""
    for child in layer._layers:
        path = f"{prefix}{child.name}"
        yield path, child
        yield from _named_layers(child, path + "/")


def dropout_generators(model: keras.Model) -> "OrderedDict[str, Any]":
    """Every dropout ``SeedGenerator`` of ``model`` by its layer path (none when dropout is off)."""
    out: "OrderedDict[str, Any]" = OrderedDict()
    for path, layer in _named_layers(model):
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            if path in out:
                raise ValueError(
                    f"{type(model).__name__} has two layers at {path!r}; dropout RNG state needs unique names"
                )
            out[path] = generator
    return out


def seed_dropout(model: keras.Model, seed: int) -> None:
    """Seed every dropout layer from ``seed``: layer ``i`` gets the stateless key ``(h(seed, i), 0)`` with ``h`` a
    numpy ``SeedSequence`` draw, so layers draw independent masks and a run is reproducible."""
    for i, generator in enumerate(dropout_generators(model).values()):
        key = int(np.random.SeedSequence([int(seed), i]).generate_state(1, np.uint64)[0] >> np.uint64(1))
        generator.state.assign(np.asarray([key, 0], np.int64))


def rng_state(model: keras.Model) -> Dict[str, np.ndarray]:
    """Dropout RNG state: ``{layer path: int64 (2,)}``."""
    return OrderedDict((path, np.asarray(g.state.numpy(), np.int64)) for path, g in dropout_generators(model).items())


def load_rng_state(model: keras.Model, state: Mapping[str, np.ndarray]) -> None:
    """Restore :func:`rng_state`'s arrays (dropout continues as in the uninterrupted run).

    Raises:
        ValueError: the layers differ from the state's (names both).
    """
    generators = dropout_generators(model)
    if set(generators) != set(state):
        raise ValueError(
            f"RNG state does not match {type(model).__name__}'s dropout layers: missing "
            f"{sorted(set(generators) - set(state))}, unexpected {sorted(set(state) - set(generators))}"
        )
    for path, generator in generators.items():
        generator.state.assign(np.asarray(state[path], np.int64))


# ------------------------------------------------------------------------------------------------------ metric


@keras.saving.register_keras_serializable(package="bert_tf")
class MaskedAccuracy(keras.metrics.Metric):
    """Accuracy of ``argmax(y_pred, -1)`` over the labels that are not ``ignore_index`` (-100: padding, special
    tokens, unmasked MLM positions).

    ``update_state(y_true, y_pred)``: y_true int (...), y_pred float (..., classes). ``result()``: float32 scalar
    (0 before any counted label).
    """

    def __init__(self, name: str = "masked_accuracy", ignore_index: int = IGNORE_INDEX, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)
        self.correct = self.add_variable((), initializer="zeros", dtype="float32", name="correct")
        self.count = self.add_variable((), initializer="zeros", dtype="float32", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(y_true, tf.int64)
        predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int64)
        valid = tf.not_equal(labels, self.ignore_index)
        weight = tf.cast(valid, tf.float32)
        if sample_weight is not None:
            weight *= tf.cast(tf.broadcast_to(sample_weight, tf.shape(weight)), tf.float32)
        self.correct.assign_add(tf.reduce_sum(tf.cast(tf.equal(labels, predicted), tf.float32) * weight))
        self.count.assign_add(tf.reduce_sum(weight))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.count)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "ignore_index": self.ignore_index}


# ----------------------------------------------------------------------------------------------------- dataset


def _split_labels(batch: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Any]:
    """(inputs, labels): the label keys of ``batch`` as ``y`` (one array when only ``labels``, else a dict)."""
    x = {k: v for k, v in batch.items() if k not in LABEL_KEYS}
    y = {k: batch[k] for k in LABEL_KEYS if k in batch}
    if not y:
        return x, None
    return x, (y["labels"] if list(y) == ["labels"] else y)


def prepare_tf_dataset(
    features: Sequence[Mapping[str, Any]],
    collate: Callable[..., Dict[str, np.ndarray]],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 42,
    *,
    epochs: int = 1,
    start: Optional[order.Position] = None,
    lengths: Optional[Sequence[int]] = None,
    group_by_length: bool = False,
    replicas: Optional[Tuple[Sequence[int], int]] = None,
) -> "tf.data.Dataset":
    """``tf.data`` micro-batches of ``features`` in the recipe's order, collated by the task's numpy ``collate``.

    Epoch ``e`` takes ``bert_core.training.order.epoch_order(N, seed, e, shuffle, lengths, group_by_length, B)`` in
    slices of ``B = batch_size`` (the last may be smaller); micro-batch ``i`` is ``collate(rows, batch_rng(seed, e,
    i))``. The dataset runs from ``start`` (default the beginning) to the end of epoch ``epochs - 1``, so every epoch
    has its own order: fit it with ``model.fit(ds, epochs=epochs, steps_per_epoch=ceil(N / B))`` (Keras then keeps
    one iterator across epochs).

    Args:
        features: the task's feature dicts (``bert_core.tasks``).
        collate: ``collate(rows, rng) -> dict[str, np.ndarray]`` (model inputs and labels).
        batch_size: micro-batch size B.
        shuffle, seed: the order's shuffle and seed.
        epochs: number of epochs (the last is ``epochs - 1``).
        start: the first micro-batch ``(epoch, micro_index)`` (a resumed run).
        lengths, group_by_length: HF-style length grouping (``epoch_order``).
        replicas: ``(ids, W)`` for a ``tf.distribute`` input pipeline: ``batch_size`` is the global micro-batch, and
            each one is yielded as the shards of replicas ``ids`` in turn (``bert_tf.distributed.replica_batches``),
            as ``(x, y, loss weights)``; None: whole micro-batches.

    Returns:
        a dataset of ``(x, y)``: ``x`` the model inputs, ``y`` the labels (``labels`` alone as one tensor, several
        label keys as a dict; ``BertPreTrainedModel`` folds them back into its inputs), each shaped as ``collate``
        returns it (batch and sequence dimensions unknown).
    """
    n = len(features)
    micro = order.micro_batches_per_epoch(n, batch_size)
    start = order.Position(0, 0) if start is None else order.Position(*start)
    if not 0 <= start.micro_index <= micro or start.epoch < 0:
        raise ValueError(
            f"prepare_tf_dataset: start={tuple(start)} is invalid; expected epoch >= 0, 0 <= index <= {micro}"
        )

    def batch(epoch: int, index: int, indices: np.ndarray) -> Dict[str, np.ndarray]:
        return collate([features[int(i)] for i in indices], order.batch_rng(seed, epoch, index))

    def micro_batches() -> Iterator[Tuple[int, int, np.ndarray]]:
        epoch, index = start
        while epoch < epochs:
            indices = order.epoch_order(n, seed, epoch, shuffle, lengths, group_by_length, batch_size)
            for i in range(index, micro):
                yield epoch, i, indices[i * batch_size : (i + 1) * batch_size]
            epoch, index = epoch + 1, 0

    def shards(arrays: Dict[str, np.ndarray]) -> Iterator[Dict[str, np.ndarray]]:
        if replicas is None:
            yield arrays
        else:
            yield from distributed.replica_batches(arrays, replicas[0], replicas[1])

    def element(arrays: Dict[str, np.ndarray]) -> Tuple[Any, ...]:
        arrays, weights = distributed.split_weights(arrays)
        x, y = _split_labels(arrays)
        if replicas is not None:
            return x, y, weights
        return (x,) if y is None else (x, y)

    first = batch(0, 0, np.arange(min(batch_size, n)))
    dtypes = {k: np.asarray(v).dtype for k, v in first.items()}
    signature = _relaxed_specs(element(next(shards(first))))

    def generate():
        for epoch, index, indices in micro_batches():
            arrays = batch(epoch, index, indices)
            if set(arrays) != set(dtypes):
                raise ValueError(
                    f"collate returned keys {sorted(arrays)} for micro-batch {index} of epoch {epoch}; "
                    f"the first micro-batch had {sorted(dtypes)}"
                )
            for shard in shards({k: np.asarray(v, dtypes[k]) for k, v in arrays.items()}):
                yield element(shard)

    count = max(0, (epochs - start.epoch) * micro - start.micro_index) * (1 if replicas is None else len(replicas[0]))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(count)).prefetch(2)


# -------------------------------------------------------------------------------------------------- eval / bf16


class _Traced:
    """``fn`` over nested numpy batches as ``tf.function`` objects traced once per structure, dtypes and ranks: every batch
    size and padded length shares one trace (batches are padded to their own longest row)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self._functions: Dict[str, Any] = {}

    def __call__(self, *args: Any) -> Any:
        specs = _relaxed_specs(args)
        key = repr(specs)
        function = self._functions.get(key)
        if function is None:
            function = self._functions[key] = tf.function(self.fn, input_signature=list(specs))
        return function(*args)


def _relaxed_specs(tree: Any) -> Any:
    """Tensor specs of a nested structure of arrays with every dimension unknown."""
    return tf.nest.map_structure(lambda a: tf.TensorSpec((None,) * np.ndim(a), tf.as_dtype(np.asarray(a).dtype)), tree)


def eval_function(
    model: BertPreTrainedModel, outputs: Optional[Sequence[str]] = None
) -> Callable[[Mapping[str, np.ndarray]], Dict[str, np.ndarray]]:
    """``batch -> {"loss": float32 (), <head outputs>: float32 arrays}``: one traced forward in inference mode
    (``loss`` only when the batch has labels). What ``bert_core.training.loop.Evaluator`` calls.

    Args:
        model: a ``bert_tf`` head.
        outputs: the head outputs to return besides ``loss`` (a task's ``eval_outputs``: MLM keeps none of its
            vocabulary-sized logits); None: all of them.
    """

    def forward(inputs):
        output = model(inputs, training=False, return_dict=True)
        return {
            k: tf.cast(v, tf.float32)
            for k, v in output.items()
            if isinstance(v, tf.Tensor) and (k == "loss" or outputs is None or k in outputs)
        }

    traced = _Traced(forward)

    def predict(batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return OrderedDict((k, v.numpy()) for k, v in traced(dict(batch)).items())

    return predict


def use_bf16(model: keras.Model) -> None:
    """Put every layer of ``model`` under Keras' ``mixed_bfloat16`` policy (bfloat16 compute, float32 variables), as
    building it under ``keras.mixed_precision.set_global_policy("mixed_bfloat16")`` would."""
    policy = keras.DTypePolicy("mixed_bfloat16")
    for layer in model._flatten_layers(include_self=True):
        layer.dtype_policy = policy


# ------------------------------------------------------------------------------------------------- callbacks


class _StepWatch:
    """Tells a callback, after each micro-batch, whether the optimizer just finished an update."""

    def __init__(self) -> None:
        self.seen: Optional[int] = None

    def finished(self, optimizer: AdamW) -> bool:
        updates = int(optimizer.iterations.numpy())
        done = self.seen is not None and updates > self.seen
        self.seen = updates
        return done


def _recipe_optimizer(model: keras.Model, who: str) -> AdamW:
    """The model's :class:`AdamW`, which the callbacks read after every micro-batch."""
    optimizer = getattr(model, "optimizer", None)
    if not isinstance(optimizer, AdamW) or optimizer.micro_batches_per_epoch is None:
        raise ValueError(
            f"{who} needs the model compiled with bert_tf.training.create_optimizer(..., micro_batches_per_epoch=M); "
            f"got {type(optimizer).__name__}"
        )
    if getattr(model, "steps_per_execution", 1) != 1:
        raise ValueError(
            f"{who} sees every micro-batch: compile with steps_per_execution=1, not {model.steps_per_execution}"
        )
    return optimizer


class TrainLog(keras.callbacks.Callback):
    """Logs each optimizer update (not each micro-batch) to ``log.jsonl`` and the progress bar, and stops ``fit`` after
    ``total_steps`` updates.

    Every ``logging_steps`` updates (and at the last) it appends ``{"step", "epoch", "loss", "learning_rate",
    "grad_norm", "examples_per_second"}``: ``loss`` the mean of the update losses since the last record (each the
    mean of its micro-batch losses, :attr:`AdamW.step_loss`), ``learning_rate`` the rate that update used,
    ``grad_norm`` its norm before clipping.

    Args:
        log: a ``bert_core.training.loop.LogWriter`` (started by the caller).
        total_steps: optimizer updates of the run.
        num_features, batch_size, accumulation: N, B and K of the training data (examples per update, epochs).
        logging_steps: updates between records.
        loop_state: running sums to continue from (a resumed checkpoint's ``loop``).
    """

    def __init__(
        self,
        log: Any,
        total_steps: int,
        num_features: int,
        batch_size: int,
        accumulation: int = 1,
        logging_steps: int = 1,
        loop_state: Optional[Mapping[str, float]] = None,
    ) -> None:
        super().__init__()
        self.log, self.total_steps, self.logging_steps = log, int(total_steps), int(logging_steps)
        self.num_features, self.batch_size = int(num_features), int(batch_size)
        self.steps_per_epoch = order.steps_per_epoch(self.num_features, self.batch_size, accumulation)
        self.loop: Dict[str, float] = {"log_loss_sum": 0.0, "log_steps": 0, "total_loss_sum": 0.0}
        self.loop.update(loop_state or {})
        self._watch = _StepWatch()
        self._micro_seen: Optional[int] = None
        self._examples = 0
        self._since = 0.0

    def epoch_of(self, step: int) -> float:
        return round(step / self.steps_per_epoch, 4)

    def on_train_begin(self, logs=None) -> None:
        optimizer = _recipe_optimizer(self.model, "TrainLog")
        self._watch.finished(optimizer)
        self._micro_seen = int(optimizer.micro_batches.numpy())
        self._examples, self._since = 0, time.perf_counter()

    def _examples_since(self, optimizer: AdamW) -> int:
        """Examples in the micro-batches run since the last call (sizes from N and B: the last may be smaller)."""
        m = optimizer.micro_batches_per_epoch
        now = int(optimizer.micro_batches.numpy())
        count = sum(
            min(self.batch_size, self.num_features - (c % m) * self.batch_size) for c in range(self._micro_seen, now)
        )
        self._micro_seen = now
        return count

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        optimizer = self.model.optimizer
        self._examples += self._examples_since(optimizer)
        if not self._watch.finished(optimizer):
            return
        step = int(optimizer.iterations.numpy())
        loss, grad_norm = float(optimizer.step_loss.numpy()), float(optimizer.grad_norm.numpy())
        schedule = optimizer._learning_rate
        learning_rate = (
            schedule.value(step - 1) if isinstance(schedule, RecipeSchedule) else float(optimizer.learning_rate)
        )
        self.loop["log_loss_sum"] += loss
        self.loop["log_steps"] += 1
        self.loop["total_loss_sum"] += loss
        seconds = time.perf_counter() - self._since
        self.log.progress(1, loss=loss, lr=learning_rate, ex_s=self._examples / max(seconds, 1e-9))
        if step % self.logging_steps == 0 or step >= self.total_steps:
            self.log.log(
                {
                    "step": step,
                    "epoch": self.epoch_of(step),
                    "loss": self.loop["log_loss_sum"] / self.loop["log_steps"],
                    "learning_rate": learning_rate,
                    "grad_norm": grad_norm,
                    "examples_per_second": self._examples / seconds if seconds > 0 else float("inf"),
                }
            )
            self.loop["log_loss_sum"], self.loop["log_steps"] = 0.0, 0
            self._examples, self._since = 0, time.perf_counter()
        if step >= self.total_steps:
            self.model.stop_training = True


class EvalCallback(keras.callbacks.Callback):
    """Evaluates every ``eval_steps`` optimizer updates (0: at the end of each epoch of the data) with
    ``bert_core.training.loop.Evaluator`` and logs ``{"step", "epoch", "eval_loss", "eval_<metric>"...}``.

    Args:
        evaluator: ``() -> dict[str, float]`` (an ``Evaluator`` over :func:`eval_function`).
        eval_steps: updates between evaluations; 0: each epoch end.
        log: a ``LogWriter`` for the records, or None.
        train_log: the run's :class:`TrainLog` (its epoch count for the records), or None.
    """

    def __init__(
        self,
        evaluator: Callable[[], Dict[str, float]],
        eval_steps: int = 0,
        log: Any = None,
        train_log: Optional[TrainLog] = None,
    ) -> None:
        super().__init__()
        self.evaluator, self.eval_steps, self.log, self.train_log = evaluator, int(eval_steps), log, train_log
        self.metrics: Dict[str, float] = {}
        self.step: Optional[int] = None
        self._watch = _StepWatch()

    def on_train_begin(self, logs=None) -> None:
        self._watch.finished(_recipe_optimizer(self.model, "EvalCallback"))

    def evaluate(self, step: int) -> Dict[str, float]:
        """Evaluate now (after update ``step``), log and keep the metrics."""
        metrics = self.evaluator()
        if self.log is not None:
            epoch = self.train_log.epoch_of(step) if self.train_log is not None else None
            self.log.log({"step": step, "epoch": epoch, **metrics})
            self.log.write(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        self.metrics, self.step = metrics, step
        return metrics

    def metrics_at(self, step: int) -> Optional[Dict[str, float]]:
        """The metrics of the evaluation after update ``step``, if there was one."""
        return self.metrics if self.step == step else None

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        optimizer = self.model.optimizer
        if self._watch.finished(optimizer):
            step = int(optimizer.iterations.numpy())
            if _due(step, self.eval_steps, optimizer.position.micro_index == 0):
                self.evaluate(step)


class CheckpointCallback(keras.callbacks.Callback):
    """Saves ``checkpoints/step-N/`` every ``save_steps`` optimizer updates (0: at the end of each epoch) through
    ``bert_core.training.loop.Checkpointer``: canonical model (+ tokenizer), AdamW moments in canonical layout,
    dropout RNG state, data position, best metric, and the :class:`TrainLog` sums.

    Args:
        checkpointer: a ``Checkpointer`` (rotation and best tracking).
        save_steps: updates between checkpoints; 0: each epoch end.
        tokenizer: saved with each checkpoint when given.
        eval_callback: the run's :class:`EvalCallback` (its metrics pick the best), or None.
        train_log: the run's :class:`TrainLog` (its running sums), or None.
        writes: False on the workers other than rank 0 of a multi-worker run (they only track the best).
    """

    def __init__(
        self,
        checkpointer: Any,
        save_steps: int = 0,
        tokenizer: Any = None,
        eval_callback: Optional[EvalCallback] = None,
        train_log: Optional[TrainLog] = None,
        writes: bool = True,
    ) -> None:
        super().__init__()
        self.checkpointer, self.save_steps, self.tokenizer = checkpointer, int(save_steps), tokenizer
        self.writes = writes
        self.eval_callback, self.train_log = eval_callback, train_log
        self.saved_step: Optional[int] = None
        self._watch = _StepWatch()

    def on_train_begin(self, logs=None) -> None:
        self._watch.finished(_recipe_optimizer(self.model, "CheckpointCallback"))

    def save(self) -> Any:
        """Checkpoint the state after the last finished update; returns the directory."""
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy())
        metrics = self.eval_callback.metrics_at(step) if self.eval_callback is not None else None
        if not self.writes:  # a worker other than rank 0 keeps the best-checkpoint bookkeeping only
            self.checkpointer.track(step, metrics)
            self.saved_step = step
            return None
        path = self.checkpointer.save(
            step,
            optimizer.position,
            model_writer(self.model, self.tokenizer),
            optimizer_state(self.model, optimizer),
            rng_state(self.model),
            metrics,
            dict(self.train_log.loop) if self.train_log is not None else None,
        )
        self.saved_step = step
        return path

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        optimizer = self.model.optimizer
        if self._watch.finished(optimizer):
            if _due(int(optimizer.iterations.numpy()), self.save_steps, optimizer.position.micro_index == 0):
                self.save()


# ------------------------------------------------------------------------------------------- distributed step


def weighted_loss(model: BertPreTrainedModel, output: Mapping[str, Any], inputs: Mapping[str, Any], weights):
    """A replica's part of the global mean loss: each loss term of the head times its weight ``n_r / N``
    (``bert_tf.distributed.replica_batches``; ``weights`` maps the term's label field to float32 (B_r,), one value
    repeated). Pre-training's two terms (masked LM + next sentence) are weighted apart. Returns float32 ()."""
    loss = tf.cast(output["loss"], tf.float32)
    if model.losses:
        loss = loss + tf.add_n([tf.reduce_sum(extra) for extra in model.losses])

    def weight(term: str):
        return tf.cast(weights[term][0], tf.float32)

    if "next_sentence_label" in weights:
        nsp = _cross_entropy(output["seq_relationship_logits"], inputs["next_sentence_label"])
        rest = loss - nsp
        # weight 0 with a loss computed on a stand-in label: multiply_no_nan keeps an exact 0
        return tf.math.multiply_no_nan(rest, weight("labels")) + tf.math.multiply_no_nan(
            nsp, weight("next_sentence_label")
        )
    (term,) = weights
    return loss * weight(term)


def weighted_train_step(model: BertPreTrainedModel, data: Any) -> Dict[str, Any]:
    """Keras ``train_step`` of one replica under a ``tf.distribute`` strategy: ``data`` is ``(x, y, loss weights)``
    (:func:`prepare_tf_dataset` with ``replicas``); the loss is :func:`weighted_loss`, so the SUM of the replicas'
    gradients that :class:`AdamW` takes is the gradient of the global micro-batch's mean loss."""
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
        inputs = model._labels_into_inputs(x, y)
        output = model(inputs, training=True)
        loss = weighted_loss(model, output, inputs, weights)
        scaled = model.optimizer.scale_loss(loss)
    model._loss_tracker.update_state(loss)
    grads = tape.gradient(scaled, model.trainable_weights)
    model.optimizer.apply_gradients(zip(grads, model.trainable_weights))
    metrics = model.compute_metrics(x, y, model._prediction(output))
    # as (1,) tensors: Keras 3.15 reduces multi-worker step results with a MEAN over axis 0, which a scalar lacks
    # ("Invalid reduction dimension 0", keras-team/keras#20585)
    return {name: tf.reshape(value, [-1]) for name, value in metrics.items()}


# --------------------------------------------------------------------------------------------------- loop backend


class LoopBackend:
    """The recipe step by step for ``bert_core.training.loop.TrainLoop`` (and the cross-backend training parity):
    the same :class:`AdamW` and ``train_step`` as ``fit``, driven one optimizer step at a time.

    Args:
        model: a ``bert_tf`` head (trained in place).
        args: the run's ``TrainingArguments``.
        total_steps: optimizer steps of the run.
        num_features: N of the training data, so that an epoch's last step may have fewer micro-batches (None:
            every step gets exactly ``gradient_accumulation_steps``).
    """

    def __init__(self, model: BertPreTrainedModel, args: Any, total_steps: int, num_features: Optional[int] = None):
        self.model, self.args, self.total_steps = model, args, int(total_steps)
        micro = (
            None
            if num_features is None
            else order.micro_batches_per_epoch(num_features, args.per_device_train_batch_size)
        )
        if args.bf16:
            use_bf16(model)
        seed_dropout(model, args.seed)
        self.optimizer = recipe_optimizer(model, args, self.total_steps, micro)
        # batches are padded to their own longest row: XLA would compile once per shape
        model.compile(optimizer=self.optimizer, jit_compile=False)
        self._eval = eval_function(model)
        # Keras' train_step (what fit runs), traced once for all batch shapes; train_on_batch would retrace per shape
        self._train = _Traced(model.train_step)

    def train_step(self, micro_batches: Sequence[Mapping[str, np.ndarray]]) -> Tuple[float, float]:
        """One optimizer step over its micro-batches (collated numpy, labels included).

        Returns:
            ``(loss, grad_norm)``: the mean of the micro-batch losses and the global gradient norm before clipping.
        """
        before = int(self.optimizer.iterations.numpy())
        for batch in micro_batches:
            x, y = _split_labels(batch)
            self._train((x,) if y is None else (x, y))
        if int(self.optimizer.iterations.numpy()) != before + 1:
            raise ValueError(
                f"train_step got {len(micro_batches)} micro-batches, which do not make one optimizer step at micro-batch "
                f"{int(self.optimizer.micro_batches.numpy())} (gradient_accumulation_steps="
                f"{self.args.gradient_accumulation_steps})"
            )
        return float(self.optimizer.step_loss.numpy()), float(self.optimizer.grad_norm.numpy())

    def eval_step(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``{"loss": float32 (), <head outputs>: float32}`` in inference mode."""
        return self._eval(batch)

    def optimizer_state(self) -> Dict[str, np.ndarray]:
        return optimizer_state(self.model, self.optimizer)

    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None:
        load_optimizer_state(self.model, self.optimizer, state)

    def rng_state(self) -> Dict[str, np.ndarray]:
        return rng_state(self.model)

    def load_rng_state(self, state: Mapping[str, np.ndarray]) -> None:
        load_rng_state(self.model, state)

    def set_position(self, position: order.Position) -> None:
        """Where the next micro-batch is (a resumed run), so accumulation groups micro-batches as the data does."""
        self.optimizer.set_position(position)


def recipe_optimizer(
    model: BertPreTrainedModel, args: Any, total_steps: int, micro_batches_per_epoch: Optional[int]
) -> AdamW:
    """:func:`create_optimizer` with the settings of ``TrainingArguments`` ``args``."""
    return create_optimizer(
        model,
        args.learning_rate,
        schedule=args.lr_scheduler_type,
        warmup_steps=schedules.warmup_steps(args, total_steps),
        total_steps=total_steps,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        micro_batches_per_epoch=micro_batches_per_epoch,
    )


# -------------------------------------------------------------------------------------------------------- Trainer


class Trainer:
    """``bert train`` on Keras: ``compile`` with :func:`create_optimizer` and ``fit`` on :func:`prepare_tf_dataset`
    with :class:`TrainLog`, :class:`EvalCallback` and :class:`CheckpointCallback`.

    Args:
        model: a ``bert_tf`` head (trained in place; ``args.bf16`` puts it under ``mixed_bfloat16``).
        args: the run's ``TrainingArguments`` (validated here).
        task: a ``bert_core.tasks`` task object.
        train_features: ``task.features(..., training=True)``.
        eval_features, eval_examples: evaluation data, or None.
        tokenizer: saved with checkpoints and the final model when given.
    """

    def __init__(
        self,
        model: BertPreTrainedModel,
        args: Any,
        task: Any,
        train_features: Sequence[Mapping[str, Any]],
        eval_features: Optional[Sequence[Mapping[str, Any]]] = None,
        eval_examples: Optional[Sequence[Mapping[str, Any]]] = None,
        tokenizer: Any = None,
    ) -> None:
        self.args, self.task = args.validate(), task
        self.train_features = list(train_features)  # empty for an evaluation-only Trainer (bert evaluate)
        self.eval_features = list(eval_features) if eval_features else None
        self.eval_examples, self.tokenizer = eval_examples, tokenizer
        self.strategy = distributed.strategy_for(args) if self.train_features else None
        self.world = distributed.world_of(self.strategy)
        self.replicas = 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)
        # the data order (and the checkpoints' batch size) is one process' with the global micro-batch
        self.order_args = dataclasses.replace(
            args, per_device_train_batch_size=args.per_device_train_batch_size * self.replicas
        )
        self.model = model if self.strategy is None else distributed.in_scope(model, self.strategy)
        self.total_steps = order.total_steps(self.order_args, len(self.train_features))
        self._backend: Optional[LoopBackend] = None
        if args.bf16:
            use_bf16(self.model)

    @property
    def backend(self) -> LoopBackend:
        """The compiled model and optimizer (built on first use)."""
        if not self.train_features:
            raise ValueError("training needs at least one training feature; the train file gave none")
        if self._backend is None:
            with distributed.scope(self.strategy):
                self._backend = LoopBackend(self.model, self.order_args, self.total_steps, len(self.train_features))
            if self.strategy is not None:
                # Keras fit runs model.train_step on every replica
                self.model.train_step = functools.partial(weighted_train_step, self.model)
        return self._backend

    @property
    def micro_batches_per_epoch(self) -> int:
        return order.micro_batches_per_epoch(len(self.train_features), self.order_args.per_device_train_batch_size)

    @property
    def steps_per_epoch(self) -> int:
        args = self.order_args
        return order.steps_per_epoch(
            len(self.train_features), args.per_device_train_batch_size, args.gradient_accumulation_steps
        )

    def _evaluator(self) -> Any:
        if self.eval_features is None:
            raise ValueError("no eval data: pass eval_features (bert train/evaluate --eval FILE)")
        predict = eval_function(self.model, getattr(self.task, "eval_outputs", None))
        return Evaluator(self.task, self.eval_features, self.eval_examples, self.args, predict)

    def evaluate(self) -> Dict[str, float]:
        """Evaluate the model on the eval features. Returns ``eval_``-prefixed metrics."""
        return self._evaluator()()

    def _lengths(self) -> Optional[List[int]]:
        if not self.args.group_by_length:
            return None
        return [len(f["input_ids"]) for f in self.train_features]

    def _resume(self, checkpointer: Any) -> Tuple[order.Position, int, Dict[str, float]]:
        where = resolve_resume(self.args.resume_from)
        optimizer_state_, rng_state_, state = load_checkpoint(where)
        check_resume(state, self.order_args, where)
        load_model_weights(where, self.model)
        self.backend.load_optimizer_state(optimizer_state_)
        self.backend.load_rng_state(rng_state_)
        position = order.Position(state.epoch, state.micro_index)
        if position.micro_index >= self.micro_batches_per_epoch:  # saved after an epoch's last step
            position = order.Position(position.epoch + 1, 0)
        self.backend.set_position(position)
        checkpointer.restore(state)
        return position, state.global_step, dict(state.loop)

    def train(self) -> Dict[str, Any]:
        """Train with ``fit`` from the start or from ``args.resume_from``, then write the final outputs
        (``bert_core.training.loop.finish``). Returns the final metrics.

        Raises:
            KeyboardInterrupt: after Ctrl-C, once the checkpoint of the last finished step is saved.
        """
        args = self.args
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        metric_name, greater = best_metric_name(args, self.task)
        main = self.world.is_main  # the others write nothing (multi-worker)
        checkpointer = Checkpointer(args.output_dir, self.order_args, metric_name, greater, writes=main)
        backend = self.backend
        position, global_step, loop_state = order.Position(0, 0), 0, {}
        if args.resume_from:
            position, global_step, loop_state = self._resume(checkpointer)
        log = LogWriter(args.output_dir, args.quiet, enabled=main)
        log.start(self.total_steps, global_step, resume=bool(args.resume_from))
        train_log = TrainLog(
            log,
            self.total_steps,
            len(self.train_features),
            self.order_args.per_device_train_batch_size,
            args.gradient_accumulation_steps,
            args.logging_steps,
            loop_state,
        )
        callbacks: List[keras.callbacks.Callback] = [train_log]
        evaluator = None
        if self.eval_features is not None:
            evaluator = EvalCallback(self._evaluator(), args.eval_steps, log, train_log)
            callbacks.append(evaluator)
        saver = CheckpointCallback(checkpointer, args.save_steps, self.tokenizer, evaluator, train_log, writes=main)
        callbacks.append(saver)
        epochs = math.ceil(self.total_steps / self.steps_per_epoch)

        def dataset_for(replicas: Optional[Tuple[Sequence[int], int]] = None) -> "tf.data.Dataset":
            return prepare_tf_dataset(
                self.train_features,
                self.task.collate,
                self.order_args.per_device_train_batch_size,
                args.shuffle,
                args.seed,
                epochs=epochs,
                start=position,
                lengths=self._lengths(),
                group_by_length=args.group_by_length,
                replicas=replicas,
            )

        if self.strategy is None:
            dataset = dataset_for()
        else:  # each input pipeline (worker) yields the shards of its replicas in turn
            dataset = self.strategy.distribute_datasets_from_function(
                lambda context: dataset_for(distributed.pipeline_replicas(context))
            )
        started = time.perf_counter()
        optimizer = backend.optimizer
        try:
            with _Interrupt() as interrupt:

                def stop_on_interrupt(batch: int, logs: Any = None) -> None:
                    # Ctrl-C is deferred to the end of an optimizer step so the checkpoint is a consistent one
                    at_step_end = int(optimizer.micro_batches.numpy()) == self._micro_after(
                        int(optimizer.iterations.numpy())
                    )
                    if interrupt.requested and at_step_end:
                        raise KeyboardInterrupt

                callbacks.append(keras.callbacks.LambdaCallback(on_train_batch_end=stop_on_interrupt))
                if global_step < self.total_steps:
                    with distributed.fit_scope(self.model, self.strategy):
                        self.model.fit(
                            dataset,
                            epochs=epochs,
                            initial_epoch=position.epoch,
                            steps_per_epoch=self.micro_batches_per_epoch,
                            shuffle=False,  # the dataset is in the recipe's order already
                            callbacks=callbacks,
                            verbose=0,
                        )
        except KeyboardInterrupt:
            log.close()
            step = int(optimizer.iterations.numpy())
            mid_step = int(optimizer.micro_batches.numpy()) != self._micro_after(step)
            if mid_step:
                warnings.warn(
                    "interrupted inside a training step: no checkpoint saved (the step was incomplete)", stacklevel=2
                )
            elif saver.saved_step != step and step > global_step and self.world.size == 1:
                # (a multi-worker run cannot save alone: its other workers may be gone; its last checkpoint stands)
                path = saver.save()
                log.write(f"interrupted: checkpoint saved to {os.fspath(path)}")
            raise
        log.close()
        step = int(optimizer.iterations.numpy())
        last_eval: Dict[str, float] = {}
        if evaluator is not None:
            last_eval = evaluator.metrics_at(step) or evaluator.evaluate(step)
        done = max(step, 1)
        metrics: Dict[str, Any] = {
            "train_loss": train_log.loop["total_loss_sum"] / done,
            "train_runtime": time.perf_counter() - started,
            "global_step": step,
            "epoch": train_log.epoch_of(step),
            **last_eval,
        }
        if checkpointer.best_step is not None:
            metrics.update(best_metric=checkpointer.best_metric, best_step=checkpointer.best_step)
        if not main:
            return metrics
        return finish(args, self.model, metrics, self.tokenizer, metric_name)

    def _micro_after(self, step: int) -> int:
        """Micro-batches consumed when ``step`` optimizer steps are done (epoch-aligned)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        k = self.args.gradient_accumulation_steps
        return epoch * self.micro_batches_per_epoch + min(within * k, self.micro_batches_per_epoch)


def setup_distributed(args: Any) -> None:
    """``bert_tf.distributed.setup_distributed``: what ``--strategy`` needs before the model is loaded."""
    distributed.setup_distributed(args)
