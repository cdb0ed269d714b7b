"""The QA span primitive and word-label alignment (shared with the pipelines)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bert_core.tasks.alignment import align_labels, b_to_i_map, first_piece_mask
from bert_core.tasks.qa import decode_spans, top_spans


def brute_force(start, end, allowed, max_len):
    spans = []
    for s, e in itertools.product(range(len(start)), repeat=2):
        if allowed[s] and allowed[e] and s <= e and e - s + 1 <= max_len:
            spans.append((-(start[s] + end[e]), s, e))
    return sorted(spans)


@pytest.mark.parametrize("seed", range(20))
def test_top_spans_is_the_exhaustive_best_k(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    start, end = rng.normal(size=n), rng.normal(size=n)
    allowed = rng.random(n) < 0.7
    max_len, k = int(rng.integers(1, 8)), int(rng.integers(1, 15))
    starts, ends, scores = top_spans(start, end, allowed, max_len, k)
    want = brute_force(start, end, allowed, max_len)[:k]
    assert list(zip(starts.tolist(), ends.tolist())) == [(s, e) for _, s, e in want]
    np.testing.assert_allclose(scores, [-v for v, _, _ in want])
    assert starts.dtype == np.int64 and scores.dtype == np.float64


def test_top_spans_hand_case_and_ties():
    start = np.array([9.0, 1.0, 3.0, 0.0])
    end = np.array([9.0, 0.0, 1.0, 3.0])
    allowed = np.array([False, True, True, True])  # CLS excluded
    s, e, sc = top_spans(start, end, allowed, max_answer_length=2, k=3)
    # (2,3)=6, (2,2)=4, (3,3)=3 beat (1,2)=2; (0,0)=18 is not allowed, (1,3) is too long
    assert list(zip(s.tolist(), e.tolist())) == [(2, 3), (2, 2), (3, 3)]
    np.testing.assert_array_equal(sc, [6.0, 4.0, 3.0])
    # ties keep (start, end) order
    s, e, _ = top_spans(np.zeros(3), np.zeros(3), None, 3, 10)
    assert list(zip(s.tolist(), e.tolist())) == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]


def test_top_spans_candidates_restrict_like_hf():
    start = np.array([0.0, 5.0, 4.0, 3.0])
    end = np.array([0.0, 1.0, 2.0, 5.0])
    # only the 1 best start (1) and the 1 best end (3)
    s, e, _ = top_spans(start, end, None, 30, 20, candidates=1)
    assert list(zip(s.tolist(), e.tolist())) == [(1, 3)]
    # the CLS as best start is picked, then dropped by `allowed`: nothing left (HF does the same)
    s, _, _ = top_spans(np.array([9.0, 1.0]), np.array([9.0, 1.0]), np.array([False, True]), 30, 20, candidates=1)
    assert s.size == 0


def test_top_spans_errors():
    with pytest.raises(ValueError, match="same length"):
        top_spans(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="allowed must have"):
        top_spans(np.zeros(3), np.zeros(3), np.ones(2, bool))
    with pytest.raises(ValueError, match="max_answer_length"):
        top_spans(np.zeros(3), np.zeros(3), None, 0)
    with pytest.raises(ValueError, match="k must be"):
        top_spans(np.zeros(3), np.zeros(3), None, 3, 0)


def test_decode_spans_over_windows_and_null():
    context = "abc def ghi"
    # window 0: tokens CLS q SEP abc def SEP; window 1: CLS q SEP def ghi SEP
    offs0 = [None, None, None, (0, 3), (4, 7), None]
    offs1 = [None, None, None, (4, 7), (8, 11), None]
    s0 = np.array([1.0, 0, 0, 2.0, 0.5, 0])
    e0 = np.array([1.0, 0, 0, 0.1, 2.5, 0])
    s1 = np.array([0.5, 0, 0, 0.2, 3.0, 0])
    e1 = np.array([0.5, 0, 0, 0.0, 3.0, 0])
    out = decode_spans([s0, s1], [e0, e1], [offs0, offs1], context, n_best_size=3, max_answer_length=5)
    assert out["prediction_text"] == "ghi"  # 6.0 beats "abc def" 4.5
    assert [p["text"] for p in out["nbest"]] == ["ghi", "abc def", "def ghi"]
    assert abs(sum(p["probability"] for p in out["nbest"]) - 1) < 1e-9
    v2 = decode_spans(
        [s0, s1], [e0, e1], [offs0, offs1], context, n_best_size=3, max_answer_length=5, version_2_with_negative=True
    )
    # null score = min over windows of CLS start+end = 1.0; diff = 1 - 6 < 0: answer kept
    assert v2["prediction_text"] == "ghi" and v2["null_score_diff"] == pytest.approx(-5.0)
    s1_low = s1 - 10
    v2 = decode_spans(
        [s0 + 10, s1_low],
        [e0 + 10, e1],
        [offs0, offs1],
        context,
        n_best_size=3,
        max_answer_length=5,
        version_2_with_negative=True,
    )
    assert any(p["offsets"] == (0, 0) for p in v2["nbest"])


def test_decode_spans_nothing_valid_gives_empty():
    out = decode_spans([np.zeros(3)], [np.zeros(3)], [[None, None, None]], "ctx", n_best_size=2)
    assert out["prediction_text"] == "empty"


def test_align_labels_first_piece_and_all_pieces():
    word_ids = [None, 0, 0, 1, 2, 2, 2, None, None]
    labels = [1, 0, 3]  # B-PER O B-LOC
    assert align_labels(word_ids, labels) == [-100, 1, -100, 0, 3, -100, -100, -100, -100]
    assert align_labels(word_ids, labels, label_all_tokens=True) == [-100, 1, 1, 0, 3, 3, 3, -100, -100]
    b2i = b_to_i_map(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-X"])
    assert b2i == {0: 0, 1: 2, 2: 2, 3: 4, 4: 4, 5: 5}
    assert align_labels(word_ids, labels, True, b2i) == [-100, 1, 2, 0, 3, 4, 4, -100, -100]
    assert first_piece_mask(word_ids) == [False, True, False, True, True, False, False, False, False]
    with pytest.raises(ValueError, match="word index 3"):
        align_labels([0, 3], [1, 2])
