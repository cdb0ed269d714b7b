"""Length-bucketed batches (bert_core.batching) give each sequence the same outputs as running it alone."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import frameworks as fw
from benchmarks.workloads import corpus_lengths, make_corpus_ids, pad_to_longest_batches, quick_config
from bert_core import init_weights, save_pretrained
from bert_core.batching import run_bucketed

MODULES = {"torch": ["torch", "bert_torch"], "tf": ["tensorflow", "bert_tf"], "flax": ["jax", "flax", "bert_flax"]}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    config = quick_config()
    path = tmp_path_factory.mktemp("tiny-bert")
    save_pretrained(path, config, init_weights(config, "BertModel", seed=1), architecture="BertModel")
    return str(path), config


def test_corpus_is_skewed_short():
    lengths = corpus_lengths(512)
    assert lengths.min() >= 8 and lengths.max() == 512
    assert np.median(lengths) < 80 < lengths.mean() * 2


@pytest.mark.parametrize("framework", fw.FRAMEWORKS)
def test_bucketed_equals_per_sequence(framework, tiny_ckpt):
    for module in MODULES[framework]:
        pytest.importorskip(module)
    ckpt, config = tiny_ckpt
    lengths = corpus_lengths(20, max_len=64, seed=3)
    ids = make_corpus_ids(lengths, config.vocab_size)
    forward = fw.make_forward(framework, "ours", ckpt, "fp32")
    bucketed = run_bucketed(forward, ids, batch_size=4, pad_to_multiple_of=8)
    for i, seq in enumerate(ids):
        alone = forward(
            {
                "input_ids": np.asarray([seq]),
                "attention_mask": np.ones((1, len(seq)), np.int64),
                "token_type_ids": np.zeros((1, len(seq)), np.int64),
            }
        )[0]
        np.testing.assert_allclose(bucketed[i], alone, atol=1e-5, rtol=0)
    # and equal to HF-style pad-to-longest batches
    for idx, batch in pad_to_longest_batches(ids, 6):
        out = forward(batch)
        for r, i in enumerate(idx):
            np.testing.assert_allclose(out[r, : len(ids[i])], bucketed[i], atol=1e-5, rtol=0)
