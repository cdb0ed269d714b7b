"""Token classification (NER, POS...): ``BertForTokenClassification`` (HF ``run_ner``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import metrics as M
from .alignment import align_labels, b_to_i_map, first_piece_mask
from .base import DataError, Task, arg, check_tokenizer_fast, example_error, group_by_example, output
from .readers import conll_sentences, empty_error, field, jsonl_rows

JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}


def _string_list(path, where: str, row: Mapping[str, Any], name: str) -> List[str]:
    value = field(path, where, row, name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(path, where, name, f"must be a list of strings, got {value!r:.60}")
    if not value:
        raise DataError(path, where, name, "is empty")
    for i, v in enumerate(value):
        if not v.strip():
            raise DataError(path, where, name, f"has an empty entry at position {i}")
    return value


class TokenClassification(Task):
    """Word-level tagging from JSON lines ``{"tokens": [...], "tags": [...]}`` or CoNLL files (whitespace
    columns, the token first and the tag last, a blank line between sentences, ``-DOCSTART-`` skipped).

    Word labels go to word pieces through ``word_ids``: the first piece of a word gets its tag, later pieces -100
    (or, with ``args.label_all_tokens``, the word's tag with ``B-`` turned into ``I-``, as HF ``run_ner``).

    Examples: ``{"tokens", "tags", "_path", "_where"}``. Features: ``input_ids``, ``token_type_ids``,
    ``attention_mask``, ``labels`` (per token, -100 for special tokens and ignored pieces), ``_example``,
    ``_word_ids``. Predictions: per example, the tag of each word that fits ``max_length`` (the prediction at its
    first piece). Metrics: entity-level ``precision``, ``recall``, ``f1`` (seqeval's default mode, IOB1/IOB2),
    token ``accuracy``, and per entity type ``{TYPE}_f1``... (over the words that fit ``max_length``, as in HF).
    """

    name = "token-classification"
    head = "BertForTokenClassification"
    default_metric = "f1"

    def __init__(self):
        super().__init__()
        self.labels: Optional[List[str]] = None

    def read(self, path) -> List[Dict[str, Any]]:
        examples = []
        if Path(path).suffix.lower() in JSONL_SUFFIXES:
            for where, row in jsonl_rows(path):
                tokens = _string_list(path, where, row, "tokens")
                tags = _string_list(path, where, row, "tags")
                if len(tokens) != len(tags):
                    raise DataError(path, where, "tags", f"has {len(tags)} tags for {len(tokens)} tokens")
                examples.append({"tokens": tokens, "tags": tags, "_path": str(path), "_where": where})
        else:
            for where, tokens, tags in conll_sentences(path):
                examples.append({"tokens": tokens, "tags": tags, "_path": str(path), "_where": where})
        if not examples:
            raise empty_error(path, "sentences")
        return examples

    def label_config(self, examples: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        if not examples:
            raise ValueError("label_config needs the training examples; got none")
        self.labels = sorted({t for e in examples for t in e["tags"]})
        id2label = dict(enumerate(self.labels))
        return {"num_labels": len(self.labels), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}

    def set_label_config(self, config) -> None:
        """Take a trained model's tag set from a config dict or object (``id2label``)."""
        id2label = config.get("id2label") if isinstance(config, Mapping) else getattr(config, "id2label", None)
        id2label = {int(k): str(v) for k, v in dict(id2label or {}).items()}
        if not id2label or sorted(id2label) != list(range(len(id2label))):
            raise ValueError(f"id2label must map 0..n-1 to tags, got {id2label}")
        self.labels = [id2label[i] for i in range(len(id2label))]

    def features(self, examples, tokenizer, args, training: bool) -> List[Dict[str, Any]]:
        check_tokenizer_fast(tokenizer, self.name)
        if self.labels is None:
            if not training:
                raise RuntimeError(
                    "token-classification: call label_config(train examples) or set_label_config(model config) "
                    "before building eval features"
                )
            self.label_config(examples)
        self._bind_tokenizer(tokenizer)
        index = {tag: i for i, tag in enumerate(self.labels)}
        word_labels = []
        for e in examples:
            unknown = sorted({t for t in e["tags"] if t not in index})
            if unknown:
                raise example_error(
                    e, "tags", f"has {unknown}, which the model does not know; its tags are {self.labels}"
                )
            word_labels.append([index[t] for t in e["tags"]])
        b_to_i = b_to_i_map(self.labels)
        label_all = bool(arg(args, "label_all_tokens"))
        enc = tokenizer(
            [e["tokens"] for e in examples],
            is_split_into_words=True,
            truncation=True,
            max_length=arg(args, "max_length"),
        )
        rows = []
        for i in range(len(examples)):
            word_ids = enc.word_ids(i)
            rows.append(
                {
                    "input_ids": enc["input_ids"][i],
                    "token_type_ids": enc["token_type_ids"][i],
                    "attention_mask": enc["attention_mask"][i],
                    "labels": align_labels(word_ids, word_labels[i], label_all, b_to_i),
                    "_example": i,
                    "_word_ids": word_ids,
                }
            )
        return rows

    def postprocess(self, outputs, features, examples, args) -> List[List[str]]:
        logits = output(outputs, "logits", self.name, len(features))
        groups = group_by_example(features, len(examples))
        predictions: List[List[str]] = []
        for e, feature_indices in enumerate(groups):
            if len(feature_indices) != 1:
                raise ValueError(f"example {e} has {len(feature_indices)} features; token classification makes one")
            f = feature_indices[0]
            word_ids = features[f]["_word_ids"]
            ids = np.argmax(logits[f, : len(word_ids)], axis=-1)
            predictions.append(
                [self.labels[int(ids[t])] for t, first in enumerate(first_piece_mask(word_ids)) if first]
            )
        return predictions

    def metrics(self, predictions, examples) -> Dict[str, float]:
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
        y_true = [list(e["tags"][: len(p)]) for e, p in zip(examples, predictions)]
        return M.seqeval_scores(y_true, predictions)
