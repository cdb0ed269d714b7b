"""Extractive question answering (SQuAD v1.1 / v2.0): ``BertForQuestionAnswering`` (HF ``run_qa``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from . import metrics as M
from .base import DataError, Task, arg, check_tokenizer_fast, group_by_example, output
from .qa import decode_spans
from .readers import empty_error, field, jsonl_rows, read_json, text_field


def _answers(path, where: str, value: Any, context: str) -> Dict[str, List]:
    """``{"text": [...], "answer_start": [...]}`` from SQuAD's list of ``{"text", "answer_start"}`` or HF datasets'
    dict of lists; each answer must be the context's text at its start."""
    if isinstance(value, Mapping):
        texts, starts = value.get("text"), value.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise DataError(path, where, "answers", "must have equal-length lists 'text' and 'answer_start'")
        pairs = list(zip(texts, starts))
    elif isinstance(value, list):
        pairs = []
        for i, a in enumerate(value):
            if not isinstance(a, Mapping) or "text" not in a or "answer_start" not in a:
                raise DataError(path, where, f"answers[{i}]", "must be an object with 'text' and 'answer_start'")
            pairs.append((a["text"], a["answer_start"]))
    else:
        raise DataError(path, where, "answers", f"must be a list of answers, got {type(value).__name__}")
    out: Dict[str, List] = {"text": [], "answer_start": []}
    for i, (text, start) in enumerate(pairs):
        name = f"answers[{i}]"
        if not isinstance(text, str) or not text:
            raise DataError(path, where, name, f"has text {text!r:.40}; a non-empty string is expected")
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= len(context) - len(text):
            raise DataError(
                path, where, name, f"has answer_start {start!r}, outside the context of {len(context)} characters"
            )
        if context[start : start + len(text)] != text:
            raise DataError(
                path,
                where,
                name,
                f"text {text!r:.60} is not at answer_start {start} of the context "
                f"(found {context[start : start + len(text)]!r:.60})",
            )
        out["text"].append(text)
        out["answer_start"].append(start)
    return out


class QuestionAnswering(Task):
    """Extractive QA from SQuAD v1.1/v2.0 JSON (``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
    "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}``) or JSON lines (``{"id", "question",
    "context", "answers"}``, answers as SQuAD's list or HF datasets' ``{"text": [...], "answer_start": [...]}``).

    Features are HF ``run_qa``'s: question and context with ``truncation="only_second"``, ``max_length``,
    ``doc_stride`` overlap and one row per overflow window; the answer's start/end tokens on windows that hold it,
    the CLS index elsewhere and for unanswerable (v2) questions.

    Examples: ``{"id", "title", "question", "context", "answers": {"text", "answer_start"}, "_path", "_where"}``.
    Features: ``input_ids``, ``token_type_ids``, ``attention_mask``, ``start_positions``, ``end_positions`` (the first
    answer), ``_example``, and for eval ``_offsets`` (per token ``[char_start, char_end]`` in the context, None for
    question/special tokens). Predictions: per example ``{"id", "prediction_text", "nbest", "null_score_diff"}``
    (``qa.decode_spans``, HF ``postprocess_qa_predictions``; v2 when any training or eval question has no answer).
    Metrics: ``exact_match``, ``f1`` (official SQuAD scripts; v2 adds ``HasAns_*``/``NoAns_*``).
    """

    name = "question-answering"
    head = "BertForQuestionAnswering"
    default_metric = "f1"

    def __init__(self):
        super().__init__()
        self.version_2 = False

    # -- reading -------------------------------------------------------------------------------------------------------

    def read(self, path) -> List[Dict[str, Any]]:
        suffix = Path(path).suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            examples = [self._example(path, where, row, None) for where, row in jsonl_rows(path)]
        elif suffix == ".json":
            examples = self._read_squad(path)
        else:
            raise DataError(
                path, None, None, f"has an unknown extension {suffix!r} for {self.name}: use .json or .jsonl"
            )
        if not examples:
            raise empty_error(path, "questions")
        seen: Dict[str, str] = {}
        for e in examples:
            if e["id"] in seen:
                raise DataError(path, e["_where"], "id", f"{e['id']!r} is used twice (first at {seen[e['id']]})")
            seen[e["id"]] = e["_where"]
        return examples

    def _read_squad(self, path) -> List[Dict[str, Any]]:
        root = read_json(path)
        data = root.get("data") if isinstance(root, dict) else None
        if not isinstance(data, list):
            raise DataError(path, None, "data", 'is missing: a SQuAD file is {"data": [{"paragraphs": [...]}]}')
        examples = []
        for a, article in enumerate(data):
            if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
                raise DataError(path, f"data[{a}]", "paragraphs", "must be a list")
            title = article.get("title", "")
            for p, paragraph in enumerate(article["paragraphs"]):
                where_p = f"data[{a}].paragraphs[{p}]"
                if not isinstance(paragraph, dict):
                    raise DataError(path, where_p, None, "must be an object with 'context' and 'qas'")
                context = text_field(path, where_p, paragraph, "context")
                qas = field(path, where_p, paragraph, "qas")
                if not isinstance(qas, list):
                    raise DataError(path, where_p, "qas", "must be a list")
                for q, qa in enumerate(qas):
                    where = f"{where_p}.qas[{q}]"
                    if not isinstance(qa, dict):
                        raise DataError(path, where, None, "must be an object")
                    examples.append(self._example(path, where, qa, context, title))
        return examples

    def _example(self, path, where: str, row: Mapping[str, Any], context: Optional[str], title: str = ""):
        qid = field(path, where, row, "id")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool):
            raise DataError(path, where, "id", f"must be a string, got {qid!r:.40}")
        question = text_field(path, where, row, "question")
        if not question.strip():
            raise DataError(path, where, "question", "is empty")
        if context is None:
            context = text_field(path, where, row, "context")
        impossible = bool(row.get("is_impossible", False))
        answers = {"text": [], "answer_start": []}
        if not impossible:
            answers = _answers(path, where, field(path, where, row, "answers"), context)
        return {
            "id": str(qid),
            "title": row.get("title", title),
            "question": question,
            "context": context,
            "answers": answers,
            "_path": str(path),
            "_where": where,
        }

    def label_config(self, examples) -> Dict[str, Any]:
        """No labels to configure; remembers whether the training data is SQuAD v2 (unanswerable questions)."""
        self.version_2 = self.version_2 or any(not e["answers"]["text"] for e in examples)
        return {}

    # -- features ------------------------------------------------------------------------------------------------------

    def features(self, examples, tokenizer, args, training: bool) -> List[Dict[str, Any]]:
        check_tokenizer_fast(tokenizer, self.name)
        self._bind_tokenizer(tokenizer)
        self.label_config(examples)
        max_length, stride = int(arg(args, "max_length")), int(arg(args, "doc_stride"))
        pad_on_right = tokenizer.padding_side == "right"
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        if stride >= max_length - specials:
            raise ValueError(
                f"doc_stride={stride} must be smaller than max_length={max_length} minus the {specials} special "
                f"tokens (and the question): e.g. doc_stride={max(1, (max_length - specials) // 4)}"
            )
        questions = [e["question"].lstrip() for e in examples]  # as run_qa: leading spaces only waste window room
        contexts = [e["context"] for e in examples]
        enc = self._encode(tokenizer, examples, questions, contexts, max_length, stride, pad_on_right)
        mapping = enc["overflow_to_sample_mapping"]
        context_index = 1 if pad_on_right else 0
        rows = []
        for i, offsets in enumerate(enc["offset_mapping"]):
            input_ids = enc["input_ids"][i]
            sequence_ids = enc.sequence_ids(i)
            e = mapping[i]
            row = {
                "input_ids": input_ids,
                "token_type_ids": enc["token_type_ids"][i],
                "attention_mask": enc["attention_mask"][i],
            }
            row["start_positions"], row["end_positions"] = _answer_tokens(
                examples[e]["answers"], input_ids, offsets, sequence_ids, context_index, tokenizer.cls_token_id
            )
            row["_example"] = e
            if not training:
                row["_offsets"] = [list(o) if sequence_ids[k] == context_index else None for k, o in enumerate(offsets)]
            rows.append(row)
        return rows

    def _encode(self, tokenizer, examples, questions, contexts, max_length, stride, pad_on_right):
        first, second = (questions, contexts) if pad_on_right else (contexts, questions)
        kwargs = dict(
            truncation="only_second" if pad_on_right else "only_first",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        try:
            return tokenizer(first, second, **kwargs)
        except ValueError:
            # find the question that does not fit, to name it
            for e, (a, b) in enumerate(zip(first, second)):
                try:
                    tokenizer(a, b, **kwargs)
                except ValueError as err:
                    n = len(tokenizer(questions[e], add_special_tokens=False)["input_ids"])
                    raise DataError(
                        examples[e].get("_path"),
                        examples[e].get("_where"),
                        "question",
                        f"has {n} tokens: with max_length={max_length} and doc_stride={stride} no window is left "
                        f"for the context ({err})",
                    ) from None
            raise

    # -- evaluation ----------------------------------------------------------------------------------------------------

    def postprocess(self, outputs, features, examples, args) -> List[Dict[str, Any]]:
        start = output(outputs, "start_logits", self.name, len(features))
        end = output(outputs, "end_logits", self.name, len(features))
        for i, f in enumerate(features):
            if "_offsets" not in f:
                raise ValueError(f"feature {i} has no _offsets: build eval features with training=False")
        version_2 = self.version_2 or any(not e["answers"]["text"] for e in examples)
        predictions = []
        for e, indices in enumerate(group_by_example(features, len(examples))):
            if not indices:
                raise ValueError(f"example {e} ({examples[e]['id']!r}) has no features")
            lengths = [len(features[i]["input_ids"]) for i in indices]
            result = decode_spans(
                [start[i, :n] for i, n in zip(indices, lengths)],
                [end[i, :n] for i, n in zip(indices, lengths)],
                [features[i]["_offsets"] for i in indices],
                examples[e]["context"],
                n_best_size=int(arg(args, "n_best_size")),
                max_answer_length=int(arg(args, "max_answer_length")),
                version_2_with_negative=version_2,
            )
            predictions.append({"id": examples[e]["id"], **result})
        return predictions

    def metrics(self, predictions, examples) -> Dict[str, float]:
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
        version_2 = self.version_2 or any(not e["answers"]["text"] for e in examples)
        return M.squad_scores(
            {p["id"]: p["prediction_text"] for p in predictions},
            {e["id"]: e["answers"]["text"] for e in examples},
            version_2=version_2,
        )


def _answer_tokens(answers, input_ids, offsets, sequence_ids, context_index: int, cls_token_id) -> tuple:
    """(start, end) token of the first answer in this window, or the CLS index twice (HF ``run_qa``)."""
    cls_index = input_ids.index(cls_token_id) if cls_token_id in input_ids else 0
    if not answers["answer_start"]:
        return cls_index, cls_index
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    in_context = [k for k, s in enumerate(sequence_ids) if s == context_index]
    if not in_context:  # a context with no tokens (only whitespace) holds no answer
        return cls_index, cls_index
    first, last = in_context[0], in_context[-1]
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return cls_index, cls_index
    # run_qa lets this loop run on past the context (SEP, padding) when the answer starts in the window's last
    # context token, and labels a padding position; it stops at the last context token here
    context_last = last
    while first <= context_last and offsets[first][0] <= start_char:
        first += 1
    while offsets[last][1] >= end_char:
        last -= 1
    return first - 1, last + 1
