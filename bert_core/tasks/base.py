"""What every task shares: the ``DataError``, the task interface, argument defaults, collation and output stacking."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..data import pad_examples

IGNORE_INDEX = -100

#: the training arguments a task reads, with the spec's defaults (``bert_core.training.args.TrainingArguments``);
#: ``args`` may be any object with these attributes, or None
ARG_DEFAULTS: Dict[str, Any] = {
    "max_length": 128,
    "doc_stride": 128,
    "max_answer_length": 30,
    "n_best_size": 20,
    "label_all_tokens": False,
    "mlm_probability": 0.15,
    "whole_word_mask": False,
    "line_by_line": True,
    "seed": 42,
}


class DataError(ValueError):
    """A bad row of a data file: the message names the file, the place (``line 14`` or a JSON path) and the field.

    Attributes: ``path``, ``where``, ``field`` (None when the whole row is wrong), ``problem``.
    """

    def __init__(self, path, where: Optional[str], field: Optional[str], problem: str):
        self.path = os.fspath(path) if path is not None else None
        self.where = where
        self.field = field
        self.problem = problem
        place = " ".join(p for p in (self.path, where) if p)
        subject = f"field {field!r} " if field else ""
        super().__init__(f"{place}: {subject}{problem}" if place else f"{subject}{problem}")


def arg(args, name: str):
    """``args.name``, or the spec default when ``args`` is None or lacks it."""
    return getattr(args, name, ARG_DEFAULTS[name]) if args is not None else ARG_DEFAULTS[name]


def example_error(example: Mapping[str, Any], field: Optional[str], problem: str) -> DataError:
    """A DataError placed at the example's source (``_path``/``_where`` as the readers record them)."""
    return DataError(example.get("_path"), example.get("_where"), field, problem)


def model_inputs(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The rows without their bookkeeping keys (those starting with ``_``)."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]


def stack_outputs(batches: Sequence[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
    """The outputs of consecutive eval batches as one array per name, row ``i`` belonging to feature ``i``.

    Arrays are concatenated along axis 0; when their later dimensions differ (token-level logits of batches padded
    to different lengths) the shorter ones are padded with -100, as HF ``Trainer`` does. A scalar ``loss`` per batch
    becomes one value per row (the batch's loss repeated batch-size times), so that its mean is HF's ``eval_loss``.

    Args:
        batches: per batch, ``{name: array}`` (numpy or anything ``np.asarray`` takes), each with the batch size as
            its first dimension, except a scalar ``loss``.

    Returns:
        ``{name: np.ndarray}``; float outputs keep their dtype.
    """
    if not batches:
        return {}
    out: Dict[str, np.ndarray] = {}
    names = list(batches[0].keys())
    for b, batch in enumerate(batches):
        if list(batch.keys()) != names:
            raise ValueError(f"eval batch {b} has outputs {list(batch.keys())}, batch 0 has {names}")
    sizes = []
    for batch in batches:
        rows = [np.asarray(v).shape[0] for k, v in batch.items() if np.ndim(v) > 0]
        if not rows:
            raise ValueError("an eval batch has no output with a batch dimension to size its loss by")
        sizes.append(rows[0])
    for name in names:
        arrays = [np.asarray(batch[name]) for batch in batches]
        if name == "loss" and all(a.ndim == 0 for a in arrays):
            out[name] = np.concatenate([np.full(n, a, dtype=a.dtype) for a, n in zip(arrays, sizes)])
            continue
        tail = tuple(max(a.shape[d] for a in arrays) for d in range(1, arrays[0].ndim))
        padded = []
        for a in arrays:
            if a.shape[1:] != tail:
                full = np.full((a.shape[0],) + tail, IGNORE_INDEX, dtype=a.dtype)
                full[tuple(slice(0, s) for s in a.shape)] = a
                a = full
            padded.append(a)
        out[name] = np.concatenate(padded, axis=0)
    return out


def output(outputs: Mapping[str, np.ndarray], name: str, task: str, n_features: int) -> np.ndarray:
    """``outputs[name]`` with one row per feature, or a ValueError naming what is missing."""
    if name not in outputs:
        raise ValueError(f"{task} post-processing needs the model output {name!r}; got {sorted(outputs)}")
    value = np.asarray(outputs[name])
    if value.ndim == 0 or value.shape[0] != n_features:
        raise ValueError(
            f"{task}: output {name!r} has shape {value.shape} but there are {n_features} features (one row each)"
        )
    return value


class Task:
    """One task: its data files, features, collation, post-processing and metrics (numpy only).

    Attributes:
        name: the task name (``TASKS`` key, ``bert train TASK``).
        head: the model class that trains on it (``BertForSequenceClassification``...).
        default_metric: the metric ``metrics`` returns that picks the best checkpoint.
        greater_is_better: whether a larger ``default_metric`` is better.

    Methods (each task overrides what it needs):
        ``read(path) -> list[dict]``: the examples of a file; bad rows raise :class:`DataError`.
        ``label_config(examples) -> dict``: config updates for the head (``num_labels``, ``id2label``, ``label2id``,
        ``problem_type``) from the training examples; the task keeps the label set for its features.
        ``set_label_config(config)``: take the label set of a trained model (a config dict or object) instead.
        ``features(examples, tokenizer, args, training) -> list[dict]``: model inputs as int lists plus bookkeeping
        keys starting with ``_`` (``_example``: the example's index).
        ``collate(rows, rng=None) -> dict[str, np.ndarray]``: a padded batch of model inputs and labels.
        ``postprocess(outputs, features, examples, args)``: predictions per example from ``stack_outputs`` of the
        eval batches.
        ``metrics(predictions, examples) -> dict[str, float]``.
    """

    name: str = ""
    head: str = ""
    default_metric: str = "loss"
    greater_is_better: bool = True

    def __init__(self):
        self.pad_token_id: Optional[int] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, head={self.head!r})"

    # -- data ----------------------------------------------------------------------------------------------------------

    def read(self, path) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def label_config(self, examples: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        """Config updates for the head; tasks without labels have none."""
        return {}

    def set_label_config(self, config) -> None:
        """Take a trained model's label set; tasks without labels have none to take."""

    def features(self, examples, tokenizer, args, training: bool) -> List[Dict[str, Any]]:
        raise NotImplementedError

    # -- batches -------------------------------------------------------------------------------------------------------

    def _bind_tokenizer(self, tokenizer) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; features need one to pad batches")
        self.pad_token_id = int(tokenizer.pad_token_id)

    def _require_bound(self) -> int:
        if self.pad_token_id is None:
            raise RuntimeError(
                f"{self.name}: collate needs the tokenizer's settings; call features(examples, tokenizer, ...) first"
            )
        return self.pad_token_id

    def collate(self, rows: Sequence[Mapping[str, Any]], rng: Optional[np.random.Generator] = None):
        """Pad ``rows`` (from ``features``) into int64 ``(batch, seq_len)`` inputs with their labels; the
        bookkeeping keys are dropped. ``rng`` is unused by tasks without random masking."""
        return pad_examples(model_inputs(rows), self._require_bound())

    # -- evaluation ----------------------------------------------------------------------------------------------------

    def postprocess(self, outputs, features, examples, args):
        raise NotImplementedError

    def metrics(self, predictions, examples) -> Dict[str, float]:
        raise NotImplementedError


def check_tokenizer_fast(tokenizer, task: str) -> None:
    """Token classification and QA need word/offset alignment, which only the fast tokenizer tracks (as in HF)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{task} needs a fast tokenizer (BertTokenizerFast): it aligns labels/answers through word_ids and "
            "offsets, which the pure-Python BertTokenizer does not track"
        )


def group_by_example(features: Sequence[Mapping[str, Any]], n_examples: int) -> List[List[int]]:
    """Feature indices of each example (through ``_example``), in feature order."""
    groups: List[List[int]] = [[] for _ in range(n_examples)]
    for i, feature in enumerate(features):
        index = feature.get("_example")
        if index is None or not 0 <= index < n_examples:
            raise ValueError(f"feature {i} has _example={index!r}, outside the {n_examples} examples")
        groups[index].append(i)
    return groups
