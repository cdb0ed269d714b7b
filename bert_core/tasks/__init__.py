"""Fine-tuning and pre-training tasks in numpy: readers, features, collation, post-processing and metrics.

``TASKS[name]`` gives a fresh task object (``text-classification``, ``token-classification``, ``question-answering``,
``multiple-choice``, ``mlm``, ``pretraining``); see :class:`bert_core.tasks.base.Task` for what each one does.
A task object keeps what it learns from the data and the tokenizer (the label set, the pad id, the MLM collator), so
each run takes its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Dict, Iterator, Type

from .base import DataError, Task, stack_outputs
from .mlm import MaskedLM
from .multiple_choice import MultipleChoice
from .pretraining import PreTraining
from .question_answering import QuestionAnswering
from .text_classification import TextClassification
from .token_classification import TokenClassification

_CLASSES: Dict[str, Type[Task]] = {
    cls.name: cls
    for cls in (TextClassification, TokenClassification, QuestionAnswering, MultipleChoice, MaskedLM, PreTraining)
}


class _Tasks(Mapping):
    """``TASKS[name]`` -> a new task object; ``list(TASKS)``, ``name in TASKS`` list the names."""

    def __getitem__(self, name: str) -> Task:
        return get_task(name)

    def __contains__(self, name: object) -> bool:
        return name in _CLASSES

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)

    def get(self, name: str, default=None):
        return get_task(name) if name in _CLASSES else default

    def __repr__(self) -> str:
        return f"TASKS({', '.join(_CLASSES)})"


TASKS = _Tasks()


def get_task(name: str) -> Task:
    """A new task object for ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    try:
        return _CLASSES[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(_CLASSES)}") from None


__all__ = [
    "TASKS",
    "DataError",
    "Task",
    "get_task",
    "stack_outputs",
    "TextClassification",
    "TokenClassification",
    "QuestionAnswering",
    "MultipleChoice",
    "MaskedLM",
    "PreTraining",
]
