"""``TrainingArguments``: the one serialisable object that states a training run (the ``bert train`` flags).

Names and defaults follow HF ``TrainingArguments`` where they exist there (``per_device_train_batch_size``,
``gradient_accumulation_steps``, ``warmup_ratio``...). The same object drives the torch, tf and flax trainers, is
written to ``args.json`` in the output directory, and its data-order fields are stored in every checkpoint so that a
resume with different ones is refused (:data:`RESUME_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from ..tasks import TASKS

SCHEDULES = ("linear", "cosine", "constant")

#: The tasks ``bert train`` knows (one ``bert_core.tasks.TASKS`` entry each).
TASK_NAMES = tuple(TASKS)

#: Fields a resumed run must share with the checkpoint: they decide the model, the data and its order, so a change
#: would silently train something else than the run being continued.
RESUME_FIELDS = (
    "task",
    "backend",
    "model",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
    "shuffle",
    "group_by_length",
    "max_length",
)

#: Largest seed: numpy's ``default_rng`` takes any non-negative int, but TF and JAX seeds are 32/64-bit.
MAX_SEED = 2**32 - 1


@dataclass
class TrainingArguments:
    """Everything a training or evaluation run needs besides the data and the model.

    Args:
        output_dir: where the final model, ``log.jsonl``, ``metrics.json``, ``args.json``, ``training.png`` and
            ``checkpoints/step-N/`` go.
        task: one of :data:`TASK_NAMES` (``None`` for the Python API with a task object).
        backend: "torch", "tf" or "flax" (aliases accepted, normalised by :meth:`validate`).
        model: the starting model, a local directory or a hub repo id.
        train_file / eval_file: the task's data files.
        num_train_epochs: epochs to run when ``max_steps <= 0`` (may be fractional).
        max_steps: optimizer steps to run; overrides ``num_train_epochs`` when > 0.
        per_device_train_batch_size: micro-batch size B; per_device_eval_batch_size: eval batch size.
        gradient_accumulation_steps: K micro-batches per optimizer step.
        learning_rate, lr_scheduler_type ("linear" | "cosine" | "constant"), warmup_ratio, warmup_steps: the schedule
            (see :mod:`bert_core.training.schedules`); ``warmup_steps > 0`` wins over ``warmup_ratio``.
        weight_decay: decoupled AdamW decay, not applied to biases and LayerNorm weights.
        max_grad_norm: clip the global gradient norm to this; 0 turns clipping off.
        adam_beta1, adam_beta2, adam_epsilon: AdamW hyperparameters (``torch.optim.AdamW`` semantics).
        bf16: bfloat16 mixed precision.
        seed: seeds data order, MLM masking and the backend's dropout RNG.
        shuffle: shuffle the training features each epoch; group_by_length: HF-style length-grouped megabatches.
        max_length, doc_stride, max_answer_length, n_best_size: tokenisation and QA decoding.
        label_all_tokens: token classification labels every word piece (else only the first, the rest -100).
        mlm_probability, whole_word_mask, line_by_line: MLM data (line per example, or blocks of ``max_length``).
        eval_steps, save_steps: evaluate / checkpoint every N optimizer steps; 0 means at the end of each epoch.
        logging_steps: log the training loss every N optimizer steps.
        save_total_limit: keep at most this many checkpoints (the best one is always kept); None keeps all.
        metric_for_best_model: eval metric (with or without ``eval_``) that picks the best checkpoint; None: the task's.
        greater_is_better: direction of that metric; None: the task's (``False`` for a loss).
        config_overrides: model config fields to set before building the head (``--set KEY=VALUE``).
        resume_from: a ``checkpoints/step-N`` directory, or an output directory (its latest checkpoint).
        quiet: no progress bar.
        strategy: scale-out engine (see :mod:`bert_core.training.distributed`): torch "ddp" | "fsdp" (under
            ``torchrun``), tf "mirrored" | "multi-worker" (``TF_CONFIG``), flax "mesh"; "none": one process.
        mesh: flax ``--mesh data=D[,model=M]`` over the visible devices (implies strategy "mesh").
        devices: how many devices to use (tf mirrored: logical CPU devices to create; flax: the first N devices);
            None: all visible.
        num_processes, process_id, coordinator: flax multi-process (``jax.distributed.initialize``): P processes,
            this one's index, and the coordinator's ``HOST:PORT``.
    """

    output_dir: str
    task: Optional[str] = None
    backend: Optional[str] = None
    model: Optional[str] = None
    train_file: Optional[str] = None
    eval_file: Optional[str] = None
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    bf16: bool = False
    seed: int = 42
    shuffle: bool = True
    group_by_length: bool = False
    max_length: int = 128
    doc_stride: int = 32
    max_answer_length: int = 30
    n_best_size: int = 20
    label_all_tokens: bool = False
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    line_by_line: bool = True
    eval_steps: int = 0
    save_steps: int = 0
    logging_steps: int = 1
    save_total_limit: Optional[int] = None
    metric_for_best_model: Optional[str] = None
    greater_is_better: Optional[bool] = None
    config_overrides: Dict[str, Any] = field(default_factory=dict)
    resume_from: Optional[str] = None
    quiet: bool = False
    strategy: str = "none"
    mesh: Optional[str] = None
    devices: Optional[int] = None
    num_processes: int = 1
    process_id: int = 0
    coordinator: Optional[str] = None

    # ------------------------------------------------------------------------------------------- validation

    def validate(self) -> "TrainingArguments":
        """Check every field; normalise ``backend`` aliases. Returns ``self``.

        Raises:
            ValueError: naming the first bad field, its value and the expected range.
        """
        from ..backends import BackendUnavailable, normalize_backend_name

        if not isinstance(self.output_dir, str) or not self.output_dir:
            _bad("output_dir", self.output_dir, "a non-empty path")
        if self.task is not None and self.task not in TASK_NAMES:
            _bad("task", self.task, f"one of {', '.join(TASK_NAMES)}")
        if self.backend is not None:
            try:
                self.backend = normalize_backend_name(self.backend)
            except BackendUnavailable:
                _bad("backend", self.backend, "one of torch, tf, flax")
        for name in ("model", "train_file", "eval_file", "resume_from", "metric_for_best_model"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                _bad(name, value, "a non-empty string or None")
        _check_number(self, "num_train_epochs", low=0.0, low_open=True)
        _check_int(self, "max_steps", low=-1)
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            _check_int(self, name, low=1)
        _check_number(self, "learning_rate", low=0.0)
        if self.lr_scheduler_type not in SCHEDULES:
            _bad("lr_scheduler_type", self.lr_scheduler_type, f"one of {', '.join(SCHEDULES)}")
        _check_number(self, "warmup_ratio", low=0.0, high=1.0)
        _check_int(self, "warmup_steps", low=0)
        _check_number(self, "weight_decay", low=0.0)
        _check_number(self, "max_grad_norm", low=0.0)
        _check_number(self, "adam_beta1", low=0.0, high=1.0, high_open=True)
        _check_number(self, "adam_beta2", low=0.0, high=1.0, high_open=True)
        _check_number(self, "adam_epsilon", low=0.0)
        for name in (
            "bf16",
            "shuffle",
            "group_by_length",
            "label_all_tokens",
            "whole_word_mask",
            "line_by_line",
            "quiet",
        ):
            if not isinstance(getattr(self, name), bool):
                _bad(name, getattr(self, name), "True or False")
        _check_int(self, "seed", low=0, high=MAX_SEED)
        for name in ("max_length", "doc_stride", "max_answer_length", "n_best_size", "logging_steps"):
            _check_int(self, name, low=1)
        _check_number(self, "mlm_probability", low=0.0, high=1.0, low_open=True, high_open=True)
        _check_int(self, "eval_steps", low=0)
        _check_int(self, "save_steps", low=0)
        if self.save_total_limit is not None:
            _check_int(self, "save_total_limit", low=1)
        if self.greater_is_better is not None and not isinstance(self.greater_is_better, bool):
            _bad("greater_is_better", self.greater_is_better, "True, False or None")
        if not isinstance(self.config_overrides, Mapping) or not all(isinstance(k, str) for k in self.config_overrides):
            _bad("config_overrides", self.config_overrides, "a dict of config field names to values")
        self._validate_scale_out()
        return self

    def _validate_scale_out(self) -> None:
        from .distributed import check_strategy, parse_mesh

        if self.mesh is not None:
            parse_mesh(self.mesh)
            if self.strategy == "none":
                self.strategy = "mesh"
        check_strategy(self.backend, self.strategy)
        if self.strategy == "mesh" and self.mesh is None:
            _bad("mesh", self.mesh, "a mesh such as data=2 with strategy mesh")
        if self.devices is not None:
            _check_int(self, "devices", low=1)
        _check_int(self, "num_processes", low=1)
        _check_int(self, "process_id", low=0, high=self.num_processes - 1)
        if self.num_processes > 1:
            if self.backend is not None and self.backend != "flax":
                _bad(
                    "num_processes",
                    self.num_processes,
                    "1 for torch (launch with torchrun) and tf (TF_CONFIG); several processes are flax's option",
                )
            if not isinstance(self.coordinator, str) or not re.fullmatch(r"[^\s:]+:\d{1,5}", self.coordinator):
                _bad("coordinator", self.coordinator, "HOST:PORT of process 0 when num_processes > 1")

    # ------------------------------------------------------------------------------------------ serialisation

    def to_dict(self) -> Dict[str, Any]:
        """All fields, JSON-ready (``config_overrides`` copied)."""
        out = dataclasses.asdict(self)
        out["config_overrides"] = dict(self.config_overrides)
        return out

    def to_json(self) -> str:
        """The fields as an indented JSON object (what ``args.json`` holds)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingArguments":
        """Build from a mapping of field names; unknown names are refused (naming them), then :meth:`validate`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training argument(s) {unknown}; expected names among {sorted(known)}")
        if "output_dir" not in data:
            raise ValueError("training arguments need 'output_dir'")
        return cls(**dict(data)).validate()

    @classmethod
    def from_json(cls, text: str) -> "TrainingArguments":
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"training arguments are not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"training arguments must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    def resume_fields(self) -> Dict[str, Any]:
        """The values of :data:`RESUME_FIELDS` (stored in ``trainer_state.json``)."""
        return {name: getattr(self, name) for name in RESUME_FIELDS}


def _bad(name: str, value: Any, expected: str) -> None:
    raise ValueError(f"training argument {name}={value!r} is invalid; expected {expected}")


def _check_int(args: TrainingArguments, name: str, low: int, high: Optional[int] = None) -> None:
    value = getattr(args, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        _bad(name, value, f"an integer >= {low}" + (f" and <= {high}" if high is not None else ""))


def _check_number(
    args: TrainingArguments,
    name: str,
    low: float,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    value = getattr(args, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high)
        )
    if not ok:
        lo = f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f" and {'<' if high_open else '<='} {high:g}"
        _bad(name, value, f"a finite number {lo}{hi}")


def check_optimizer_settings(
    *,
    learning_rate: Any = None,
    schedule: Optional[str] = None,
    warmup_steps: Optional[int] = None,
    total_steps: Optional[int] = None,
    weight_decay: float,
    max_grad_norm: float,
    betas: Tuple[float, float],
    eps: float,
    gradient_accumulation_steps: int,
) -> None:
    """Refuse ``create_optimizer`` settings outside their range, naming the argument, its value and the range: one
    wording for the three backends. Arguments left None are not checked (a Keras schedule object as learning rate).
    """

    def bad(name: str, value: Any, expected: str) -> None:
        raise ValueError(f"create_optimizer: {name}={value!r} is invalid; expected {expected}")

    def number(value: Any) -> bool:
        return (
            isinstance(value, (int, float, np.floating, np.integer))
            and not isinstance(value, bool)
            and math.isfinite(value)
        )

    def integer(value: Any, low: int) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low

    if isinstance(learning_rate, (int, float)) and (not number(learning_rate) or learning_rate < 0):
        bad("learning_rate", learning_rate, "a finite number >= 0")
    if schedule is not None and schedule not in SCHEDULES:
        bad("schedule", schedule, f"one of {', '.join(SCHEDULES)}")
    if total_steps is not None and not integer(total_steps, 1):
        bad("total_steps", total_steps, "an integer >= 1")
    if warmup_steps is not None and not integer(warmup_steps, 0):
        bad("warmup_steps", warmup_steps, "an integer >= 0")
    if not number(weight_decay) or weight_decay < 0:
        bad("weight_decay", weight_decay, "a finite number >= 0")
    if not number(max_grad_norm) or max_grad_norm < 0:
        bad("max_grad_norm", max_grad_norm, "a finite number >= 0 (0: no clipping)")
    if len(tuple(betas)) != 2 or not all(number(b) and 0 <= b < 1 for b in betas):
        bad("betas", betas, "two finite numbers >= 0 and < 1")
    if not number(eps) or eps < 0:
        bad("eps", eps, "a finite number >= 0")
    if not integer(gradient_accumulation_steps, 1):
        bad("gradient_accumulation_steps", gradient_accumulation_steps, "an integer >= 1")
