"""``text-classification``: labels of a text or a text pair, as HF's ``TextClassificationPipeline``."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .base import (
    Pipeline,
    PipelineError,
    check_choice,
    check_int,
    check_text,
    check_tokenizer_kwargs,
    features_of,
    is_stream,
    record_fields,
    sigmoid,
    softmax,
)

FUNCTIONS = ("none", "sigmoid", "softmax")
_LEGACY = ""  # HF's sentinel: top_k not given -> one {"label", "score"} per text


def default_function(config) -> str:
    """HF's choice from the config: regression -> none; multi-label or one label -> sigmoid; else softmax."""
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def apply_function(name: str, logits: np.ndarray) -> np.ndarray:
    return {"none": lambda x: x, "sigmoid": sigmoid, "softmax": softmax}[name](logits)


class TextClassificationPipeline(Pipeline):
    """Scores of the labels of ``config.id2label`` for a text or a pair.

    Call: ``pipe(inputs, top_k=<not given>, function_to_apply=None, truncation=None, max_length=None)``. ``inputs``:
    a text, ``{"text": ..., "text_pair": ...}``, or a list of those. Without ``top_k`` each text gives its best
    ``{"label", "score"}`` (one text: a list holding it, as HF); ``top_k=k`` gives the ``k`` best, ``top_k=None``
    every label, best first. ``function_to_apply``: ``"softmax"``, ``"sigmoid"`` or ``"none"`` (default from the
    config's ``problem_type`` / ``num_labels``).
    """

    task = "text-classification"
    head = "BertForSequenceClassification"
    parameters = {"top_k": _LEGACY, "function_to_apply": None, "truncation": None, "max_length": None}

    def _resolve(self, params: Dict[str, Any], explicit: Mapping[str, Any]) -> Dict[str, Any]:
        top_k = params["top_k"]
        if top_k is not None and top_k != _LEGACY:
            params["top_k"] = check_int("top_k", top_k, 1)
        params["legacy"] = top_k == _LEGACY
        if params["function_to_apply"] is None:
            params["function_to_apply"] = default_function(self.config)
        else:
            params["function_to_apply"] = check_choice("function_to_apply", params["function_to_apply"], FUNCTIONS)
        tokenizer_kwargs = {k: params[k] for k in ("truncation", "max_length") if params[k] is not None}
        params["tokenizer_kwargs"] = check_tokenizer_kwargs(self.task, tokenizer_kwargs)
        return params

    def __call__(self, inputs: Any, **params: Any) -> Any:
        wrap = "top_k" not in params  # HF decides the wrapping from the call's own arguments
        params = self.resolve_options(params)
        if is_stream(inputs):
            return self._iterate(inputs, params, self._item)
        if isinstance(inputs, (list, tuple)):
            return list(self.run([self._item(x) for x in inputs], params))
        result = next(self.run([self._item(inputs)], params))
        return [result] if isinstance(inputs, str) and wrap else result

    def _item(self, value: Any) -> Tuple[str, Optional[str]]:
        if isinstance(value, str):
            return value, None
        if isinstance(value, dict):
            extra = sorted(set(value) - {"text", "text_pair"})
            if "text" not in value or extra:
                raise PipelineError(
                    f"a text pair is a dict with keys 'text' and optionally 'text_pair'; got keys {sorted(value)}"
                )
            pair = value.get("text_pair")
            return check_text("text", value["text"]), None if pair is None else check_text("text_pair", pair)
        if _is_legacy_pair(value):
            return check_text("text", value[0][0]), check_text("text_pair", value[0][1])
        raise PipelineError(
            "text-classification takes a str or a dict {'text': ..., 'text_pair': ...} per input; "
            f"got {type(value).__name__} (send a text pair as such a dict)"
        )

    def item_from_json(self, value: Any) -> Tuple[str, Optional[str]]:
        return self._item(record_fields(self.task, value, ("text",), ("text_pair",)))

    def preprocess(self, item: Tuple[str, Optional[str]], params: Mapping[str, Any]) -> List[Dict[str, Any]]:
        text, pair = item
        return [features_of(self.tokenizer(text, pair, **params["tokenizer_kwargs"]))]

    def select(self, feature: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return outputs["logits"]  # (num_labels,)

    def postprocess(self, item, features, selected, params) -> Any:
        scores = apply_function(params["function_to_apply"], selected[0])
        labels = self.config.id2label
        top_k = params["top_k"]
        if params["legacy"]:
            best = int(scores.argmax())
            return {"label": labels[best], "score": float(scores[best])}
        ranked = sorted(
            ({"label": labels[i], "score": float(s)} for i, s in enumerate(scores)),
            key=lambda x: x["score"],
            reverse=True,
        )
        return ranked if top_k is None else ranked[:top_k]


def _is_legacy_pair(value: Any) -> bool:
    """HF's old pair form: one input written ``[[text, text_pair]]`` (so a batch of them is ``[[[a, b]], ...]``)."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 1
        and isinstance(value[0], (list, tuple))
        and len(value[0]) == 2
    )
