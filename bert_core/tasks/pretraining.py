"""BERT pre-training (masked LM + next-sentence prediction): ``BertForPreTraining``."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from ..data import DataCollatorForMLM, build_nsp_pairs
from . import metrics as M
from .base import DataError, Task, arg, model_inputs, output
from .mlm import mean_loss, mlm_collator
from .readers import documents, empty_error


class PreTraining(Task):
    """MLM + NSP from documents: one sentence per line, a blank line between documents (at least two documents).

    Each consecutive sentence pair of a document gives one example (``bert_core.data.build_nsp_pairs``): the real
    next sentence (``next_sentence_label`` 0) or, with probability 0.5, a random sentence of another document (1),
    truncated longest-first to ``max_length``; drawn from ``args.seed`` (another stream for eval features). Batches
    are masked as in the ``mlm`` task.

    Examples: ``{"sentences", "_path", "_where"}`` (one per document). Features: ``input_ids``, ``token_type_ids``,
    ``attention_mask``, ``next_sentence_label``, ``_example`` (the document). Predictions: ``{"loss", "mlm_loss",
    "nsp_loss", "nsp_accuracy"}``. Metrics: those and ``perplexity`` (``exp(mlm_loss)``).
    """

    name = "pretraining"
    head = "BertForPreTraining"
    default_metric = "loss"
    greater_is_better = False

    def __init__(self):
        super().__init__()
        self.collator: Optional[DataCollatorForMLM] = None

    def read(self, path) -> List[Dict[str, Any]]:
        examples = [{"sentences": s, "_path": str(path), "_where": where} for where, s in documents(path)]
        if not examples:
            raise empty_error(path, "documents")
        if not any(len(e["sentences"]) >= 2 for e in examples):
            raise DataError(path, None, None, "has no document with two sentences (lines) to make a pair of")
        if len(examples) < 2:
            raise DataError(
                path, None, None, "has one document; NSP needs at least two (separate documents with a blank line)"
            )
        return examples

    def features(self, examples, tokenizer, args, training: bool) -> List[Dict[str, Any]]:
        self._bind_tokenizer(tokenizer)
        self.collator = mlm_collator(tokenizer, args)
        seed = int(arg(args, "seed"))
        pairs = build_nsp_pairs(
            [e["sentences"] for e in examples],
            tokenizer,
            max_length=int(arg(args, "max_length")),
            seed=np.random.default_rng([seed, 0 if training else 1]),
        )
        owners = [d for d, e in enumerate(examples) for _ in range(len(e["sentences"]) - 1)]
        rows = []
        for r, n in enumerate(pairs["attention_mask"].sum(axis=1).tolist()):
            rows.append(
                {
                    "input_ids": pairs["input_ids"][r, :n].tolist(),
                    "token_type_ids": pairs["token_type_ids"][r, :n].tolist(),
                    "attention_mask": [1] * n,
                    "next_sentence_label": int(pairs["next_sentence_label"][r]),
                    "_example": owners[r],
                }
            )
        return rows

    def collate(self, rows, rng: Optional[np.random.Generator] = None) -> Dict[str, np.ndarray]:
        """The MLM batch (see ``MaskedLM.collate``) plus ``next_sentence_label`` int64 ``(batch,)``."""
        if self.collator is None:
            self._require_bound()
        return self.collator(model_inputs(rows), rng=rng)

    def postprocess(self, outputs, features, examples, args) -> Dict[str, float]:
        loss = mean_loss(outputs, self.name, len(features))
        logits = output(outputs, "seq_relationship_logits", self.name, len(features)).astype(np.float64)
        labels = np.array([f["next_sentence_label"] for f in features])
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        nsp_loss = float(-log_probs[np.arange(len(labels)), labels].mean())
        # the model's loss is MLM + NSP per batch; batch-size weighting is the same for both means
        return {
            "loss": loss,
            "mlm_loss": loss - nsp_loss,
            "nsp_loss": nsp_loss,
            "nsp_accuracy": float(np.mean(np.argmax(logits, axis=1) == labels)),
        }

    def metrics(self, predictions, examples) -> Dict[str, float]:
        return {**predictions, "perplexity": M.perplexity(predictions["mlm_loss"])}
