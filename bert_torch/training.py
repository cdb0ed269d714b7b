"""PyTorch training: the optimizer recipe, the loop backend and the ``Trainer`` (``docs/training.md``).

The recipe is the one in ``bert_core.training``, stated once for all backends; this file only maps it onto torch:
``torch.optim.AdamW`` with two parameter groups (the decay mask of ``bert_core.training.decay`` over canonical
names), ``LambdaLR`` over ``bert_core.training.schedules``, clipping by global norm with ``clip_grad_norm_``,
accumulation by summing ``loss / K`` gradients, bf16 by ``torch.autocast``. Optimizer moments leave and enter as
canonical names and layout (``exp_avg/<name>``, ``exp_avg_sq/<name>``) so a checkpoint resumes in any backend.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from bert_core.training import decay, schedules
from bert_core.training.args import TrainingArguments, check_optimizer_settings
from bert_core.training.loop import TrainLoop
from bert_core.training.state import MOMENTS, STEP_KEY
from bert_core.weights import from_backend_array, to_backend_array

from .modeling import BertPreTrainedModel

#: ``--strategy`` values that run under torchrun (``bert_torch.distributed``).
DISTRIBUTED_STRATEGIES = ("ddp", "fsdp")

# ------------------------------------------------------------------------------------------------------- optimizer


def canonical_parameters(model: BertPreTrainedModel) -> "OrderedDict[str, nn.Parameter]":
    """Every trainable Parameter of ``model`` by canonical name (``bert_core.weights.stored_weights`` order).

    The tied MLM decoder is the word-embedding Parameter itself, so it appears once, as
    ``bert.embeddings.word_embeddings.weight``.

    Raises:
        ValueError: the model has trainable Parameters the weight table does not name (an added module).
    """
    params = OrderedDict((name, model._tensor(name)) for name in model._weight_table())
    named = {id(p) for p in params.values()}
    stray = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in named]
    if stray:
        raise ValueError(
            f"{type(model).__name__} has trainable parameters outside the canonical weight table: {stray}; "
            "the optimizer state is kept by canonical name, so every trainable tensor must have one"
        )
    return OrderedDict((n, p) for n, p in params.items() if p.requires_grad)


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
) -> Tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with the decay mask, and its learning-rate schedule.

    Two parameter groups, as HF ``Trainer`` builds them: every tensor that ``bert_core.training.decay.decays``
    (weights, embeddings) with ``weight_decay``, then biases and LayerNorm weights with 0. Each group also carries
    ``max_grad_norm`` and ``gradient_accumulation_steps``: in torch clipping and accumulation are steps of the loop
    (:func:`optimizer_step`, :class:`LoopBackend`), which read them from there.

    Args:
        model: a ``bert_torch`` model (float32 master weights).
        learning_rate: peak learning rate.
        schedule: "linear", "cosine" or "constant" (``bert_core.training.schedules``), with linear warmup.
        warmup_steps: optimizer steps of warmup.
        total_steps: optimizer steps of the whole run (the schedule's ``T``).
        weight_decay: decoupled decay of the decaying group.
        max_grad_norm: global-norm clipping threshold (0 turns clipping off).
        betas, eps: Adam's moment decays and denominator epsilon (added to ``sqrt(v_hat)``, as torch does).
        gradient_accumulation_steps: micro-batches per optimizer step.

    Returns:
        ``(optimizer, scheduler)``: ``torch.optim.AdamW`` and a ``LambdaLR`` whose multiplier at update ``u`` is
        ``schedules.multiplier(schedule, u, warmup_steps, total_steps)``; call ``scheduler.step()`` after each
        ``optimizer.step()``.
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
    params = canonical_parameters(model)
    mask = decay.decay_mask(params)
    extra = {"max_grad_norm": float(max_grad_norm), "gradient_accumulation_steps": int(gradient_accumulation_steps)}
    groups = [
        {"params": [p for n, p in params.items() if mask[n]], "weight_decay": float(weight_decay), **extra},
        {"params": [p for n, p in params.items() if not mask[n]], "weight_decay": 0.0, **extra},
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=float(learning_rate), betas=(float(betas[0]), float(betas[1])), eps=float(eps)
    )
    kind, num_warmup, total = schedule, int(warmup_steps), int(total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda u: schedules.multiplier(kind, u, num_warmup, total))
    return optimizer, scheduler


def _trainable(model: nn.Module) -> List[nn.Parameter]:
    # model.parameters() order and dedup (a tied decoder counts once): the norm sums in the order HF's Trainer does
    return [p for p in model.parameters() if p.requires_grad]


def optimizer_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> float:
    """One update from the accumulated gradients: clip, step, advance the schedule, zero the gradients.

    Clipping is by global norm over every trainable Parameter when the optimizer's ``max_grad_norm`` (set by
    :func:`create_optimizer`) is > 0.

    Returns:
        the global gradient norm before clipping (float).
    """
    max_norm = float(optimizer.param_groups[0].get("max_grad_norm", 0.0))
    # with no clipping the norm is still logged: an infinite threshold makes clip_grad_norm_ scale by exactly 1.0
    norm = torch.nn.utils.clip_grad_norm_(_trainable(model), max_norm if max_norm > 0 else math.inf)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


# ---------------------------------------------------------------------------------------------------- loop backend


def _to_device(batch: Mapping[str, Any], device: torch.device) -> Dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
            value = value.long() if not value.is_floating_point() and value.dtype != torch.bool else value
        out[key] = value.to(device) if isinstance(value, torch.Tensor) else value
    return out


class LoopBackend:
    """What ``bert_core.training.loop.TrainLoop`` drives: one torch model, its optimizer, schedule and RNG.

    Args:
        model: a ``bert_torch`` head (its weights are trained in place; float32 master weights).
        args: the run's ``TrainingArguments`` (optimizer, schedule, clipping, bf16, seed).
        total_steps: optimizer steps of the whole run (``bert_core.training.order.total_steps``).

    Dropout draws from torch's global generator, seeded here from ``args.seed`` (and saved by :meth:`rng_state`).
    """

    def __init__(self, model: BertPreTrainedModel, args: TrainingArguments, total_steps: int) -> None:
        self.model = model
        self.args = args
        self.total_steps = int(total_steps)
        self.optimizer, self.scheduler = create_optimizer(
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
        self._params = canonical_parameters(model)
        self._table = model._weight_table()
        torch.manual_seed(args.seed)

    # steps

    def _autocast(self):
        if not self.args.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.model.device.type, dtype=torch.bfloat16)

    @property
    def learning_rate(self) -> float:
        """The learning rate the next optimizer step uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    def train_step(self, micro_batches: Sequence[Mapping[str, np.ndarray]]) -> Tuple[float, float]:
        """One optimizer step over ``K = len(micro_batches)`` micro-batches (collated numpy, labels included).

        The step's loss is the mean of the micro-batches' mean losses; its gradient is accumulated as the sum of
        ``loss_i / K`` gradients, exactly as HF ``Trainer`` does for BERT heads.

        Returns:
            ``(loss, grad_norm)``: the step's loss and the global gradient norm before clipping, as floats.
        """
        k = len(micro_batches)
        if not 1 <= k <= self.args.gradient_accumulation_steps:
            raise ValueError(
                f"train_step got {k} micro-batches; expected 1 to gradient_accumulation_steps="
                f"{self.args.gradient_accumulation_steps}"
            )
        self.model.train()
        device = self.model.device
        total = torch.zeros((), dtype=torch.float32, device=device)
        for batch in micro_batches:
            with self._autocast():
                output = self.model(**_to_device(batch, device), return_dict=True)
            if output.loss is None:
                raise ValueError(f"{self.model.head_name} returned no loss: the training batch has no labels")
            loss = output.loss.float() / k
            loss.backward()
            total += loss.detach()
        grad_norm = optimizer_step(self.model, self.optimizer, self.scheduler)
        return float(total), grad_norm

    def eval_step(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Forward one batch in eval mode without gradients.

        Returns:
            ``{"loss": float32 (), <head outputs>: float32 arrays}`` (``logits``, ``start_logits``...; ``loss``
            only when the batch has labels).
        """
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._autocast():
                output = self.model(**_to_device(batch, self.model.device), return_dict=True)
        finally:
            self.model.train(was_training)
        return OrderedDict((k, v.detach().to("cpu", torch.float32).numpy()) for k, v in output.items())

    # optimizer state in canonical names and layout

    def _indexed(self) -> Dict[str, int]:
        """Canonical name -> index of its Parameter in ``optimizer.state_dict()``."""
        index: Dict[int, int] = {}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                index[id(p)] = len(index)
        return {name: index[id(p)] for name, p in self._params.items()}

    def optimizer_state(self) -> Dict[str, np.ndarray]:
        """AdamW's moments by canonical name and layout, and the update count.

        Returns:
            ``{"exp_avg/<name>": float32, "exp_avg_sq/<name>": float32 (canonical shapes), "step": int64 ()}``;
            zeros before the first step.
        """
        out: Dict[str, np.ndarray] = OrderedDict()
        step = 0
        for name, p in self._params.items():
            state = self.optimizer.state.get(p, {})
            for moment in MOMENTS:
                value = state.get(moment)
                array = (
                    np.zeros(tuple(p.shape), np.float32)
                    if value is None
                    else self._gather(value.detach()).to("cpu", torch.float32).numpy()
                )
                out[f"{moment}/{name}"] = from_backend_array(array, self._table[name], "torch").copy()
            if "step" in state:
                step = int(state["step"])
        out[STEP_KEY] = np.asarray(step, np.int64)
        return out

    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Set AdamW's moments and update count from :meth:`optimizer_state`'s layout (any backend wrote it).

        Raises:
            ValueError: missing or unexpected keys, or arrays of the wrong shape (all named).
        """
        expected = [f"{m}/{n}" for n in self._params for m in MOMENTS] + [STEP_KEY]
        missing = [k for k in expected if k not in state]
        unexpected = sorted(set(state) - set(expected))
        wrong = [
            f"{m}/{n}: got {tuple(np.shape(state[f'{m}/{n}']))}, expected {tuple(p.shape)}"
            for n, p in self._params.items()
            for m in MOMENTS
            if f"{m}/{n}" in state and tuple(np.shape(state[f"{m}/{n}"])) != tuple(p.shape)
        ]
        if missing or unexpected or wrong:
            raise ValueError(
                f"cannot load optimizer state into {self.model.head_name}: missing {missing}, "
                f"unexpected {unexpected}, wrong shapes {wrong}"
            )
        current = self.optimizer.state_dict()
        step = float(np.asarray(state[STEP_KEY]))
        indexed = self._indexed()
        loaded = {}
        for name in self._params:
            entry = {"step": torch.tensor(step, dtype=torch.float32)}
            for moment in MOMENTS:
                array = to_backend_array(np.asarray(state[f"{moment}/{name}"], np.float32), self._table[name], "torch")
                entry[moment] = self._place(self._params[name], torch.from_numpy(np.array(array, np.float32)))
            loaded[indexed[name]] = entry
        # load_state_dict moves each tensor to its Parameter's device and dtype, as torch resumes do
        self.optimizer.load_state_dict({"state": loaded, "param_groups": current["param_groups"]})
        self._set_schedule_position(int(step))

    def _set_schedule_position(self, step: int) -> None:
        # the schedule resumes at update `step`: LambdaLR's position is its last_epoch
        self.scheduler.last_epoch = int(step)
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas):
            group["lr"] = base * factor(int(step))
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    # layout hooks: a sharded backend (bert_torch.distributed) gathers and shards here; one process keeps tensors as is

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """The whole tensor behind ``tensor`` (a sharded backend gathers it, collectively)."""
        return tensor

    def _place(self, param: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (the whole value) laid out like ``param`` (a sharded backend keeps this worker's shard)."""
        return tensor

    # RNG

    def rng_state(self) -> Dict[str, np.ndarray]:
        """torch's generator states as uint8 arrays: ``torch_cpu`` and, when CUDA is in use, ``torch_cuda_<i>``."""
        out = {"torch_cpu": torch.get_rng_state().numpy().copy()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                out[f"torch_cuda_{i}"] = s.numpy().copy()
        return out

    def load_rng_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`rng_state`'s arrays (dropout continues as in the uninterrupted run)."""
        if "torch_cpu" not in state:
            raise ValueError(f"RNG state has no 'torch_cpu' entry; it has {sorted(state)}")
        torch.set_rng_state(torch.from_numpy(np.asarray(state["torch_cpu"], np.uint8).copy()))
        cuda = sorted(k for k in state if k.startswith("torch_cuda_"))
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([torch.from_numpy(np.asarray(state[k], np.uint8).copy()) for k in cuda])


# ------------------------------------------------------------------------------------------------------------ trainer


class Trainer:
    """Fine-tune or pre-train a ``bert_torch`` head with the recipe of ``docs/training.md``.

    ``bert_core.training.loop.TrainLoop`` over a :class:`LoopBackend`: batch order, logging (``log.jsonl``),
    evaluation, checkpoints and resume (``args.resume_from``), the final model and ``metrics.json`` in
    ``args.output_dir``.

    Args:
        model: the head to train (trained in place).
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
        if args.strategy in DISTRIBUTED_STRATEGIES:
            from .distributed import DistributedBackend, init_distributed

            # the loop reads the world (rank 0 writes; the data order is that of the global batch) as it starts
            world, device = init_distributed(args.strategy)
            self.loop = TrainLoop(
                SimpleNamespace(world=world), task, args, train_features, eval_features, eval_examples, tokenizer
            )
            self.backend = DistributedBackend(model, args, self.loop.total_steps, world, device)
        else:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise ValueError(
                    f"training argument strategy={args.strategy!r} is invalid under torchrun with WORLD_SIZE="
                    f"{os.environ['WORLD_SIZE']}: every process would train alone; expected one of "
                    f"{', '.join(DISTRIBUTED_STRATEGIES)}"
                )
            self.loop = TrainLoop(None, task, args, train_features, eval_features, eval_examples, tokenizer)
            self.backend = LoopBackend(model, args, self.loop.total_steps)
        self.loop.backend = self.backend
        self.model, self.args = model, args

    def train(self) -> Dict[str, Any]:
        """Train (or resume from ``args.resume_from``) and write the outputs. Returns the final metrics."""
        return self.loop.train()

    def evaluate(self) -> Dict[str, float]:
        """Metrics of the current model on the eval features (``eval_`` prefixed)."""
        return self.loop.evaluate()
