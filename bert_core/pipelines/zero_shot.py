"""``zero-shot-classification``: labels chosen at call time, scored by an NLI model (HF's
``ZeroShotClassificationPipeline``): each label becomes a hypothesis, its entailment logit its score."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from .base import Pipeline, PipelineError, check_text, features_of, is_stream, record_fields

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "This example is {}."


def parse_labels(labels: Any) -> List[str]:
    """``"a, b"`` -> ``["a", "b"]``; a list is kept (every entry must be a str)."""
    if isinstance(labels, str):
        return [label.strip() for label in labels.split(",") if label.strip()]
    if not isinstance(labels, (list, tuple)):
        raise PipelineError(f"candidate_labels must be a str 'a, b' or a list of str; got {type(labels).__name__}")
    return [check_text("candidate_labels[]", label) for label in labels]


class ZeroShotClassificationPipeline(Pipeline):
    """Scores of candidate labels for a text, from a ``BertForSequenceClassification`` trained on NLI.

    Call: ``pipe(text_or_texts, candidate_labels, hypothesis_template="This example is {}.", multi_label=False)``.
    Each text gives ``{"sequence", "labels", "scores"}``, labels best first. ``multi_label=False``: a softmax of
    the entailment logits over the labels (scores sum to 1); ``True`` (or one label): each label on its own,
    entailment against contradiction. The entailment id is the first ``label2id`` entry starting with "entail".
    """

    task = "zero-shot-classification"
    head = "BertForSequenceClassification"
    parameters = {"candidate_labels": None, "hypothesis_template": DEFAULT_TEMPLATE, "multi_label": False}

    @property
    def entailment_id(self) -> int:
        for label, index in self.config.label2id.items():
            if label.lower().startswith("entail"):
                return int(index)
        return -1

    def _setup(self) -> None:
        if self.entailment_id == -1:
            logger.warning(
                "Failed to determine 'entailment' label id from the label2id mapping in the model config. Setting to "
                "-1. Define a descriptive label2id mapping in the model config to ensure correct outputs."
            )

    def _resolve(self, params: Dict[str, Any], explicit: Mapping[str, Any]) -> Dict[str, Any]:
        if params["candidate_labels"] is not None:
            params["candidate_labels"] = parse_labels(params["candidate_labels"])
        check_text("hypothesis_template", params["hypothesis_template"])
        if not isinstance(params["multi_label"], bool):
            raise PipelineError(f"multi_label must be True or False; got {params['multi_label']!r}")
        return params

    def __call__(self, inputs: Any, *args: Any, **params: Any) -> Any:
        if len(args) == 1 and "candidate_labels" not in params:
            params["candidate_labels"] = args[0]
        elif args:
            raise PipelineError(f"unable to understand extra arguments {args}")
        params = self.resolve_options(params)
        to_item = lambda text: (text, params["candidate_labels"])  # noqa: E731
        if is_stream(inputs):
            return self._iterate(inputs, params, to_item)
        if isinstance(inputs, str):
            return next(self.run([to_item(inputs)], params))
        return list(self.run([to_item(x) for x in inputs], params))

    def item_from_json(self, value: Any) -> Tuple[Any, Any]:
        fields = record_fields(self.task, value, ("text",), ("candidate_labels",))
        labels = fields.get("candidate_labels")
        return fields["text"], None if labels is None else parse_labels(labels)

    def preprocess(self, item: Tuple[Any, Any], params: Mapping[str, Any]) -> List[Dict[str, Any]]:
        text, labels = item
        text = check_text("text", text)
        labels = params["candidate_labels"] if labels is None else labels
        template = params["hypothesis_template"]
        if not labels or not text:
            raise PipelineError("zero-shot-classification needs at least one candidate label and a non-empty text")
        if template.format(labels[0]) == template:
            raise PipelineError(
                f'hypothesis_template "{template}" has no place for the label: include {{}} where it goes'
            )
        features = []
        for label in labels:
            hypothesis = template.format(label)
            try:  # the text is cut, never the hypothesis
                enc = self.tokenizer(text, hypothesis, truncation="only_first")
            except ValueError as err:
                if "too short" not in str(err):
                    raise
                enc = self.tokenizer(text, hypothesis, truncation=False)
            features.append(features_of(enc, label=label))
        return features

    def select(self, feature: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return outputs["logits"]

    def postprocess(self, item, features, selected, params) -> Dict[str, Any]:
        labels = [f["label"] for f in features]
        logits = np.stack(selected)  # (labels, num_nli_labels)
        entailment = self.entailment_id
        if params["multi_label"] or len(labels) == 1:
            contradiction = -1 if entailment == 0 else 0
            pair = logits[:, [contradiction, entailment]]
            scores = (np.exp(pair) / np.exp(pair).sum(-1, keepdims=True))[:, 1]
        else:
            entail = logits[:, entailment]
            scores = np.exp(entail) / np.exp(entail).sum(-1, keepdims=True)
        order = list(reversed(scores.argsort()))
        return {"sequence": item[0], "labels": [labels[i] for i in order], "scores": scores[order].tolist()}
