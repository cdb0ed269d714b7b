"""``question-answering``: answer spans of a context, as HF's ``QuestionAnsweringPipeline``.

A long context is cut into overlapping windows (``max_seq_len`` tokens, ``doc_stride`` overlap). In each window the
start and end logits outside the context are masked, turned into probabilities, and spans ranked by
``p_start * p_end`` (``bert_core.tasks.qa.top_spans`` on log-probabilities); the spans of every window become
character spans of the original context, and equal answers (case-insensitive) add up their scores.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from ..tasks.qa import top_spans
from .base import Pipeline, PipelineError, check_int, check_text, features_of, is_stream, record_fields

_MASKED = -10000.0  # HF's logit for tokens that cannot be in the answer


def _example(question: Any, context: Any) -> Tuple[str, str]:
    for name, value in (("question", question), ("context", context)):
        if value is None:
            raise PipelineError(f"`{name}` cannot be None")
        check_text(name, value)
        if not value:
            raise PipelineError(f"`{name}` cannot be empty")
    return question, context


def _from_dict(value: Any) -> Tuple[str, str]:
    if not isinstance(value, dict):
        raise PipelineError(f"a question-answering input is a dict {{'question': ..., 'context': ...}}; got {value!r}")
    missing = [k for k in ("question", "context") if k not in value]
    if missing:
        raise PipelineError(f"a question-answering input needs the keys question and context; missing {missing}")
    return _example(value["question"], value["context"])


class QuestionAnsweringPipeline(Pipeline):
    """Extractive answers from a ``BertForQuestionAnswering``.

    Call: ``pipe(question=..., context=...)``, ``pipe({"question": ..., "context": ...})``, or lists of those;
    options ``top_k=1``, ``doc_stride=min(max_seq_len // 2, 128)``, ``max_answer_len=15``,
    ``max_seq_len=min(model_max_length, 384)``, ``max_question_len=64`` (accepted and unused, as in HF's fast path),
    ``handle_impossible_answer=False``, ``align_to_words=True``. An answer is ``{"score", "start", "end",
    "answer"}`` (character span of the context); ``top_k > 1`` gives a list, best first (a dict when only one
    answer exists); several examples give one result each.
    """

    task = "question-answering"
    head = "BertForQuestionAnswering"
    token_outputs = ("start_logits", "end_logits")
    parameters = {
        "top_k": 1,
        "doc_stride": None,
        "max_answer_len": 15,
        "max_seq_len": None,
        "max_question_len": 64,
        "handle_impossible_answer": False,
        "align_to_words": True,
    }

    def _setup(self) -> None:
        if not self.tokenizer.is_fast:
            raise PipelineError(
                "question-answering needs a fast tokenizer for character offsets: pass BertTokenizerFast "
                "(BertTokenizerFast.from_slow(tokenizer) converts one)"
            )
        if self.tokenizer.padding_side != "right":
            raise PipelineError(
                "question-answering puts the question first: the tokenizer's padding_side must be 'right'"
            )

    def _resolve(self, params: Dict[str, Any], explicit: Mapping[str, Any]) -> Dict[str, Any]:
        params["top_k"] = check_int("top_k", params["top_k"], 1)
        params["max_answer_len"] = check_int("max_answer_len", params["max_answer_len"], 1)
        max_seq_len = params["max_seq_len"]
        max_seq_len = min(self.tokenizer.model_max_length, 384) if max_seq_len is None else max_seq_len
        params["max_seq_len"] = check_int("max_seq_len", max_seq_len, 4)
        stride = params["doc_stride"]
        stride = min(params["max_seq_len"] // 2, 128) if stride is None else check_int("doc_stride", stride, 0)
        if stride > params["max_seq_len"]:
            raise PipelineError(f"`doc_stride` ({stride}) is larger than `max_seq_len` ({params['max_seq_len']})")
        params["doc_stride"] = stride
        check_int("max_question_len", params["max_question_len"], 1)
        return params

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        question = kwargs.pop("question", None)
        context = kwargs.pop("context", None)
        params = self.resolve_options(kwargs)
        if args and (question is not None or context is not None):
            raise PipelineError("pass the examples positionally or as question=/context=, not both")
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            question, context = args
            args = ()
        if args:
            inputs = args[0] if len(args) == 1 else list(args)
            if is_stream(inputs):
                return self._iterate(inputs, params, _from_dict)
            items = [_from_dict(inputs)] if isinstance(inputs, dict) else [_from_dict(x) for x in inputs]
        elif question is not None and context is not None:
            if isinstance(question, list) and isinstance(context, str):
                items = [_example(q, context) for q in question]
            elif isinstance(question, list) and isinstance(context, list):
                if len(question) != len(context):
                    raise PipelineError(
                        f"questions and contexts must be lists of one length; got {len(question)} and {len(context)}"
                    )
                items = [_example(q, c) for q, c in zip(question, context)]
            else:
                items = [_example(question, context)]
        else:
            raise PipelineError("question-answering needs question= and context= (or dicts with both keys)")
        results = list(self.run(items, params))
        return results[0] if len(results) == 1 else results

    def item_from_json(self, value: Any) -> Tuple[str, str]:
        return _from_dict(record_fields(self.task, value, ("question", "context")))

    def preprocess(self, item: Tuple[str, str], params: Mapping[str, Any]) -> List[Dict[str, Any]]:
        question, context = item
        try:
            enc = self.tokenizer(
                question,
                context,
                truncation="only_second",
                max_length=params["max_seq_len"],
                stride=params["doc_stride"],
                return_token_type_ids=True,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
            )
        except ValueError as err:
            if "too short" not in str(err) and "truncate" not in str(err):
                raise
            raise PipelineError(
                f"the question is {len(self.tokenizer.tokenize(question))} tokens: with max_seq_len="
                f"{params['max_seq_len']} and doc_stride={params['doc_stride']} no room is left for the context "
                "(shorten the question, raise max_seq_len or lower doc_stride)"
            ) from err
        features = []
        for r in range(len(enc["input_ids"])):
            # the context's tokens and [CLS] may be in an answer (CLS: the model's "no answer")
            allowed = np.array([s == 1 for s in enc.sequence_ids(r)])
            allowed |= np.array(enc["input_ids"][r]) == self.tokenizer.cls_token_id
            features.append(features_of(enc, row=r, allowed=allowed, encoding=enc[r]))
        return features

    def select(self, feature: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        return outputs["start_logits"], outputs["end_logits"]

    def postprocess(self, item, features, selected, params) -> Any:
        context = item[1]
        top_k = params["top_k"]
        # some spans vanish when aligned to words (two spans, one word): look at more of them
        candidates = top_k * 2 + 10 if params["align_to_words"] else top_k
        min_null_score = 1000000.0
        answers: List[Dict[str, Any]] = []
        for feature, (start_logits, end_logits) in zip(features, selected):
            allowed = feature["allowed"]
            start = _probabilities(start_logits, allowed)
            end = _probabilities(end_logits, allowed)
            if params["handle_impossible_answer"]:
                min_null_score = min(min_null_score, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            with np.errstate(divide="ignore"):  # log(0) = -inf: masked tokens and [CLS] rank last
                starts, ends, _ = top_spans(np.log(start), np.log(end), allowed, params["max_answer_len"], candidates)
            enc = feature["encoding"]
            for s, e in zip(starts.tolist(), ends.tolist()):
                score = float(start[s] * end[e])
                if score == 0.0:
                    # [CLS] or masked: HF's search may pad its list with such spans when few score above 0 (which
                    # ones depends on numpy's tie order); they never outrank a real answer, so none is kept
                    continue
                begin, finish = _char_span(enc, s, e, params["align_to_words"])
                text = context[begin:finish]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += score
                else:
                    answers.append({"score": score, "start": begin, "end": finish, "answer": text})
        if params["handle_impossible_answer"]:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers


def _probabilities(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Softmax over one window with the tokens outside ``allowed`` masked (HF: -10000, then normalised)."""
    x = np.where(allowed, logits, np.float32(_MASKED)).astype(np.float32)
    x = np.exp(x - x.max())
    return x / x.sum()


def _char_span(enc: Any, s: int, e: int, align_to_words: bool) -> Tuple[int, int]:
    """Tokens ``s..e`` of window ``enc`` -> a character span of the context (whole words when aligning)."""
    if align_to_words:
        try:
            start_word, end_word = enc.token_to_word(s), enc.token_to_word(e)
            return enc.word_to_chars(start_word, sequence_index=1)[0], enc.word_to_chars(end_word, sequence_index=1)[1]
        except Exception:  # noqa: BLE001 - [CLS] has no word: HF keeps the token offsets then
            pass
    return enc.offsets[s][0], enc.offsets[e][1]
