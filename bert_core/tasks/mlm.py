"""Masked-language-model training on plain text: ``BertForMaskedLM`` (HF ``run_mlm``)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from ..data import DataCollatorForMLM
from . import metrics as M
from .base import Task, arg, model_inputs, output
from .readers import empty_error, text_lines


def mlm_collator(tokenizer, args) -> DataCollatorForMLM:
    """The 80/10/10 collator with the run's ``mlm_probability``, ``whole_word_mask`` and ``seed``."""
    return DataCollatorForMLM(
        tokenizer,
        mlm_probability=float(arg(args, "mlm_probability")),
        whole_word_mask=bool(arg(args, "whole_word_mask")),
        seed=int(arg(args, "seed")),
    )


def mean_loss(outputs, task: str, n_features: int) -> float:
    """The mean of the per-row eval loss (``stack_outputs``): HF ``Trainer``'s ``eval_loss``."""
    return float(np.mean(output(outputs, "loss", task, n_features).astype(np.float64)))


class MaskedLM(Task):
    """MLM from a plain-text file: one example per non-blank line (``args.line_by_line``, truncated to
    ``max_length``), or all lines tokenized, joined and cut into blocks of ``max_length`` tokens (HF ``run_mlm``'s
    ``group_texts``: the last partial block is dropped unless it is the only one).

    Batches are masked by ``DataCollatorForMLM`` (15% of the tokens, 80% ``[MASK]``/10% random/10% kept; whole words
    with ``args.whole_word_mask``) with the ``rng`` given to ``collate``.

    Examples: ``{"text", "_path", "_where"}``. Features: ``input_ids``, ``token_type_ids``, ``attention_mask``,
    ``_example`` (line-by-line: the line's example; grouped: the example of the block's first token).
    Predictions: ``{"loss"}`` (mean eval loss). Metrics: ``loss``, ``perplexity`` (``exp(loss)``).
    """

    name = "mlm"
    head = "BertForMaskedLM"
    default_metric = "perplexity"
    greater_is_better = False

    def __init__(self):
        super().__init__()
        self.collator: Optional[DataCollatorForMLM] = None

    def read(self, path) -> List[Dict[str, Any]]:
        examples = [{"text": line, "_path": str(path), "_where": where} for where, line in text_lines(path)]
        if not examples:
            raise empty_error(path, "text")
        return examples

    def features(self, examples, tokenizer, args, training: bool) -> List[Dict[str, Any]]:
        self._bind_tokenizer(tokenizer)
        self.collator = mlm_collator(tokenizer, args)
        max_length = int(arg(args, "max_length"))
        texts = [e["text"] for e in examples]
        if arg(args, "line_by_line"):
            enc = tokenizer(texts, truncation=True, max_length=max_length)
            return [
                {
                    "input_ids": enc["input_ids"][i],
                    "token_type_ids": enc["token_type_ids"][i],
                    "attention_mask": enc["attention_mask"][i],
                    "_example": i,
                }
                for i in range(len(examples))
            ]
        enc = tokenizer(texts, verbose=False)  # whole lines: the blocks are cut below
        ids = [t for row in enc["input_ids"] for t in row]
        owner = [i for i, row in enumerate(enc["input_ids"]) for _ in row]
        total = len(ids) if len(ids) < max_length else (len(ids) // max_length) * max_length
        return [
            {
                "input_ids": ids[s : s + max_length],
                "token_type_ids": [0] * len(ids[s : s + max_length]),
                "attention_mask": [1] * len(ids[s : s + max_length]),
                "_example": owner[s],
            }
            for s in range(0, total, max_length)
        ]

    def collate(self, rows, rng: Optional[np.random.Generator] = None) -> Dict[str, np.ndarray]:
        """int64 ``(batch, seq_len)`` masked ``input_ids``, ``token_type_ids``, ``attention_mask`` and ``labels``
        (-100 where nothing was masked); ``rng`` draws the masks (None: the collator's own seeded generator)."""
        if self.collator is None:
            self._require_bound()
        return self.collator(model_inputs(rows), rng=rng)

    def postprocess(self, outputs, features, examples, args) -> Dict[str, float]:
        return {"loss": mean_loss(outputs, self.name, len(features))}

    def metrics(self, predictions, examples) -> Dict[str, float]:
        return {"loss": predictions["loss"], "perplexity": M.perplexity(predictions["loss"])}
