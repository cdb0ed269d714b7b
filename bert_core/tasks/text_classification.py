"""Text classification (single-label, multi-label) and regression: ``BertForSequenceClassification``
(HF ``run_glue`` / ``run_classification``)."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import metrics as M
from .base import DataError, Task, arg, example_error, output
from .readers import empty_error, field, table_rows, text_field

# label kinds, from a cell/value
CLASS, INT, FLOAT, MULTI = "class name", "int", "float", "list"
PROBLEMS = {
    CLASS: "single_label_classification",
    INT: "single_label_classification",
    FLOAT: "regression",
    MULTI: "multi_label_classification",
}


def _parse_label(value: Any, from_text: bool, path, where: str):
    """(kind, value) of one label: a class name (str), an int class, a float (regression) or a list (multi-label)."""
    if from_text:  # CSV/TSV cells are strings: read numbers and JSON lists back
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise DataError(path, where, "label", f"{text!r:.60} is not a JSON list of labels") from None
        else:
            try:
                return INT, int(text)
            except ValueError:
                pass
            try:
                number = float(text)
            except ValueError:
                if not text:
                    raise DataError(path, where, "label", "is empty") from None
                return CLASS, text
            if not np.isfinite(number):
                raise DataError(path, where, "label", f"is {text}; a regression label must be finite")
            return FLOAT, number
    if isinstance(value, bool):
        return CLASS, "true" if value else "false"
    if isinstance(value, int):
        return INT, value
    if isinstance(value, float):
        if not np.isfinite(value):
            raise DataError(path, where, "label", f"is {value}; a regression label must be finite")
        return FLOAT, value
    if isinstance(value, str):
        if not value:
            raise DataError(path, where, "label", "is empty")
        return CLASS, value
    if isinstance(value, list):
        names = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise DataError(
                    path, where, "label", f"is a list with {item!r:.40}; multi-label lists hold class names or ints"
                )
            names.append(str(item))
        return MULTI, sorted(set(names))
    raise DataError(
        path, where, "label", f"is {type(value).__name__}; use a class name, an int, a float or a list of classes"
    )


def _sort_key(value):
    # ints in numeric order, names in string order (HF sorts the unique labels)
    return (0, value, "") if isinstance(value, int) else (1, 0, str(value))


class TextClassification(Task):
    """Sentence (pair) classification from CSV, TSV or JSON lines with ``text``, optional ``text_pair`` and
    ``label``: a class name or int (single-label: ``id2label`` in the saved config), a float (regression,
    ``num_labels=1``) or a list of class names (multi-label).

    Examples: ``{"text", "text_pair" (or None), "label", "_path", "_where"}`` (``label``: str/int, float, or a sorted
    list of str). Features: ``input_ids``, ``token_type_ids``, ``attention_mask`` (int lists), ``labels`` (int class
    id, float, or a multi-hot list of float), ``_example``. Predictions: per example, the class name, the float, or
    the list of class names (sigmoid > 0.5).
    Metrics: ``accuracy``, ``f1`` (macro), ``mcc``; regression ``pearson``, ``spearman``, ``mse``; multi-label
    ``accuracy`` (all labels right), ``f1`` (macro over labels).
    """

    name = "text-classification"
    head = "BertForSequenceClassification"

    def __init__(self):
        super().__init__()
        self.labels: Optional[List[str]] = None
        self.problem_type: Optional[str] = None

    @property
    def default_metric(self) -> str:
        return "pearson" if self.problem_type == "regression" else "accuracy"

    def read(self, path) -> List[Dict[str, Any]]:
        examples = []
        first_of_kind: Dict[str, str] = {}
        for fmt, where, row in table_rows(path, self.name):
            from_text = fmt != "jsonl"
            text = text_field(path, where, row, "text")
            pair = text_field(path, where, row, "text_pair", required=False)
            if from_text and pair == "":
                pair = None  # an empty cell: no pair
            kind, label = _parse_label(field(path, where, row, "label"), from_text, path, where)
            if kind not in first_of_kind:
                for other, other_where in first_of_kind.items():
                    if not _compatible(other, kind):
                        raise DataError(
                            path, where, "label", f"is a {kind} but {other_where}'s is a {other}: mixed label kinds"
                        )
                first_of_kind[kind] = where
            examples.append(
                {"text": text, "text_pair": pair, "label": label, "_kind": kind, "_path": str(path), "_where": where}
            )
        if not examples:
            raise empty_error(path)
        kinds = {e["_kind"] for e in examples}
        for e in examples:
            kind = e.pop("_kind")
            if FLOAT in kinds:
                e["label"] = float(e["label"])
            elif CLASS in kinds and kind == INT:
                e["label"] = str(e["label"])
        return examples

    # -- labels --------------------------------------------------------------------------------------------------------

    def label_config(self, examples: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        if not examples:
            raise ValueError("label_config needs the training examples; got none")
        first = examples[0]["label"]
        if isinstance(first, float):
            self.labels, self.problem_type = ["LABEL_0"], "regression"
        else:
            multi = isinstance(first, list)
            values = {v for e in examples for v in (e["label"] if multi else [e["label"]])}
            self.labels = [str(v) for v in sorted(values, key=_sort_key)]
            self.problem_type = "multi_label_classification" if multi else "single_label_classification"
            if not multi and len(self.labels) < 2:
                raise example_error(
                    examples[0], "label", f"has only one class ({self.labels[0]!r}) in the training data; need 2+"
                )
        return self._config()

    def _config(self) -> Dict[str, Any]:
        id2label = {i: name for i, name in enumerate(self.labels)}
        return {
            "num_labels": len(self.labels),
            "id2label": id2label,
            "label2id": {name: i for i, name in id2label.items()},
            "problem_type": self.problem_type,
        }

    def set_label_config(self, config) -> None:
        """Take a trained model's labels: a config dict or object with ``id2label`` and ``problem_type`` (None:
        regression when there is one label, else single-label)."""
        get = config.get if isinstance(config, Mapping) else (lambda k, d=None: getattr(config, k, d))
        id2label = {int(k): str(v) for k, v in dict(get("id2label") or {}).items()}
        if sorted(id2label) != list(range(len(id2label))) or not id2label:
            raise ValueError(f"id2label must map 0..n-1 to names, got {id2label}")
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.problem_type = get("problem_type") or (
            "regression" if len(self.labels) == 1 else "single_label_classification"
        )

    def _label_of(self, example: Mapping[str, Any]):
        label = example["label"]
        if self.problem_type == "regression":
            if not isinstance(label, (int, float)) or isinstance(label, bool):
                raise example_error(example, "label", f"is {label!r}; this model does regression (float labels)")
            return float(label)
        index = {name: i for i, name in enumerate(self.labels)}
        if self.problem_type == "multi_label_classification":
            if not isinstance(label, list):
                raise example_error(example, "label", f"is {label!r}; this model is multi-label (lists of classes)")
            hot = [0.0] * len(self.labels)
            for name in label:
                if name not in index:
                    raise example_error(
                        example, "label", f"has {name!r}, which the model does not know; its labels are {self.labels}"
                    )
                hot[index[name]] = 1.0
            return hot
        if isinstance(label, (float, list)):
            raise example_error(example, "label", f"is {label!r}; this model classifies (one class name or int)")
        name = str(label)
        if name in index:
            return index[name]
        # as HF run_glue: names match case-insensitively; a model with the default LABEL_i names takes int labels
        # as the ids themselves
        lowered = {n.lower(): i for n, i in index.items()}
        if name.lower() in lowered:
            return lowered[name.lower()]
        if self.labels == [f"LABEL_{i}" for i in range(len(self.labels))] and name.isdigit():
            if int(name) < len(self.labels):
                return int(name)
        raise example_error(
            example, "label", f"is {name!r}, which the model does not know; its labels are {self.labels}"
        )

    # -- features ------------------------------------------------------------------------------------------------------

    def features(self, examples, tokenizer, args, training: bool) -> List[Dict[str, Any]]:
        if self.labels is None:
            if not training:
                raise RuntimeError(
                    "text-classification: call label_config(train examples) or set_label_config(model config) before "
                    "building eval features"
                )
            self.label_config(examples)
        self._bind_tokenizer(tokenizer)
        labels = [self._label_of(e) for e in examples]
        max_length = arg(args, "max_length")
        rows: List[Optional[Dict[str, Any]]] = [None] * len(examples)
        singles = [i for i, e in enumerate(examples) if e.get("text_pair") is None]
        pairs = [i for i, e in enumerate(examples) if e.get("text_pair") is not None]
        for indices, with_pair in ((singles, False), (pairs, True)):
            if not indices:
                continue
            enc = tokenizer(
                [examples[i]["text"] for i in indices],
                [examples[i]["text_pair"] for i in indices] if with_pair else None,
                truncation=True,
                max_length=max_length,
            )
            for j, i in enumerate(indices):
                rows[i] = {
                    "input_ids": enc["input_ids"][j],
                    "token_type_ids": enc["token_type_ids"][j],
                    "attention_mask": enc["attention_mask"][j],
                    "labels": labels[i],
                    "_example": i,
                }
        return rows

    # -- evaluation ----------------------------------------------------------------------------------------------------

    def postprocess(self, outputs, features, examples, args) -> list:
        logits = output(outputs, "logits", self.name, len(features)).astype(np.float64)
        predictions: List[Any] = [None] * len(examples)
        for row, feature in zip(logits, features):
            if self.problem_type == "regression":
                value: Any = float(row[0])
            elif self.problem_type == "multi_label_classification":
                value = [self.labels[i] for i in np.flatnonzero(row > 0.0)]  # sigmoid(x) > 0.5
            else:
                value = self.labels[int(np.argmax(row))]
            predictions[feature["_example"]] = value
        return predictions

    def metrics(self, predictions, examples) -> Dict[str, float]:
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
        if self.problem_type == "regression":
            y_true = np.array([float(e["label"]) for e in examples])
            y_pred = np.array(predictions, dtype=np.float64)
            return {
                "pearson": M.pearson(y_true, y_pred),
                "spearman": M.spearman(y_true, y_pred),
                "mse": float(np.mean((y_true - y_pred) ** 2)),
            }
        if self.problem_type == "multi_label_classification":
            index = {name: i for i, name in enumerate(self.labels)}
            y_true = np.zeros((len(examples), len(self.labels)), dtype=np.int64)
            y_pred = np.zeros_like(y_true)
            for r, (e, p) in enumerate(zip(examples, predictions)):
                y_true[r, [index[n] for n in e["label"] if n in index]] = 1
                y_pred[r, [index[n] for n in p]] = 1
            return {"accuracy": M.accuracy(y_true, y_pred), "f1": M.f1_macro(y_true, y_pred)}
        y_true = [str(e["label"]) for e in examples]
        y_pred = [str(p) for p in predictions]
        return {
            "accuracy": M.accuracy(y_true, y_pred),
            "f1": M.f1_macro(y_true, y_pred),
            "mcc": M.matthews_corrcoef(y_true, y_pred),
        }


def _compatible(a: str, b: str) -> bool:
    """Label kinds that can share a file: ints with names (all names) or with floats (regression)."""
    return a == b or {a, b} in ({INT, CLASS}, {INT, FLOAT})
