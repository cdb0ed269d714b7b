"""Learning-rate schedules with linear warmup, as HF ``transformers.get_scheduler`` defines them.

The learning rate of optimizer update ``u`` (0-based) is ``learning_rate * multiplier(u)``:

- ``linear``:   ``u / w`` during warmup, then ``max(0, (T - u) / (T - w))``;
- ``cosine``:   warmup, then ``max(0, 0.5 * (1 + cos(pi * (u - w) / (T - w))))``;
- ``constant``: warmup, then 1 (HF's ``constant_with_warmup``; with ``w = 0`` it is HF's ``constant``).

``T`` is the total number of optimizer steps, ``w`` the warmup steps (:func:`warmup_steps`). Denominators are
floored at 1 exactly as HF does, so ``w = 0`` or ``T = w`` never divide by zero. Every backend feeds these same
numbers to its optimizer (torch ``LambdaLR`` via :func:`lr_lambda`, an optax schedule, a Keras schedule).
"""

from __future__ import annotations

import math
from typing import Callable

from .args import SCHEDULES, TrainingArguments


def warmup_steps(args: TrainingArguments, total_steps: int) -> int:
    """``args.warmup_steps`` when > 0, else ``ceil(args.warmup_ratio * total_steps)`` (HF ``get_warmup_steps``)."""
    if args.warmup_steps > 0:
        return int(args.warmup_steps)
    return math.ceil(total_steps * args.warmup_ratio)


def multiplier(kind: str, step: int, num_warmup: int, total_steps: int) -> float:
    """The schedule factor of optimizer update ``step`` (0-based) for schedule ``kind``."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {kind!r}; expected one of {', '.join(SCHEDULES)}")
    if step < num_warmup:
        return float(step) / float(max(1, num_warmup))
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return max(0.0, float(total_steps - step) / float(max(1, total_steps - num_warmup)))
    progress = float(step - num_warmup) / float(max(1, total_steps - num_warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def lr_lambda(args: TrainingArguments, total_steps: int) -> Callable[[int], float]:
    """``step -> multiplier`` for ``args.lr_scheduler_type`` (what torch's ``LambdaLR`` takes)."""
    kind, num_warmup = args.lr_scheduler_type, warmup_steps(args, total_steps)
    if kind not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {kind!r}; expected one of {', '.join(SCHEDULES)}")
    return lambda step: multiplier(kind, int(step), num_warmup, total_steps)


def learning_rate(step: int, args: TrainingArguments, total_steps: int) -> float:
    """The learning rate of optimizer update ``step`` (0-based): ``args.learning_rate * multiplier``."""
    return args.learning_rate * multiplier(
        args.lr_scheduler_type, int(step), warmup_steps(args, total_steps), total_steps
    )
