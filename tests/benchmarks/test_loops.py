"""Pieces of the (g) training-loop and (h) pipeline workloads: the texts, the step clock, round-robin windows and the
output comparison. No timing assertions."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import pipeline_bench
from benchmarks.cli import QUICK_VOCAB, quick_text_checkpoint
from benchmarks.train_loop import our_step_clock
from benchmarks.workloads import StepClock, make_texts, vocabulary_words, windows_interleaved


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    from bert_core.tokenization_fast import BertTokenizerFast

    directory = quick_text_checkpoint(tmp_path_factory.mktemp("tiny-text"))
    return directory, BertTokenizerFast.from_pretrained(directory)


def test_vocabulary_words_are_whole_words(tiny_text):
    directory, _ = tiny_text
    words = vocabulary_words(directory)
    assert "the" in words and "river" in words
    assert not any(w.startswith(("##", "[")) or len(w) == 1 for w in words)
    assert len(words) == len([w for w in QUICK_VOCAB if w.isalpha() and len(w) > 1])


def test_make_texts_hits_the_token_lengths(tiny_text):
    directory, tokenizer = tiny_text
    lengths = [8, 13, 40, 64, 8]
    texts = make_texts(lengths, tokenizer, vocabulary_words(directory))
    # every vocabulary word is one piece here, so each text encodes to exactly its target
    assert [len(ids) for ids in tokenizer(texts)["input_ids"]] == lengths
    assert len(set(texts)) == len(texts) and all(t.endswith(".") for t in texts)
    assert make_texts(lengths, tokenizer, vocabulary_words(directory)) == texts  # seeded


def test_step_clock_window():
    clock = StepClock()
    clock.ends = [1.0, 2.0, 4.0, 7.0]
    assert clock.window(1, 2) == 3.0  # steps 2 and 3: end of step 1 -> end of step 3
    assert clock.window(2, 2) == 5.0
    with pytest.raises(RuntimeError, match="needs warmup >= 1"):
        clock.window(0, 2)
    with pytest.raises(RuntimeError, match="saw 4 steps"):
        clock.window(2, 3)


def test_windows_interleaved_is_round_robin():
    calls = []

    def contender(name, seconds):
        def run():
            calls.append(name)
            return seconds.pop(0)

        return run

    timings = windows_interleaved({"a": contender("a", [3.0, 1.0, 2.0]), "b": contender("b", [5.0, 5.0, 6.0])}, 3)
    assert calls == ["a", "b"] * 3
    assert timings["a"]["median_s"] == 2.0 and timings["a"]["min_s"] == 1.0 and timings["a"]["n"] == 3
    assert timings["b"]["median_s"] == 5.0 and timings["b"]["times_s"] == [5.0, 5.0, 6.0]


def test_our_step_clock_ticks_per_reported_step_and_restores(tmp_path):
    from bert_core.training.loop import LogWriter

    original = LogWriter.progress
    log = LogWriter(tmp_path, quiet=True)
    log.start(3)
    with our_step_clock(StepClock()) as clock:
        log.progress(1, loss=0.5)
        log.progress(1, loss=0.4)
    log.progress(1)
    log.close()
    assert len(clock.ends) == 2 and clock.ends[0] <= clock.ends[1]
    assert LogWriter.progress is original


def test_compare_outputs():
    a = [{"label": "POSITIVE", "score": 0.9}, {"label": "NEGATIVE", "score": 0.6}]
    b = [{"label": "POSITIVE", "score": 0.8}, {"label": "POSITIVE", "score": 0.6}]
    got = pipeline_bench.compare("text-classification", a, b)
    assert got["label_agreement"] == 0.5 and got["max_abs_score_diff"] == pytest.approx(0.1)
    x = [np.zeros((1, 3, 2)).tolist(), np.ones((1, 1, 2)).tolist()]
    y = [np.zeros((1, 3, 2)).tolist(), np.full((1, 1, 2), 1.25).tolist()]
    assert pipeline_bench.compare("feature-extraction", x, y) == {"max_abs_diff": 0.25}
    assert pipeline_bench.compare("sentence-embedding", np.ones((2, 3)), np.zeros((2, 3))) == {"max_abs_diff": 1.0}
