"""Framework-free half of the training layer: arguments, schedules, decay mask, batch order, checkpoints, the loop.

Numpy only; each backend adds ``bert_<backend>/training.py`` (see docs/training.md).
"""

from .args import RESUME_FIELDS, SCHEDULES, TASK_NAMES, TrainingArguments
from .decay import decay_mask, decays
from .order import Position, batch_rng, epoch_order, iter_steps, steps_per_epoch, total_steps
from .schedules import learning_rate, lr_lambda, warmup_steps

__all__ = [
    "RESUME_FIELDS",
    "SCHEDULES",
    "TASK_NAMES",
    "TrainingArguments",
    "decay_mask",
    "decays",
    "Position",
    "batch_rng",
    "epoch_order",
    "iter_steps",
    "steps_per_epoch",
    "total_steps",
    "learning_rate",
    "lr_lambda",
    "warmup_steps",
]
