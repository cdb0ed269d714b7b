"""Extractive-QA span decoding in numpy, shared by the training post-processing and the QA pipeline.

``top_spans`` is the primitive: the best answer spans of one window (feature) from its start and end scores.
``decode_spans`` is HF ``postprocess_qa_predictions`` (examples/pytorch/question-answering/utils_qa.py) for one example
over all its windows: n-best candidates, character spans through the offsets, the null score for SQuAD v2.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np


def _check_scores(start_scores, end_scores, allowed) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    start = np.asarray(start_scores, dtype=np.float64)
    end = np.asarray(end_scores, dtype=np.float64)
    if start.ndim != 1 or start.shape != end.shape:
        raise ValueError(
            f"start_scores and end_scores must be 1-D of the same length (seq_len,), got shapes {start.shape} "
            f"and {end.shape}"
        )
    mask = np.ones(start.shape, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    if mask.shape != start.shape:
        raise ValueError(f"allowed must have the scores' shape {start.shape}, got {mask.shape}")
    return start, end, mask


def top_spans(
    start_scores,
    end_scores,
    allowed=None,
    max_answer_length: int = 30,
    k: int = 20,
    *,
    candidates: Optional[int] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` best spans ``(start, end)`` of one window, by ``start_scores[start] + end_scores[end]``.

    A span is valid when ``start <= end``, ``end - start + 1 <= max_answer_length`` and both ends are ``allowed``
    (the context tokens: question, special and padding tokens are not). Pass log-probabilities to rank by the product
    of start and end probabilities (the QA pipeline), raw logits to rank by their sum (``postprocess_qa_predictions``).

    Args:
        start_scores, end_scores: float ``(seq_len,)``.
        allowed: bool ``(seq_len,)`` or None (every token).
        max_answer_length: the longest span in tokens (>= 1).
        k: how many spans to return at most (>= 1).
        candidates: when given, only the ``candidates`` highest-scoring start and end positions over the whole window
            are paired (before ``allowed`` filters them), as HF's ``postprocess_qa_predictions`` does with
            ``n_best_size``; None: every pair is considered.

    Returns:
        ``(starts, ends, scores)``: int64, int64, float64 arrays of shape ``(n,)``, ``n <= k``, best first; equal
        scores keep (start, end) order.
    """
    if not isinstance(max_answer_length, (int, np.integer)) or max_answer_length < 1:
        raise ValueError(f"max_answer_length must be an int >= 1, got {max_answer_length!r}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    start, end, mask = _check_scores(start_scores, end_scores, allowed)
    n = start.shape[0]
    start_ok = mask.copy()
    end_ok = mask.copy()
    if candidates is not None:
        if not isinstance(candidates, (int, np.integer)) or candidates < 1:
            raise ValueError(f"candidates must be an int >= 1 or None, got {candidates!r}")
        # HF's exact selection: the last `candidates` of an ascending argsort, over all tokens
        top_start = np.zeros(n, dtype=bool)
        top_start[np.argsort(start)[-1 : -candidates - 1 : -1]] = True
        top_end = np.zeros(n, dtype=bool)
        top_end[np.argsort(end)[-1 : -candidates - 1 : -1]] = True
        start_ok &= top_start
        end_ok &= top_end
    s_idx = np.flatnonzero(start_ok)
    e_idx = np.flatnonzero(end_ok)
    if s_idx.size == 0 or e_idx.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=np.float64)
    length = e_idx[None, :] - s_idx[:, None] + 1  # (n_starts, n_ends)
    valid = (length >= 1) & (length <= max_answer_length)
    rows, cols = np.nonzero(valid)  # row-major: ascending start, then end
    scores = start[s_idx[rows]] + end[e_idx[cols]]
    order = np.argsort(-scores, kind="stable")[:k]
    return s_idx[rows[order]].astype(np.int64), e_idx[cols[order]].astype(np.int64), scores[order]


def decode_spans(
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    offsets: Sequence[Sequence[Optional[Sequence[int]]]],
    context: str,
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> Dict[str, Any]:
    """Answer of one example from the logits of its windows, exactly as HF ``postprocess_qa_predictions``.

    Args:
        start_logits, end_logits: one float ``(seq_len,)`` array per window of the example.
        offsets: per window, per token, the ``(char_start, char_end)`` in ``context`` or None for tokens that are not
            context (question, special, padding): what ``QuestionAnswering.features`` stores in ``_offsets``.
        context: the example's context string.
        n_best_size: candidates per window for starts and for ends, and the length of the n-best list.
        max_answer_length: the longest answer in tokens.
        version_2_with_negative: SQuAD v2: the null answer (CLS, lowest null score over the windows) competes.
        null_score_diff_threshold: v2: answer "" when ``null_score - best_start_logit - best_end_logit`` exceeds it.

    Returns:
        ``{"prediction_text": str, "nbest": [{"text", "start_logit", "end_logit", "probability",
        "offsets"}...], "null_score_diff": float or None}``; ``nbest`` is best first; ``offsets`` is the character
        span (``(0, 0)`` for the null answer).
    """
    if not (len(start_logits) == len(end_logits) == len(offsets)) or not len(offsets):
        raise ValueError(
            "decode_spans needs one start/end logits array and one offsets list per window (at least one), got "
            f"{len(start_logits)}, {len(end_logits)} and {len(offsets)}"
        )
    min_null = None
    prelim: List[Dict[str, Any]] = []
    for starts_w, ends_w, offs in zip(start_logits, end_logits, offsets):
        starts_w = np.asarray(starts_w)
        ends_w = np.asarray(ends_w)
        null_score = float(starts_w[0]) + float(ends_w[0])
        if min_null is None or min_null["score"] > null_score:
            min_null = {
                "offsets": (0, 0),
                "score": null_score,
                "start_logit": float(starts_w[0]),
                "end_logit": float(ends_w[0]),
            }
        allowed = np.zeros(starts_w.shape[0], dtype=bool)
        for t, o in enumerate(offs[: starts_w.shape[0]]):
            allowed[t] = o is not None and len(o) >= 2
        s_idx, e_idx, _ = top_spans(
            starts_w,
            ends_w,
            allowed,
            max_answer_length,
            n_best_size * n_best_size,
            candidates=n_best_size,
        )
        # HF visits starts by descending start logit, then ends by descending end logit; keep that insertion order
        # so that the stable sort below breaks ties as HF's does
        start_rank = {int(i): r for r, i in enumerate(np.argsort(starts_w)[-1 : -n_best_size - 1 : -1])}
        end_rank = {int(i): r for r, i in enumerate(np.argsort(ends_w)[-1 : -n_best_size - 1 : -1])}
        pairs = sorted(zip(s_idx.tolist(), e_idx.tolist()), key=lambda p: (start_rank[p[0]], end_rank[p[1]]))
        for s, e in pairs:
            prelim.append(
                {
                    "offsets": (int(offs[s][0]), int(offs[e][1])),
                    "score": float(starts_w[s]) + float(ends_w[e]),
                    "start_logit": float(starts_w[s]),
                    "end_logit": float(ends_w[e]),
                }
            )
    null_score = None
    if version_2_with_negative:
        prelim.append(min_null)
        null_score = min_null["score"]
    predictions = sorted(prelim, key=lambda p: p["score"], reverse=True)[:n_best_size]
    if version_2_with_negative and not any(p["offsets"] == (0, 0) for p in predictions):
        predictions.append(min_null)
    for p in predictions:
        p["text"] = context[p["offsets"][0] : p["offsets"][1]]
    if not predictions or (len(predictions) == 1 and predictions[0]["text"] == ""):
        predictions.insert(0, {"offsets": (0, 0), "text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
    scores = np.array([p.pop("score") for p in predictions])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    for prob, p in zip(probs, predictions):
        p["probability"] = float(prob)
    if not version_2_with_negative:
        return {"prediction_text": predictions[0]["text"], "nbest": predictions, "null_score_diff": None}
    best = next(p for p in predictions if p["text"] != "")
    diff = null_score - best["start_logit"] - best["end_logit"]
    text = "" if diff > null_score_diff_threshold else best["text"]
    return {"prediction_text": text, "nbest": predictions, "null_score_diff": float(diff)}
