"""Workload definitions shared by the harness and its tests: configs, deterministic inputs, FLOP counts, timing."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Sequence

import numpy as np

from bert_core import BertConfig, tiny_config

BERT_BASE = dict(
    vocab_size=30522,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    type_vocab_size=2,
)


def bert_base_config() -> BertConfig:
    return BertConfig(**BERT_BASE)


def quick_config() -> BertConfig:
    return tiny_config(max_position_embeddings=128, vocab_size=128)


def make_batch(batch: int, length: int, vocab_size: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Full-length (no padding) random ids with [CLS]/[SEP]-like ends, a two-segment token_type split."""
    rng = np.random.default_rng(seed)
    lo = min(1000, vocab_size // 2)
    ids = rng.integers(lo, vocab_size, size=(batch, length), dtype=np.int64)
    if vocab_size > 102:
        ids[:, 0], ids[:, -1] = 101, 102
    types = np.zeros((batch, length), np.int64)
    types[:, length // 2 :] = 1
    return {"input_ids": ids, "attention_mask": np.ones((batch, length), np.int64), "token_type_ids": types}


def corpus_lengths(n: int, max_len: int = 512, min_len: int = 8, seed: int = 0) -> np.ndarray:
    """Skewed-short lengths like real text: log-normal around ~40 tokens, a long tail up to ``max_len``."""
    rng = np.random.default_rng(seed)
    lengths = np.exp(rng.normal(np.log(40.0), 0.85, size=n))
    lengths = np.clip(np.round(lengths), min_len, max_len).astype(np.int64)
    if n >= 4:  # always a few at the maximum, as a real corpus has
        lengths[rng.choice(n, size=max(1, n // 64), replace=False)] = max_len
    return lengths


def make_corpus_ids(lengths: Sequence[int], vocab_size: int, seed: int = 1) -> List[List[int]]:
    rng = np.random.default_rng(seed)
    lo = min(1000, vocab_size // 2)
    out = []
    for n in lengths:
        ids = rng.integers(lo, vocab_size, size=int(n)).tolist()
        if vocab_size > 102:
            ids[0], ids[-1] = 101, 102
        out.append(ids)
    return out


def pad_to_longest_batches(ids: List[List[int]], batch_size: int, pad_token_id: int = 0):
    """HF's default: batches in corpus order, each padded to its longest sequence (DataCollatorWithPadding)."""
    for start in range(0, len(ids), batch_size):
        rows = ids[start : start + batch_size]
        width = max(len(r) for r in rows)
        arr = np.full((len(rows), width), pad_token_id, np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for r, row in enumerate(rows):
            arr[r, : len(row)] = row
            mask[r, : len(row)] = 1
        yield (
            np.arange(start, start + len(rows)),
            {"input_ids": arr, "attention_mask": mask, "token_type_ids": np.zeros_like(arr)},
        )


def forward_flops(config: BertConfig, batch: int, length: int) -> float:
    """Matmul FLOPs of one encoder forward (+ pooler): 2 * MACs of the projections, FFN and attention."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * length * h
    return float(batch * length * layers * per_token + batch * 2 * h * h)


def train_flops(config: BertConfig, batch: int, length: int) -> float:
    """Forward + backward ~ 3x the forward matmul FLOPs (the optimizer update is O(params))."""
    return 3.0 * forward_flops(config, batch, length)


def _timing_summary(times: Dict[str, List[float]]) -> Dict[str, Dict[str, object]]:
    return {
        k: {
            "median_s": float(np.median(v)),
            "min_s": float(np.min(v)),
            "n": len(v),
            "times_s": [round(x, 6) for x in v],
        }
        for k, v in times.items()
    }


def time_interleaved(
    fns: Dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> Dict[str, Dict[str, object]]:
    """Median wall time of ``repeats`` calls of each callable after ``warmup`` untimed calls, run round-robin
    (a, b, c, a, b, c, ...) so that load from other processes on a shared machine hits every contender alike; the
    ratios are what count."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return _timing_summary(times)


def windows_interleaved(fns: Dict[str, Callable[[], float]], repeats: int) -> Dict[str, Dict[str, object]]:
    """Like :func:`time_interleaved` for callables that time themselves: each call returns the seconds of its own
    measured window (e.g. the steps of a training run after its warm-up steps), run round-robin, median reported."""
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(float(fn()))
    return _timing_summary(times)


class StepClock:
    """``perf_counter`` at the end of each training step (``tick``); :meth:`window` gives the seconds of ``steps``
    steps after the first ``warmup`` ones (the end of step ``warmup`` to the end of step ``warmup + steps``)."""

    def __init__(self) -> None:
        self.ends: List[float] = []

    def tick(self) -> None:
        self.ends.append(time.perf_counter())

    def window(self, warmup: int, steps: int) -> float:
        if warmup < 1 or len(self.ends) < warmup + steps:
            raise RuntimeError(
                f"the step clock saw {len(self.ends)} steps; the window needs warmup >= 1 and {warmup + steps} steps"
            )
        return self.ends[warmup + steps - 1] - self.ends[warmup - 1]


# ------------------------------------------------------------------------------------------------- text corpora
def vocabulary_words(model_dir) -> List[str]:
    """The whole words of a WordPiece ``vocab.txt`` (no ``##`` pieces, no ``[...]`` specials), in vocabulary order
    (BERT vocabularies are roughly frequency-ordered)."""
    from pathlib import Path

    lines = (Path(model_dir) / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return [w for w in lines if w.isalpha() and not w.startswith("##") and len(w) > 1] or [
        w for w in lines if w and not w.startswith(("##", "["))
    ]


def make_texts(lengths: Sequence[int], tokenizer, words: Sequence[str], seed: int = 2) -> List[str]:
    """Pseudo-prose (Zipf-distributed ``words``) whose encoding with ``tokenizer`` ([CLS] ... [SEP]) has about
    ``lengths[i]`` tokens: never more, fewer only by the last word's pieces."""
    rng = np.random.default_rng(seed)
    vocab = np.asarray(words, dtype=object)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    stream = vocab[rng.choice(len(vocab), size=int(np.sum(lengths)) + 16, p=weights / weights.sum())]
    unique = sorted(set(stream))
    pieces = dict(zip(unique, (len(x) for x in tokenizer(list(unique), add_special_tokens=False)["input_ids"])))
    texts, at = [], 0
    for target in lengths:
        budget, picked = int(target) - 3, []  # [CLS], [SEP] and the full stop
        while at < len(stream) and (not picked or pieces[stream[at]] <= budget):
            budget -= pieces[stream[at]]
            picked.append(stream[at])
            at += 1
            if budget <= 0:
                break
        if rng.random() < 0.5:
            picked[0] = picked[0].capitalize()
        texts.append(" ".join(picked) + ".")
    return texts


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
