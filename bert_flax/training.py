"""Flax NNX training (``docs/training.md``): the optimizer recipe, the jitted steps, the loop backend and ``Trainer``.

The recipe is stated once in ``bert_core.training``; this file maps it onto optax:

- ``optax.adamw`` is ``scale_by_adam`` (bias-corrected moments, ``eps`` added to ``sqrt(v_hat)``), then
  ``add_decayed_weights`` (``+ wd * p``, masked), then the learning rate: ``p -= lr * (m_hat / (sqrt(v_hat) + eps)
  + wd * p)``. ``torch.optim.AdamW`` does ``p *= 1 - lr * wd; p -= lr * m_hat / (sqrt(v_hat) + eps)``: the same terms,
  the decay of the pre-update ``p`` in both. Besides the rounding order, optax computes the bias corrections
  ``1 - b ** t`` in float32, where 0.999 is 0.99900001: ``v_hat`` is up to 1.3e-5 off torch's float64 correction, the
  Adam step up to 6.4e-6 relative (measured), under one float32 ulp of a weight ~1 for any ``lr <= 1e-2``.
- The decay mask is ``bert_core.training.decay.decays`` of each parameter's canonical name (weight table paths).
- The learning rate of update ``u`` is ``learning_rate * bert_core.training.schedules.multiplier(u)``, the number
  torch's ``LambdaLR`` uses, tabulated once in float32 and indexed by optax's update count.
- ``optax.clip_by_global_norm`` scales by ``max_norm / norm`` when ``norm >= max_norm``; torch's ``clip_grad_norm_``
  by ``min(1, max_norm / (norm + 1e-6))``. Clipped gradients differ by the factor ``norm / (norm + 1e-6)``: a
  relative ``1e-6 / norm`` (1e-6 at norm 1, below float32 resolution above norm ~10).
- ``optax.MultiSteps`` averages the micro-batch gradients (a running mean), which is the gradient of the step's loss
  (the mean of the micro-batch mean losses). An epoch's last step may have ``k < K`` micro-batches: :func:`train_step`
  then feeds ``MultiSteps`` its own running mean ``K - k`` more times, which leaves the mean unchanged bit for bit
  (``acc + (acc - acc) / (n + 1) == acc``), so the update is the mean of the ``k`` real micro-gradients. (torch sums
  ``loss_i / k`` gradients instead: the same mean up to rounding.)
- bf16: the model computes in bfloat16 (``dtype``) over float32 parameters (``param_dtype``), so gradients, moments and
  updates stay float32 (master weights).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bert_core.data import pad_to_bucket
from bert_core.training import decay, schedules
from bert_core.training.args import TrainingArguments, check_optimizer_settings
from bert_core.training.loop import TrainLoop
from bert_core.training.state import MOMENTS, STEP_KEY
from bert_core.weights import BACKEND_LEAVES, WeightSpec, backend_path, from_backend_array, to_backend_array

from .modeling import BertPreTrainedModel, _check_inputs, _check_labels, canonical_grads

__all__ = [
    "create_optimizer",
    "learning_rate_schedule",
    "train_step",
    "eval_step",
    "check_batch",
    "canonical_grads",
    "LoopBackend",
    "Trainer",
]

_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "head_mask", "inputs_embeds")
_LABELS = ("labels", "next_sentence_label", "start_positions", "end_positions")


def check_batch(model: BertPreTrainedModel, batch: Mapping[str, Any]) -> None:
    """Every input and label check of ``model`` on a host (numpy) batch, with the values.

    Inside ``jit`` the arrays are tracers, so only shapes can be checked there; an out-of-range id or label would turn
    the loss (and then the weights) into NaN or read -1 as the last class. :func:`train_step` runs this first.
    """
    inputs = {k: batch.get(k) for k in _INPUTS}
    if inputs["input_ids"] is not None and np.ndim(inputs["input_ids"]) == 3:  # multiple choice: (b, c, s)
        inputs = {
            k: v if v is None or k == "head_mask" else np.reshape(v, (-1,) + np.shape(v)[2:]) for k, v in inputs.items()
        }
    _check_inputs(model.config, **inputs, encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None)
    given = [k for k in _LABELS if batch.get(k) is not None]
    reference = batch.get("input_ids") if batch.get("input_ids") is not None else batch.get("inputs_embeds")
    # the label checks need only the logits' leading dims, which the inputs give: (b, s) tokens, (b, c) choices
    leading = jax.ShapeDtypeStruct(tuple(np.shape(reference)[:2]), np.float32)
    for name in given:
        _check_labels(model.config, model.head_name, name, batch[name], leading)


# ------------------------------------------------------------------------------------------------------- optimizer


def _names(path: Sequence[Any]) -> Tuple[str, ...]:
    """An nnx state path or a jax key path as strings: ``('bert', 'encoder', 'layer', '0', ..., 'kernel')``."""
    keys = (getattr(k, "key", getattr(k, "idx", k)) for k in path if not isinstance(k, jax.tree_util.GetAttrKey))
    return tuple(str(k) for k in keys)


def _param_specs(model: BertPreTrainedModel) -> Dict[Tuple[str, ...], WeightSpec]:
    """The model's ``nnx.Param`` paths -> their canonical weight spec (``bert_core.weights`` table, flax leaves).

    Raises:
        ValueError: a parameter the table does not name (or a table entry with no parameter): the optimizer state is
            kept by canonical name, so every trainable tensor must have one.
    """
    specs = {backend_path(spec, "flax")[0]: spec for spec in model._weight_table().values()}
    paths = {_names(path) for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    if paths != set(specs):
        stray = sorted(".".join(p) for p in paths - set(specs))
        absent = sorted(specs[p].name for p in set(specs) - paths)
        raise ValueError(
            f"{type(model).__name__} parameters and its canonical weight table differ: parameters outside the table "
            f"{stray}, table entries without a parameter {absent}"
        )
    return specs


#: flax leaf -> canonical (torch) leaf, from the weight table's per-backend leaves (kernel, embedding, scale -> weight)
_CANONICAL_LEAF = {leaves["flax"][0]: leaves["torch"][0] for leaves in BACKEND_LEAVES.values()}


def _decay_mask(params: Any) -> Any:
    """``bert_core.training.decay.decays`` of each leaf's canonical name, over a params-shaped tree (``nnx.State`` of
    Variables or of arrays). A module-level function of the paths alone, so equal settings give an equal (cached)
    transformation and :func:`train_step` compiles once per recipe, not once per optimizer."""

    def decays(path, _):
        *module, leaf = _names(path)
        return decay.decays(".".join(module + [_CANONICAL_LEAF[leaf]]))

    return jax.tree_util.tree_map_with_path(decays, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def learning_rate_schedule(
    learning_rate: float, schedule: str, warmup_steps: int, total_steps: int
) -> Callable[[jax.Array], jax.Array]:
    """An optax schedule: update count ``u`` (0-based) -> float32 ``learning_rate * schedules.multiplier(u)``.

    The numbers are ``bert_core.training.schedules``' own (float64, then float32), tabulated for ``u = 0..T``; counts
    past ``T`` read the value at ``T``. The table is ``4 * (T + 1)`` bytes.

    Raises:
        ValueError: an unknown ``schedule``, ``total_steps < 1`` or ``warmup_steps < 0`` (named with the value).
    """
    for name, value, low in (("total_steps", total_steps, 1), ("warmup_steps", warmup_steps, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"learning_rate_schedule: {name}={value!r} is invalid; expected an integer >= {low}")
    table = np.asarray(
        [learning_rate * schedules.multiplier(schedule, u, warmup_steps, total_steps) for u in range(total_steps + 1)],
        np.float32,
    )

    def schedule_fn(count: jax.Array) -> jax.Array:
        return jnp.asarray(table)[jnp.clip(count, 0, total_steps)]

    return schedule_fn


class GradNormState(NamedTuple):
    """State of :func:`_record_grad_norm`: float32 () global L2 norm of the last gradient it passed on."""

    grad_norm: jax.Array


def _record_grad_norm() -> optax.GradientTransformation:
    """Identity on the updates that keeps their global norm in its state: first in the chain, the pre-clip norm.

    Inside ``MultiSteps`` the inner state is only committed when an update is emitted, so after a step it holds the
    norm of the averaged gradient, the ``grad_norm`` the recipe logs.
    """

    def init_fn(params):
        return GradNormState(jnp.zeros((), jnp.float32))

    def update_fn(updates, state, params=None):
        return updates, GradNormState(optax.tree.norm(updates).astype(jnp.float32))

    return optax.GradientTransformation(init_fn, update_fn)


@functools.lru_cache(maxsize=16)
def _transformation(
    learning_rate: float,
    schedule: str,
    warmup_steps: int,
    total_steps: int,
    weight_decay: float,
    max_grad_norm: float,
    betas: Tuple[float, float],
    eps: float,
    accumulation: int,
) -> optax.GradientTransformation:
    """The recipe's optax transformation; one object per settings (the jitted steps key their cache on it)."""
    tx = optax.chain(
        _record_grad_norm(),
        *([optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm > 0 else []),
        optax.adamw(
            learning_rate_schedule(learning_rate, schedule, warmup_steps, total_steps),
            b1=betas[0],
            b2=betas[1],
            eps=eps,
            weight_decay=weight_decay,
            mask=_decay_mask,
        ),
    )
    return optax.MultiSteps(tx, every_k_schedule=accumulation) if accumulation > 1 else tx


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
) -> nnx.Optimizer:
    """AdamW as ``torch.optim.AdamW``, with the decay mask, schedule, clipping and accumulation of the recipe.

    The transformation is ``optax.chain(record grad norm, clip_by_global_norm(max_grad_norm) when > 0,
    optax.adamw(schedule, b1, b2, eps, weight_decay, mask))``, wrapped in ``optax.MultiSteps`` when
    ``gradient_accumulation_steps > 1`` (each ``optimizer.update`` is then one micro-batch; every K-th applies the
    mean gradient). Use it with :func:`train_step`, which runs a whole step.

    Args:
        model: a ``bert_flax`` model with float32 parameters (``param_dtype``; the master weights).
        learning_rate: peak learning rate.
        schedule: "linear", "cosine" or "constant" (``bert_core.training.schedules``), with linear warmup.
        warmup_steps: optimizer steps of warmup.
        total_steps: optimizer steps of the whole run (the schedule's ``T``).
        weight_decay: decoupled decay of every tensor ``bert_core.training.decay.decays`` (not biases, LayerNorm).
        max_grad_norm: global-norm clipping threshold (0 turns clipping off).
        betas, eps: Adam's moment decays and denominator epsilon (added to ``sqrt(v_hat)``, as torch does).
        gradient_accumulation_steps: micro-batches per optimizer step.

    Returns:
        an ``nnx.Optimizer`` over the model's ``nnx.Param`` variables; ``optimizer.gradient_accumulation_steps`` is K.

    Raises:
        ValueError: a setting out of range (named with its value and the range), or a parameter with no canonical name.
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
    _param_specs(model)  # every parameter has a canonical name (the mask and the saved state go by it)
    k = int(gradient_accumulation_steps)
    tx = _transformation(
        float(learning_rate),
        schedule,
        int(warmup_steps),
        int(total_steps),
        float(weight_decay),
        float(max_grad_norm),
        (float(betas[0]), float(betas[1])),
        float(eps),
        k,
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    optimizer.gradient_accumulation_steps = k
    return optimizer


# ----------------------------------------------------------------------------------------------------------- steps


def micro_update(model: BertPreTrainedModel, optimizer: nnx.Optimizer, batch: Mapping[str, Any]) -> jax.Array:
    """Forward + backward of one micro-batch (dropout on) and ``optimizer.update``; to be jitted (``_micro_step``,
    or ``bert_flax.distributed`` with mesh shardings). Returns the float32 () mean loss."""

    def loss_fn(m):
        return m(**batch, deterministic=False, return_dict=True).loss.astype(jnp.float32)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def repeat_mean(model: BertPreTrainedModel, optimizer: nnx.Optimizer) -> None:
    """Feed ``MultiSteps`` its running mean as the next micro-gradient (a short group's padding); to be jitted."""
    # acc + (acc - acc) / (n + 1) == acc: only the count moves
    params = nnx.state(model, nnx.Param)
    mean = nnx.as_pure(optimizer.opt_state.acc_grads)
    grads = jax.tree.map(lambda p, m: p.replace(m), params, mean, is_leaf=lambda x: isinstance(x, nnx.Variable))
    optimizer.update(model, grads)


_micro_step = nnx.jit(micro_update)
_repeat_mean = nnx.jit(repeat_mean)


def _find_states(tree: Any, kind: type) -> list:
    """Every ``kind`` (an optax state NamedTuple) inside an optimizer state tree."""
    return [x for x in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, kind)) if isinstance(x, kind)]


def train_step(
    model: BertPreTrainedModel,
    optimizer: nnx.Optimizer,
    batch: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]],
    *,
    check: bool = True,
) -> Tuple[jax.Array, jax.Array]:
    """One optimizer step, updating ``model`` and ``optimizer`` in place.

    ``batch`` is one batch of forward keyword arguments (labels included) or the step's list of micro-batches
    (1 to ``optimizer.gradient_accumulation_steps`` of them; fewer than K on an epoch's short last step). Each
    micro-batch runs forward and backward under ``nnx.jit`` with dropout on (``deterministic=False``, drawing from the
    model's ``nnx.Rngs``); one program per micro-batch shape. ``check``: run :func:`check_batch` on every host batch
    first (a bad id or label raises instead of silently turning the weights into NaN).

    Returns:
        ``(loss, grad_norm)``: float32 () jax arrays, the mean of the micro-batch mean losses and the global norm of
        the averaged gradient before clipping. Optimizers not from :func:`create_optimizer` give NaN ``grad_norm``.
    """
    micro = [batch] if isinstance(batch, Mapping) else list(batch)
    if check:
        for b in micro:
            check_batch(model, b)
    return run_step(model, optimizer, micro, _micro_step, _repeat_mean)


def run_step(
    model: BertPreTrainedModel,
    optimizer: nnx.Optimizer,
    micro: Sequence[Any],
    micro_step: Callable[..., jax.Array],
    repeat: Callable[..., None],
) -> Tuple[jax.Array, jax.Array]:
    """:func:`train_step`'s body over already checked (and placed) micro-batches, with the jitted ``micro_step``
    (:func:`micro_update`) and ``repeat`` (:func:`repeat_mean`) to use. Returns ``(loss, grad_norm)``."""
    k = getattr(optimizer, "gradient_accumulation_steps", 1)
    if not 1 <= len(micro) <= k:
        raise ValueError(f"train_step got {len(micro)} micro-batches; expected 1 to gradient_accumulation_steps={k}")
    losses = [micro_step(model, optimizer, b) for b in micro]
    for _ in range(k - len(micro)):
        repeat(model, optimizer)
    loss = losses[0] if len(losses) == 1 else jnp.mean(jnp.stack(losses))
    recorded = _find_states(optimizer.opt_state, GradNormState)
    return loss, recorded[0].grad_norm[...] if recorded else jnp.asarray(jnp.nan, jnp.float32)


@nnx.jit
def _forward(model: BertPreTrainedModel, batch: Mapping[str, Any]):
    return model(**batch, deterministic=True, return_dict=True)


def eval_step_outputs(model: BertPreTrainedModel, batch: Mapping[str, Any]) -> Dict[str, jax.Array]:
    """The forward of :func:`eval_step` (dropout off) as ``{name: array}``, tuple outputs left out; to be jitted."""
    output = model(**batch, deterministic=True, return_dict=True)
    return {k: v for k, v in output.items() if isinstance(v, jax.Array)}


def eval_step(model: BertPreTrainedModel, batch: Mapping[str, Any], *, check: bool = True) -> Dict[str, np.ndarray]:
    """Forward one batch with dropout off under ``nnx.jit`` (``check``: :func:`check_batch` on the host first).

    Returns:
        ``{"loss": float32 (), <head outputs>: float32 arrays}`` as numpy (``logits``, ``start_logits``,
        ``prediction_logits``...; ``loss`` only when the batch has labels; tuple outputs such as hidden states left
        out).
    """
    if check:
        check_batch(model, batch)
    output = _forward(model, batch)
    return OrderedDict((k, np.asarray(v, np.float32)) for k, v in output.items() if isinstance(v, jax.Array))


# ---------------------------------------------------------------------------------------------------- loop backend


def _training_dtypes(model: BertPreTrainedModel, bf16: bool) -> bool:
    """Whether ``model`` has the recipe's dtypes: float32 parameters (master weights), computing in bfloat16 when
    ``bf16`` else float32."""
    want = jnp.bfloat16 if bf16 else jnp.float32
    return jnp.dtype(model.param_dtype) == jnp.float32 and jnp.dtype(model.dtype) == jnp.dtype(want)


def _check_dtypes(model: BertPreTrainedModel, bf16: bool) -> None:
    want = jnp.bfloat16 if bf16 else jnp.float32
    if not _training_dtypes(model, bf16):
        raise ValueError(
            f"training with bf16={bf16} needs a model with dtype={jnp.dtype(want).name} and param_dtype=float32 "
            f"(float32 master weights), got dtype={jnp.dtype(model.dtype).name}, "
            f"param_dtype={jnp.dtype(model.param_dtype).name}: build it with from_pretrained(..., "
            f"dtype=jnp.{jnp.dtype(want).name}, param_dtype=jnp.float32) or use Trainer, which converts"
        )


def _rng_streams(model: BertPreTrainedModel) -> "OrderedDict[str, nnx.Variable]":
    """The model's RNG variables (each dropout stream's key and count) by dotted path."""
    return OrderedDict((".".join(_names(p)), v) for p, v in nnx.to_flat_state(nnx.state(model, nnx.RngState)))


#: batches are padded to a multiple of this many tokens (bert_core.data.pad_to_bucket): one jit program per bucket
#: instead of one per batch length; the added positions are padding, so losses and outputs are unchanged
_BUCKET = 32


class LoopBackend:
    """What ``bert_core.training.loop.TrainLoop`` drives: one flax model, its optimizer and its dropout RNG.

    Args:
        model: a ``bert_flax`` head, trained in place: float32 parameters, computing in bfloat16 when ``args.bf16``
            (else float32); :class:`Trainer` converts a model that differs.
        args: the run's ``TrainingArguments`` (optimizer, schedule, clipping, accumulation, bf16, seed).
        total_steps: optimizer steps of the whole run (``bert_core.training.order.total_steps``).

    Every dropout stream of the model is reseeded from ``args.seed`` here (and saved by :meth:`rng_state`).
    """

    def __init__(self, model: BertPreTrainedModel, args: TrainingArguments, total_steps: int) -> None:
        _check_dtypes(model, args.bf16)
        self.model = model
        self.args = args
        self.total_steps = int(total_steps)
        self.optimizer = create_optimizer(
            model,
            args.learning_rate,
            schedule=args.lr_scheduler_type,
            warmup_steps=schedules.warmup_steps(args, self.total_steps),
            total_steps=self.total_steps,
            weight_decay=args.weight_decay,
            max_grad_norm=args.max_grad_norm,
            betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
        )
        self._specs = _param_specs(model)
        tags = {stream.key.tag for _, stream in nnx.graph.iter_graph(model) if isinstance(stream, nnx.RngStream)}
        nnx.reseed(model, **{tag: args.seed for tag in tags})

    # steps

    def train_step(self, micro_batches: Sequence[Mapping[str, np.ndarray]]) -> Tuple[float, float]:
        """One optimizer step over the step's micro-batches (collated numpy, labels included; see :func:`train_step`).

        Returns:
            ``(loss, grad_norm)``: the mean of the micro-batch mean losses and the global gradient norm before
            clipping, as floats.
        """
        micro = [pad_to_bucket(b, _BUCKET)[0] for b in micro_batches]
        loss, grad_norm = train_step(self.model, self.optimizer, micro)
        return float(loss), float(grad_norm)

    def eval_step(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """:func:`eval_step`: ``{"loss", <head outputs>}`` as float32 numpy, dropout off (token outputs cut back to
        the batch's own length)."""
        padded, length = pad_to_bucket(batch, _BUCKET)
        outputs = eval_step(self.model, padded)
        seq = np.shape(padded["input_ids"])[-1]
        if seq == length:
            return outputs
        # token-level outputs ((batch, seq, ...): logits of token classification, QA, MLM) lose the added positions
        return {k: v[:, :length] if np.ndim(v) >= 2 and np.shape(v)[1] == seq else v for k, v in outputs.items()}

    # optimizer state in canonical names and layout

    def _host(self, array: jax.Array) -> np.ndarray:
        """``array`` as numpy (the mesh backend gathers arrays spread over processes: a collective)."""
        return np.asarray(array)

    def _adam(self) -> optax.ScaleByAdamState:
        (adam,) = _find_states(self.optimizer.opt_state, optax.ScaleByAdamState)
        return adam

    def optimizer_state(self) -> Dict[str, np.ndarray]:
        """AdamW's moments by canonical name and layout, and the update count.

        Returns:
            ``{"exp_avg/<name>": float32, "exp_avg_sq/<name>": float32 (canonical shapes), "step": int64 ()}``
            (names of ``bert_core.weights.stored_weights``; zeros before the first step).
        """
        adam = self._adam()
        out: Dict[str, np.ndarray] = OrderedDict()
        for moment, tree in zip(MOMENTS, (adam.mu, adam.nu)):
            for path, var in nnx.to_flat_state(tree):
                spec = self._specs[_names(path)]
                out[f"{moment}/{spec.name}"] = from_backend_array(self._host(var[...]).astype(np.float32), spec, "flax")
        out[STEP_KEY] = np.asarray(int(self._host(adam.count[...])), np.int64)
        return out

    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Set AdamW's moments and update count from :meth:`optimizer_state`'s layout (any backend wrote it).

        Every counter of the chain (Adam's bias correction, the schedule, ``MultiSteps``' step) is set to ``step``,
        and a partly accumulated gradient is dropped: checkpoints are taken between steps.

        Raises:
            ValueError: missing or unexpected keys, or arrays of the wrong shape (all named).
        """
        specs = {spec.name: spec for spec in self._specs.values()}
        expected = [f"{m}/{n}" for n in specs for m in MOMENTS] + [STEP_KEY]
        missing = [k for k in expected if k not in state]
        unexpected = sorted(set(state) - set(expected))
        wrong = [
            f"{m}/{n}: got {tuple(np.shape(state[f'{m}/{n}']))}, expected {spec.shape}"
            for n, spec in specs.items()
            for m in MOMENTS
            if f"{m}/{n}" in state and tuple(np.shape(state[f"{m}/{n}"])) != tuple(spec.shape)
        ]
        if missing or unexpected or wrong:
            raise ValueError(
                f"cannot load optimizer state into {self.model.head_name}: missing {missing}, "
                f"unexpected {unexpected}, wrong shapes {wrong}"
            )
        step = int(np.asarray(state[STEP_KEY]))
        adam = self._adam()
        for moment, tree in zip(MOMENTS, (adam.mu, adam.nu)):
            for path, var in nnx.to_flat_state(tree):
                spec = self._specs[_names(path)]
                array = to_backend_array(np.asarray(state[f"{moment}/{spec.name}"], np.float32), spec, "flax")
                var.set_value(jnp.asarray(array, var.get_value().dtype))
        counters = _find_states(self.optimizer.opt_state, optax.ScaleByAdamState) + _find_states(
            self.optimizer.opt_state, optax.ScaleByScheduleState
        )
        for counter in counters:
            counter.count.set_value(jnp.asarray(step, counter.count.get_value().dtype))
        opt_state = self.optimizer.opt_state
        if isinstance(opt_state, optax.MultiStepsState):
            opt_state.gradient_step.set_value(jnp.asarray(step, opt_state.gradient_step.get_value().dtype))
            opt_state.mini_step.set_value(jnp.zeros_like(opt_state.mini_step.get_value()))
            for _, var in nnx.to_flat_state(opt_state.acc_grads):
                var.set_value(jnp.zeros_like(var.get_value()))
        # nnx counts optimizer.update calls: K per step (a short step is padded to K)
        k = self.optimizer.gradient_accumulation_steps
        self.optimizer.step.set_value(jnp.asarray(step * k, self.optimizer.step.get_value().dtype))

    # RNG

    def rng_state(self) -> Dict[str, np.ndarray]:
        """Every dropout stream's key (uint32 key data) and count (uint32), by dotted path (``....dropout.rngs.key``)."""
        out: Dict[str, np.ndarray] = OrderedDict()
        for name, var in _rng_streams(self.model).items():
            value = var.get_value()
            if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
                value = jax.random.key_data(value)
            out[name] = self._host(value)
        return out

    def load_rng_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`rng_state`'s arrays (dropout continues as in the uninterrupted run).

        Raises:
            ValueError: the names differ from this model's streams (all named), e.g. another backend's RNG state.
        """
        streams = _rng_streams(self.model)
        missing = [k for k in streams if k not in state]
        unexpected = sorted(set(state) - set(streams))
        if missing or unexpected:
            raise ValueError(
                f"cannot load RNG state into flax {self.model.head_name}: missing {missing}, unexpected {unexpected}"
            )
        current = self.rng_state()
        wrong = [
            f"{k}: got {np.shape(state[k])}, expected {v.shape}"
            for k, v in current.items()
            if np.size(state[k]) != v.size
        ]
        if wrong:
            raise ValueError(f"cannot load RNG state into flax {self.model.head_name}: wrong shapes {wrong}")
        for name, var in streams.items():
            value = var.get_value()
            # a 0-d count may come back as (1,) from a file: the size was checked, the shape is ours
            array = np.reshape(np.asarray(state[name]), current[name].shape)
            if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
                data = jnp.asarray(array.astype(np.uint32))
                var.set_value(jax.random.wrap_key_data(data, impl=jax.random.key_impl(value)))
            else:
                var.set_value(jnp.asarray(array, value.dtype))


# ---------------------------------------------------------------------------------------------------------- trainer


def setup_distributed(args: TrainingArguments) -> None:
    """``bert_flax.distributed.setup``: prepare JAX for ``--mesh`` / several processes before any device is used
    (``bert train`` calls it before loading the model)."""
    from .distributed import setup

    setup(args)


def _with_training_dtypes(model: BertPreTrainedModel, bf16: bool) -> BertPreTrainedModel:
    """``model`` itself when its dtypes fit the recipe, else the same head rebuilt with them (weights copied)."""
    if _training_dtypes(model, bf16):
        return model
    cls = type(model)
    kwargs = cls._init_kwargs(model._add_pooling_layer)
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    copy = cls(model.config, **kwargs, seed=None, dtype=dtype, param_dtype=jnp.float32)
    copy.load_canonical_weights(model.canonical_weights())
    return copy


class Trainer:
    """Fine-tune or pre-train a ``bert_flax`` head with the recipe of ``docs/training.md``.

    ``bert_core.training.loop.TrainLoop`` over a :class:`LoopBackend`: batch order, logging (``log.jsonl``),
    evaluation, checkpoints and resume (``args.resume_from``), the final model and ``metrics.json`` in
    ``args.output_dir``.

    Args:
        model: the head to train, in place when it has float32 parameters and computes in bfloat16 if ``args.bf16``
            (float32 otherwise); a model with other dtypes is rebuilt with them (weights copied): read
            ``trainer.model`` for the trained one.
        args: ``bert_core.training.TrainingArguments``.
        task: a ``bert_core.tasks`` task object (``TASKS[name]``).
        train_features: ``task.features(examples, tokenizer, args, training=True)``.
        eval_features, eval_examples: evaluation data (``training=False`` features and the examples read), or None.
        tokenizer: saved with every checkpoint and with the final model when given.
    """

    def __init__(
        self,
        model: BertPreTrainedModel,
        args: TrainingArguments,
        task: Any,
        train_features: Sequence[Mapping[str, Any]],
        eval_features: Optional[Sequence[Mapping[str, Any]]] = None,
        eval_examples: Optional[Sequence[Mapping[str, Any]]] = None,
        tokenizer: Any = None,
    ) -> None:
        # the loop checks the arguments and the data and counts the steps; the backend's schedule needs that count
        self.model, self.args = _with_training_dtypes(model, args.bf16), args
        if args.validate().strategy == "mesh":
            from .distributed import MeshBackend, make_mesh

            setup_distributed(args)
            mesh = make_mesh(args.mesh, args.devices)
            # the loop needs the data-parallel size to count the steps; the backend needs the count
            placement = MeshBackend.placement(mesh)
        else:
            placement = None
        self.loop = TrainLoop(placement, task, args, train_features, eval_features, eval_examples, tokenizer)
        if placement is not None:
            self.backend: LoopBackend = MeshBackend(self.model, args, self.loop.total_steps, mesh)
        else:
            self.backend = LoopBackend(self.model, args, self.loop.total_steps)
        self.loop.backend = self.backend

    def train(self) -> Dict[str, Any]:
        """Train (or resume from ``args.resume_from``) and write the outputs. Returns the final metrics."""
        return self.loop.train()

    def evaluate(self) -> Dict[str, float]:
        """Metrics of the current model on the eval features (``eval_`` prefixed)."""
        return self.loop.evaluate()
