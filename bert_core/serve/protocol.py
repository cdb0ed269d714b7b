"""Request bodies -> pipeline calls, and pipeline results -> response bodies, for every route (framework-free).

A route's parser checks the JSON body field by field (a missing, misspelt or mistyped field is a
:class:`~bert_core.serve.errors.ServeError` naming it) and returns a :class:`Plan`: the pipeline items, the
resolved pipeline options and a ``finish`` step that turns each item's selected model outputs into the response.
The server preprocesses the items, runs their features through the dynamic batcher, then calls ``finish``.

Shapes (TEI's where the task fits; docs/serve.md has examples):

* ``/embed`` ``{"inputs": str | [str], "normalize": true, "truncate": false}`` -> ``[[float, ...], ...]``
* ``/embed_all`` (feature-extraction) same body without ``normalize`` -> ``[[[float, ...] per token], ...]``
* ``/predict`` text-classification ``{"inputs": str | [str | [str, str]], "raw_scores": false, "truncate": false,
  "top_k": null}`` -> ``[{"label", "score"}, ...]`` for a str, one such list per input for a list
* ``/predict`` other tasks ``{"inputs": <one input> | [<input>, ...], <task options>}`` -> the pipeline's result
  (one, or one per input for a list), as JSON
* ``/rerank`` ``{"query": str, "texts": [str], "raw_scores": false, "return_text": false, "truncate": false}``
  -> ``[{"index", "score"(, "text")}, ...]`` best first
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..pipelines.base import PipelineError, sigmoid, softmax
from ..pipelines.sentence_embedding import normalize as unit_norm
from ..pipelines.sentence_embedding import pool
from .errors import ServeError, too_large

#: route -> the tasks it serves
ROUTE_TASKS = {
    "/embed": ("sentence-embedding", "feature-extraction"),
    "/embed_all": ("feature-extraction",),
    "/predict": (
        "text-classification",
        "token-classification",
        "question-answering",
        "fill-mask",
        "zero-shot-classification",
    ),
    "/rerank": ("text-classification",),
}
#: /predict options per task (body field = pipeline option); tokenizer internals are not exposed
PREDICT_OPTIONS = {
    "token-classification": ("aggregation_strategy", "ignore_labels", "stride"),
    "question-answering": (
        "top_k",
        "doc_stride",
        "max_answer_len",
        "max_seq_len",
        "handle_impossible_answer",
        "align_to_words",
    ),
    "fill-mask": ("top_k", "targets", "truncate"),
    "zero-shot-classification": ("candidate_labels", "hypothesis_template", "multi_label"),
}


@dataclass
class Limits:
    """The request limits of one server.

    Attributes:
        max_input_length: tokens one model row may hold (the model's and tokenizer's limit).
        max_client_batch_size: inputs one request may send.
    """

    max_input_length: int
    max_client_batch_size: int = 32


@dataclass
class Plan:
    """One request, ready to run.

    Attributes:
        items: the pipeline's input items, one per input of the request.
        params: the pipeline options of this request, resolved (``pipe.resolve_options``).
        finish: ``finish(features, selected) -> response body``; both are per item (lists of the item's features
            and of their selected model outputs).
        truncate: False when a row longer than the limit is an error the client can fix with ``truncate=true``;
            None when the task cuts long inputs into windows itself.
        full_length: ``full_length(item) -> tokens before truncation``, for pipelines that always truncate (asked
            only when a row reaches the limit exactly).
    """

    items: List[Any]
    params: Dict[str, Any]
    finish: Callable[[List[List[Dict[str, Any]]], List[List[Any]]], Any]
    truncate: Optional[bool] = None
    full_length: Optional[Callable[[Any], int]] = None


# ------------------------------------------------------------------------------------------------ field checks


def check_fields(body: Any, route: str, required: Sequence[str], optional: Sequence[str]) -> Dict[str, Any]:
    """``body`` as a dict holding ``required``, maybe ``optional``, nothing else."""
    if not isinstance(body, dict):
        raise ServeError(f"{route}: the body must be a JSON object; got {_json_type(body)}")
    missing = [k for k in required if k not in body]
    unknown = sorted(set(body) - set(required) - set(optional))
    if missing or unknown:
        fields = ", ".join(list(required) + [f"{k} (optional)" for k in optional])
        problems = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
        raise ServeError(f"{route}: the body has the fields {fields}; {'; '.join(problems)}")
    return body


def get_bool(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ServeError(f"{name} must be true or false; got {_json_type(value)} {value!r}")
    return value


def get_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ServeError(f"{name} must be a string; got {_json_type(value)}")
    return value


def get_batch(value: Any, name: str, limits: Limits) -> List[Any]:
    """A non-empty JSON list of at most ``max_client_batch_size`` elements."""
    if not isinstance(value, list):
        raise ServeError(f"{name} must be a list; got {_json_type(value)}")
    if not value:
        raise ServeError(f"{name} is an empty list; send at least one input", "Empty")
    if len(value) > limits.max_client_batch_size:
        raise too_large(
            f"{name} holds {len(value)} inputs; this server takes at most {limits.max_client_batch_size} per "
            "request (--max-client-batch-size)"
        )
    return value


def get_texts(value: Any, name: str, limits: Limits) -> Tuple[List[str], bool]:
    """``str | [str]`` -> (texts, whether one str was sent)."""
    if isinstance(value, str):
        return [value], True
    if not isinstance(value, list):
        raise ServeError(f"{name} must be a string or a list of strings; got {_json_type(value)}")
    texts = get_batch(value, name, limits)
    for i, text in enumerate(texts):
        get_text(text, f"{name}[{i}]")
    return texts, False


def check_direction(body: Mapping[str, Any]) -> None:
    """TEI's ``truncation_direction``: only ``right`` (the tokenizer's side) is served."""
    value = body.get("truncation_direction", "right")
    if not isinstance(value, str) or value.lower() != "right":
        raise ServeError(f"truncation_direction must be 'right' (the only side served); got {value!r}")


def resolve(pipe: Any, options: Mapping[str, Any]) -> Dict[str, Any]:
    try:
        return pipe.resolve_options(options)
    except PipelineError as err:
        raise ServeError(str(err)) from None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


# ------------------------------------------------------------------------------------------------ routes


def embed_plan(pipe: Any, body: Any, limits: Limits, all_tokens: bool = False) -> Plan:
    """``/embed`` (one vector per text) or ``/embed_all`` (``all_tokens``: every token's vector)."""
    route = "/embed_all" if all_tokens else "/embed"
    optional = (() if all_tokens else ("normalize",)) + ("truncate", "truncation_direction")
    body = check_fields(body, route, ("inputs",), optional)
    texts, _ = get_texts(body["inputs"], "inputs", limits)
    truncate = get_bool(body, "truncate", False)
    norm = False if all_tokens else get_bool(body, "normalize", True)
    check_direction(body)
    if pipe.task == "sentence-embedding":
        params = resolve(pipe, {"normalize": norm})

        def finish(features, selected):
            return [pipe.postprocess(t, f, s, params).tolist() for t, f, s in zip(texts, features, selected)]

        return Plan(texts, params, finish, truncate, full_length=lambda text: _full_length(pipe, text))
    # feature-extraction: token vectors; /embed pools them by their mean (sentence-transformers' default)
    kwargs = {"truncation": True, "max_length": limits.max_input_length} if truncate else {}
    params = resolve(pipe, {"tokenize_kwargs": kwargs, "return_tensors": True})

    def finish(features, selected):
        if all_tokens:
            return [s[0].tolist() for s in selected]
        vectors = np.stack([pool(s[0], ("mean",)) for s in selected])
        return (unit_norm(vectors) if norm else vectors).tolist()

    return Plan(texts, params, finish, truncate)


def _full_length(pipe: Any, text: str) -> int:
    if pipe.pooling.do_lower_case:
        text = text.lower()
    return len(pipe.tokenizer(text)["input_ids"])


def predict_plan(pipe: Any, body: Any, limits: Limits) -> Plan:
    """``/predict``: TEI's shape for text-classification, the pipeline's own arguments for the other tasks."""
    if pipe.task == "text-classification":
        return _classify_plan(pipe, body, limits)
    options = PREDICT_OPTIONS[pipe.task]
    body = check_fields(body, "/predict", ("inputs",), options)
    inputs = body["inputs"]
    single = not isinstance(inputs, list)
    values = [inputs] if single else get_batch(inputs, "inputs", limits)
    items = []
    for i, value in enumerate(values):
        try:
            items.append(pipe.item_from_json(value))
        except PipelineError as err:
            raise ServeError(f"inputs{'' if single else f'[{i}]'}: {err}") from None
    call = {k: v for k, v in body.items() if k not in ("inputs", "truncate")}
    truncate = None
    if "truncate" in options:
        truncate = get_bool(body, "truncate", False)
        if truncate:
            call["tokenizer_kwargs"] = {"truncation": True, "max_length": limits.max_input_length}
    params = resolve(pipe, call)

    def finish(features, selected):
        results = [pipe.to_json(pipe.postprocess(t, f, s, params)) for t, f, s in zip(items, features, selected)]
        return results[0] if single else results

    return Plan(items, params, finish, False if truncate is not None else None)


def _classify_plan(pipe: Any, body: Any, limits: Limits) -> Plan:
    body = check_fields(body, "/predict", ("inputs",), ("raw_scores", "truncate", "truncation_direction", "top_k"))
    inputs = body["inputs"]
    single = isinstance(inputs, str)
    items = [(inputs, None)] if single else [_sequence(v, i) for i, v in enumerate(get_batch(inputs, "inputs", limits))]
    raw = get_bool(body, "raw_scores", False)
    truncate = get_bool(body, "truncate", False)
    check_direction(body)
    call: Dict[str, Any] = {"top_k": body.get("top_k")}
    if raw:
        call["function_to_apply"] = "none"
    if truncate:
        call.update(truncation=True, max_length=limits.max_input_length)
    params = resolve(pipe, call)

    def finish(features, selected):
        results = [pipe.to_json(pipe.postprocess(t, f, s, params)) for t, f, s in zip(items, features, selected)]
        return results[0] if single else results

    return Plan(items, params, finish, truncate)


def _sequence(value: Any, i: int) -> Tuple[str, Optional[str]]:
    """One /predict input: ``"text"`` or a pair ``["text", "text_pair"]`` (``[text]`` is one text)."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, list) and len(value) in (1, 2) and all(isinstance(v, str) for v in value):
        return value[0], (value[1] if len(value) == 2 else None)
    raise ServeError(
        f"inputs[{i}] must be a string or a pair [string, string]; got {_json_type(value)} {str(value)[:80]}"
    )


def rerank_plan(pipe: Any, body: Any, limits: Limits) -> Plan:
    """``/rerank`` on a cross-encoder: one score per (query, text), from a single logit (sigmoid) or from two
    (softmax, the score of label 1); ``raw_scores``: that logit itself."""
    num_labels = pipe.config.num_labels
    if num_labels not in (1, 2):
        raise ServeError(
            f"/rerank needs a cross-encoder with 1 output (relevance logit) or 2 (label 1 = relevant); "
            f"this model has {num_labels} labels ({', '.join(map(str, pipe.config.id2label.values()))})",
            "Unsupported",
        )
    body = check_fields(
        body, "/rerank", ("query", "texts"), ("raw_scores", "return_text", "truncate", "truncation_direction")
    )
    query = get_text(body["query"], "query")
    texts, _ = get_texts(get_batch(body["texts"], "texts", limits), "texts", limits)
    raw = get_bool(body, "raw_scores", False)
    return_text = get_bool(body, "return_text", False)
    truncate = get_bool(body, "truncate", False)
    check_direction(body)
    call: Dict[str, Any] = {"function_to_apply": "none"}
    if truncate:
        call.update(truncation=True, max_length=limits.max_input_length)
    params = resolve(pipe, call)

    def finish(features, selected):
        logits = np.stack([s[0] for s in selected]).astype(np.float64)  # (texts, num_labels)
        if num_labels == 1:
            scores = logits[:, 0] if raw else sigmoid(logits[:, 0])
        else:
            scores = logits[:, 1] if raw else softmax(logits, axis=-1)[:, 1]
        order = np.argsort(-scores, kind="stable")
        return [
            {"index": int(i), "score": float(scores[i]), **({"text": texts[i]} if return_text else {})} for i in order
        ]

    return Plan([(query, t) for t in texts], params, finish, truncate)


PLANS = {
    "/embed": embed_plan,
    "/embed_all": lambda pipe, body, limits: embed_plan(pipe, body, limits, all_tokens=True),
    "/predict": predict_plan,
    "/rerank": rerank_plan,
}


def make_plan(route: str, pipe: Any, body: Any, limits: Limits) -> Plan:
    """The :class:`Plan` of one request to ``route``; ServeError when the task has no such route or the body is bad."""
    if pipe.task not in ROUTE_TASKS[route]:
        serving = [r for r, tasks in ROUTE_TASKS.items() if pipe.task in tasks]
        raise ServeError(
            f"{route} serves {', '.join(ROUTE_TASKS[route])}; this server runs {pipe.task} "
            f"(its routes: {', '.join(serving)})",
            "Unsupported",
        )
    return PLANS[route](pipe, body, limits)
