"""A numpy stand-in for a backend's ``PipelineModel``: deterministic outputs of every head, computed per row from
the row's own tokens only (so padding and batching cannot change them), and a log of the batches it was given.

Used by the framework-free tests (tests/core): the pipelines' pre/post-processing and engine run unchanged on it.
"""

from __future__ import annotations

from typing import Dict, List, Mapping

import numpy as np

from bert_core.config import BertConfig

WIDTH = 16


class FakeRunner:
    backend = "fake"
    pad_to_multiple_of = 8

    def __init__(self, head: str, config: BertConfig, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.head = head
        self.config = config
        self.model = None
        self.table = rng.normal(size=(config.vocab_size, WIDTH)).astype(np.float32)
        self.labels = rng.normal(size=(WIDTH, config.num_labels)).astype(np.float32) * 3
        self.batches: List[np.ndarray] = []  # the attention mask of every batch run

    def token_vectors(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, L) -> (B, L, WIDTH): a token's vector plus the mean of its row's real tokens (context)."""
        vectors = self.table[ids]
        weights = mask[..., None].astype(np.float32)
        context = (vectors * weights).sum(1, keepdims=True) / weights.sum(1, keepdims=True)
        return vectors + 0.5 * context

    def __call__(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        self.batches.append(mask.copy())
        hidden = self.token_vectors(ids, mask)
        if self.head == "BertForMaskedLM":
            return {"logits": hidden @ self.table.T}
        if self.head == "BertForTokenClassification":
            return {"logits": hidden @ self.labels}
        if self.head == "BertForQuestionAnswering":
            return {"start_logits": hidden[..., 0] * 3, "end_logits": hidden[..., 1] * 3}
        if self.head == "BertForSequenceClassification":
            return {"logits": hidden[:, 0] @ self.labels}
        return {"last_hidden_state": hidden, "pooler_output": np.tanh(hidden[:, 0])}
