"""Multiple choice (SWAG-style): ``BertForMultipleChoice`` (HF ``run_swag``)."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..data import DataCollatorForMultipleChoice
from . import metrics as M
from .base import DataError, Task, arg, model_inputs, output
from .readers import empty_error, field, jsonl_rows, text_field


class MultipleChoice(Task):
    """Pick one of several endings, from JSON lines ``{"context", "choices": [...], "label"}`` (optional
    ``"question"``, put before each choice as SWAG's second-sentence start). Every line needs the same number of
    choices (a batch is ``(batch, num_choices, seq_len)``).

    Each choice is encoded as the pair ``(context, question + " " + choice)`` with ``truncation=True`` and
    ``max_length``, as HF ``run_swag``.

    Examples: ``{"context", "question", "choices", "label", "_path", "_where"}``. Features: ``input_ids``,
    ``token_type_ids``, ``attention_mask`` (``[num_choices][seq_len]`` int lists), ``labels`` (int), ``_example``.
    Predictions: the chosen index per example. Metrics: ``accuracy``.
    """

    name = "multiple-choice"
    head = "BertForMultipleChoice"
    default_metric = "accuracy"

    def read(self, path) -> List[Dict[str, Any]]:
        examples = []
        first = None
        for where, row in jsonl_rows(path):
            context = text_field(path, where, row, "context")
            question = text_field(path, where, row, "question", required=False)
            choices = field(path, where, row, "choices")
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                raise DataError(path, where, "choices", f"must be a list of strings, got {choices!r:.60}")
            if len(choices) < 2:
                raise DataError(path, where, "choices", f"has {len(choices)} choice(s); at least 2 are needed")
            if first is None:
                first = (len(choices), where)
            elif len(choices) != first[0]:
                raise DataError(
                    path,
                    where,
                    "choices",
                    f"has {len(choices)} choices but {first[1]} has {first[0]}: all lines need the same number",
                )
            label = field(path, where, row, "label")
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices):
                raise DataError(
                    path,
                    where,
                    "label",
                    f"is {label!r}; it must be the index of the right choice (0..{len(choices) - 1})",
                )
            examples.append(
                {
                    "context": context,
                    "question": question,
                    "choices": choices,
                    "label": label,
                    "_path": str(path),
                    "_where": where,
                }
            )
        if not examples:
            raise empty_error(path)
        return examples

    def features(self, examples, tokenizer, args, training: bool) -> List[Dict[str, Any]]:
        self._bind_tokenizer(tokenizer)
        n = len(examples[0]["choices"]) if examples else 0
        for e in examples:
            if len(e["choices"]) != n:
                raise DataError(
                    e.get("_path"), e.get("_where"), "choices", f"has {len(e['choices'])} choices, others have {n}"
                )
        firsts = [e["context"] for e in examples for _ in e["choices"]]
        seconds = [f"{e['question']} {c}" if e.get("question") else c for e in examples for c in e["choices"]]
        enc = tokenizer(firsts, seconds, truncation=True, max_length=arg(args, "max_length"))
        rows = []
        for i, e in enumerate(examples):
            sl = slice(i * n, (i + 1) * n)
            rows.append(
                {
                    "input_ids": enc["input_ids"][sl],
                    "token_type_ids": enc["token_type_ids"][sl],
                    "attention_mask": enc["attention_mask"][sl],
                    "labels": e["label"],
                    "_example": i,
                }
            )
        return rows

    def collate(self, rows, rng=None) -> Dict[str, np.ndarray]:
        """int64 ``(batch, num_choices, seq_len)`` inputs and ``labels`` ``(batch,)``."""
        return DataCollatorForMultipleChoice(pad_token_id=self._require_bound())(model_inputs(rows))

    def postprocess(self, outputs, features, examples, args) -> List[int]:
        logits = output(outputs, "logits", self.name, len(features))
        predictions: List[int] = [0] * len(examples)
        for row, feature in zip(logits, features):
            predictions[feature["_example"]] = int(np.argmax(row))
        return predictions

    def metrics(self, predictions, examples) -> Dict[str, float]:
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
        return {"accuracy": M.accuracy([e["label"] for e in examples], list(predictions))}
