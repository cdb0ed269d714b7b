"""Task metrics: classification (scikit-learn), correlation (scipy), entity-level sequence labelling (counted as
seqeval counts it), SQuAD exact match / F1 (the official scripts' normalisation) and perplexity.

All return Python floats. seqeval is not a dependency (it ships only as an sdist that no longer builds); its default
(conlleval-compatible) entity extraction is re-implemented here and compared with seqeval itself in tests/oracle.
"""

from __future__ import annotations

import collections
import math
import re
import string
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

# -- classification and regression ------------------------------------------------------------------------------------


def accuracy(y_true, y_pred) -> float:
    """Fraction of equal labels (for 2-D multi-label indicator arrays: rows equal in every label)."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred))


def f1_macro(y_true, y_pred) -> float:
    """Unweighted mean of the per-class F1 over the classes in ``y_true`` or ``y_pred`` (0 where undefined)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def matthews_corrcoef(y_true, y_pred) -> float:
    """Matthews correlation coefficient (multi-class generalisation), in [-1, 1]."""
    from sklearn.metrics import matthews_corrcoef as mcc

    return float(mcc(y_true, y_pred))


def _correlation(fn, y_true, y_pred) -> float:
    import warnings

    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.size < 2 or np.all(a == a.flat[0]) or np.all(b == b.flat[0]):
        return float("nan")  # undefined for constant inputs (scipy warns and returns nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a, b)[0])


def pearson(y_true, y_pred) -> float:
    """Pearson correlation (scipy); nan when either side is constant or has fewer than 2 values."""
    from scipy.stats import pearsonr

    return _correlation(pearsonr, y_true, y_pred)


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation (scipy); nan when either side is constant or has fewer than 2 values."""
    from scipy.stats import spearmanr

    return _correlation(spearmanr, y_true, y_pred)


def perplexity(loss: float) -> float:
    """``exp(loss)``; inf when it overflows (as HF ``run_mlm``)."""
    try:
        return float(math.exp(loss))
    except OverflowError:
        return float("inf")


# -- entity-level sequence labelling (seqeval's default mode) -----------------------------------------------------------


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        prev_tag in ("E", "S")
        or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
        or (prev_tag not in ("O", ".") and prev_type != type_)
    )


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag not in ("O", ".") and prev_type != type_)
    )


def get_entities(tags: Sequence) -> List[Tuple[str, int, int]]:
    """Entities ``(type, first, last)`` (inclusive) of a tag sequence, as seqeval's ``get_entities`` finds them.

    IOB2 (``B-`` starts), IOB1 (``I-`` after ``O`` or another type starts) and IOBES tags are read alike; a list of
    sentences is joined with an ``O`` between them (positions then count across sentences).
    """
    if any(isinstance(s, list) for s in tags):
        tags = [t for sentence in tags for t in list(sentence) + ["O"]]
    chunks = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate(list(tags) + ["O"]):
        tag = chunk[0]
        type_ = chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def _prf(tp: int, n_pred: int, n_true: int) -> Tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    denom = precision + recall
    return precision, recall, (2 * precision * recall / denom if denom else 0.0)


def seqeval_scores(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> Dict[str, float]:
    """Entity-level precision/recall/F1 (micro over entities) and token accuracy, as HF's ``seqeval`` metric
    (``evaluate``) computes them in its default mode, with 0 for an undefined ratio.

    Args:
        y_true, y_pred: per sentence, its tags (the same lengths).

    Returns:
        ``precision``, ``recall``, ``f1``, ``accuracy`` and per entity type ``{TYPE}_precision``,
        ``{TYPE}_recall``, ``{TYPE}_f1``, ``{TYPE}_number`` (the type's count in ``y_true``).

    Raises:
        ValueError: different numbers of sentences or a sentence whose lengths differ.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} sentences but y_pred has {len(y_pred)}")
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} true tags but {len(p)} predicted")
    true_entities: Dict[str, set] = collections.defaultdict(set)
    pred_entities: Dict[str, set] = collections.defaultdict(set)
    for type_, first, last in get_entities([list(s) for s in y_true]):
        true_entities[type_].add((first, last))
    for type_, first, last in get_entities([list(s) for s in y_pred]):
        pred_entities[type_].add((first, last))
    out: Dict[str, float] = {}
    tp_all = n_pred_all = n_true_all = 0
    for type_ in sorted(set(true_entities) | set(pred_entities)):
        t, p = true_entities.get(type_, set()), pred_entities.get(type_, set())
        tp = len(t & p)
        precision, recall, f1 = _prf(tp, len(p), len(t))
        out.update(
            {
                f"{type_}_precision": precision,
                f"{type_}_recall": recall,
                f"{type_}_f1": f1,
                f"{type_}_number": float(len(t)),
            }
        )
        tp_all, n_pred_all, n_true_all = tp_all + tp, n_pred_all + len(p), n_true_all + len(t)
    precision, recall, f1 = _prf(tp_all, n_pred_all, n_true_all)
    flat_true = [tag for s in y_true for tag in s]
    flat_pred = [tag for s in y_pred for tag in s]
    correct = sum(a == b for a, b in zip(flat_true, flat_pred))
    accuracy_ = correct / len(flat_true) if flat_true else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy_, **out}


# -- SQuAD ---------------------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, no punctuation, no articles (a/an/the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _f1_v1(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    true_tokens = normalize_answer(truth).split()
    same = sum((collections.Counter(pred_tokens) & collections.Counter(true_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(true_tokens)
    return 2 * precision * recall / (precision + recall)


def _f1_v2(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split() if prediction else []
    true_tokens = normalize_answer(truth).split() if truth else []
    if not pred_tokens or not true_tokens:
        # a no-answer on either side scores 1 when both are no-answers, else 0
        return float(pred_tokens == true_tokens)
    same = sum((collections.Counter(pred_tokens) & collections.Counter(true_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(true_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(
    predictions: Mapping[str, str], references: Mapping[str, Iterable[str]], version_2: bool = False
) -> Dict[str, float]:
    """SQuAD exact match and F1 (percentages), as the official evaluation scripts compute them.

    Args:
        predictions: ``{question id: predicted text}`` ("" is the no-answer in v2).
        references: ``{question id: gold answer texts}`` (empty for an unanswerable v2 question).
        version_2: the v2.0 script: unanswerable questions count as correct only for an empty prediction, and the
            scores are split into ``HasAns_*`` / ``NoAns_*``.

    Returns:
        ``exact_match``, ``f1`` (and with ``version_2``: ``total``, ``HasAns_exact``, ``HasAns_f1``,
        ``HasAns_total``, ``NoAns_exact``, ``NoAns_f1``, ``NoAns_total`` for the parts that have questions).

    Raises:
        ValueError: a reference id without a prediction.
    """
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction, e.g. {missing[:3]}")
    exact: Dict[str, float] = {}
    f1: Dict[str, float] = {}
    has_answer: Dict[str, bool] = {}
    for qid, answers in references.items():
        prediction = predictions[qid]
        answers = list(answers)
        if version_2:
            gold = [a for a in answers if normalize_answer(a)] or [""]
            has_answer[qid] = bool(answers)  # the official script splits by the raw answer list
            exact[qid] = max(float(normalize_answer(a) == normalize_answer(prediction)) for a in gold)
            f1[qid] = max(_f1_v2(prediction, a) for a in gold)
        else:
            if not answers:
                raise ValueError(f"question {qid!r} has no gold answer (SQuAD v1.1 needs one; use version_2=True)")
            exact[qid] = max(float(normalize_answer(prediction) == normalize_answer(a)) for a in answers)
            f1[qid] = max(_f1_v1(prediction, a) for a in answers)
    total = len(references)
    out = {
        "exact_match": 100.0 * sum(exact.values()) / total if total else 0.0,
        "f1": 100.0 * sum(f1.values()) / total if total else 0.0,
    }
    if version_2:
        out["total"] = float(total)
        for name, wanted in (("HasAns", True), ("NoAns", False)):
            ids = [q for q, h in has_answer.items() if h == wanted]
            if ids:
                out[f"{name}_exact"] = 100.0 * sum(exact[q] for q in ids) / len(ids)
                out[f"{name}_f1"] = 100.0 * sum(f1[q] for q in ids) / len(ids)
                out[f"{name}_total"] = float(len(ids))
    return out
