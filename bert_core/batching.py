"""Length bucketing for variable-length inputs: sort by length, batch under a token budget, pad each batch only to
its own longest sequence (rounded up to a multiple), and give results back in the caller's order.

Pad-to-longest over a random batch wastes most of the compute when lengths are skewed (a few 512-token documents
among many short sentences); sorting first makes every batch nearly rectangular. Per-sequence outputs are identical
to running each sequence alone, because BERT's attention mask removes padding exactly.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np


def _cheapest_cuts(padded: Sequence[int], batch_size: int, max_tokens: Optional[int], call_cost: int) -> List[int]:
    """Boundaries ``0 = c0 < c1 < ... = n`` of the contiguous batches of ``padded`` (padded lengths, longest first)
    with the least total cost ``sum(call_cost + rows x first row's length)`` under the row and token limits.

    Dynamic programming over the sorted rows (``O(n x batch_size)``): the greedy fill pads a whole batch to its
    longest row, which on a CPU (cost linear in padded tokens) can cost more than the calls it saves; a single row
    is always allowed, even past ``max_tokens``.
    """
    n = len(padded)
    best = [0] + [None] * n
    back = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end - 1, max(-1, end - 1 - batch_size), -1):
            rows = end - start
            tokens = rows * padded[start]
            if rows > 1 and max_tokens is not None and tokens > max_tokens:
                break  # longer rows only come earlier: the batch only grows
            cost = best[start] + call_cost + tokens
            if best[end] is None or cost < best[end]:
                best[end], back[end] = cost, start
    cuts = [n]
    while cuts[-1] > 0:
        cuts.append(back[cuts[-1]])
    return cuts[::-1]


def plan_batches(
    lengths: Sequence[int],
    *,
    batch_size: int = 32,
    max_tokens: Optional[int] = None,
    pad_to_multiple_of: int = 8,
    call_cost_tokens: Optional[int] = None,
) -> List[np.ndarray]:
    """Group sequence indices into batches of similar length.

    Args:
        lengths: length of each sequence (tokens, special tokens included).
        batch_size: at most this many sequences per batch.
        max_tokens: optional budget on padded tokens per batch (batch rows x padded length).
        pad_to_multiple_of: padded length is rounded up to this.
        call_cost_tokens: None fills batches greedily (longest first). Otherwise the cut that minimises
            ``sum over batches of (call_cost_tokens + rows x padded length)``: the fixed cost of one model call, in
            padded tokens, against the padding that joining rows of different lengths costs (see
            :func:`_cheapest_cuts`).

    Returns:
        List of int64 index arrays, longest batches first; together they cover every index once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if pad_to_multiple_of < 1:
        raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
    if call_cost_tokens is not None and call_cost_tokens < 0:
        raise ValueError(f"call_cost_tokens must be >= 0 or None, got {call_cost_tokens}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths.size and lengths.min() < 1):
        raise ValueError("lengths must be a 1-D sequence of positive ints")
    order = np.argsort(-lengths, kind="stable")
    if call_cost_tokens is not None:
        padded = [_round_up(int(lengths[i]), pad_to_multiple_of) for i in order]
        cuts = _cheapest_cuts(padded, batch_size, max_tokens, call_cost_tokens)
        return [np.asarray(order[a:b], dtype=np.int64) for a, b in zip(cuts, cuts[1:])]
    batches: List[np.ndarray] = []
    current: List[int] = []
    current_len = 0
    for idx in order:
        padded = _round_up(int(lengths[idx]), pad_to_multiple_of)
        longest = max(current_len, padded)
        over_tokens = max_tokens is not None and current and longest * (len(current) + 1) > max_tokens
        if current and (len(current) >= batch_size or over_tokens):
            batches.append(np.asarray(current, dtype=np.int64))
            current, longest = [], padded
        current.append(int(idx))
        current_len = longest
    if current:
        batches.append(np.asarray(current, dtype=np.int64))
    return batches


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def collate(
    input_ids: Sequence[Sequence[int]],
    indices: np.ndarray,
    *,
    pad_token_id: int = 0,
    pad_to_multiple_of: int = 8,
    token_type_ids: Optional[Sequence[Sequence[int]]] = None,
) -> Dict[str, np.ndarray]:
    """Pad the sequences at ``indices`` into int64 arrays ``input_ids``, ``attention_mask``, ``token_type_ids``
    of shape (len(indices), padded_len)."""
    rows = [input_ids[i] for i in indices]
    width = _round_up(max(len(r) for r in rows), pad_to_multiple_of)
    ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    for r, i in enumerate(indices):
        n = len(input_ids[i])
        ids[r, :n] = input_ids[i]
        mask[r, :n] = 1
        if token_type_ids is not None:
            types[r, :n] = token_type_ids[i]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def iter_bucketed(
    input_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 32,
    max_tokens: Optional[int] = None,
    pad_to_multiple_of: int = 8,
    pad_token_id: int = 0,
    token_type_ids: Optional[Sequence[Sequence[int]]] = None,
) -> Iterator[tuple]:
    """Yield ``(indices, batch)`` for bucketed batches; ``batch`` as from :func:`collate`."""
    plan = plan_batches(
        [len(x) for x in input_ids], batch_size=batch_size, max_tokens=max_tokens, pad_to_multiple_of=pad_to_multiple_of
    )
    for indices in plan:
        yield (
            indices,
            collate(
                input_ids,
                indices,
                pad_token_id=pad_token_id,
                pad_to_multiple_of=pad_to_multiple_of,
                token_type_ids=token_type_ids,
            ),
        )


def run_bucketed(
    fn: Callable[[Dict[str, np.ndarray]], np.ndarray],
    input_ids: Sequence[Sequence[int]],
    **kwargs,
) -> List[np.ndarray]:
    """Apply ``fn`` (batch dict -> array (batch, padded_len, ...)) over bucketed batches and return each sequence's
    unpadded rows ``(len_i, ...)`` in the original order."""
    results: List[Optional[np.ndarray]] = [None] * len(input_ids)
    for indices, batch in iter_bucketed(input_ids, **kwargs):
        out = np.asarray(fn(batch))
        for r, i in enumerate(indices):
            results[i] = out[r, : len(input_ids[i])]
    return results  # type: ignore[return-value]
