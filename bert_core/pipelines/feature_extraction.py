"""``feature-extraction``: the last hidden state of every token, as HF's ``FeatureExtractionPipeline``."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

import numpy as np

from .base import Pipeline, PipelineError, check_text, check_tokenizer_kwargs, features_of, is_stream


class FeatureExtractionPipeline(Pipeline):
    """Token embeddings of ``BertModel``.

    Call: ``pipe(text_or_texts, truncation=None, tokenize_kwargs=None, return_tensors=False)``. Each text gives
    nested lists ``[1][tokens][hidden]`` of floats (HF's shape: a batch of one), or a float32 array of that shape
    with ``return_tensors=True``. Unlike HF with ``batch_size > 1``, rows are never padded: the token count is the
    text's own whatever the batch.
    """

    task = "feature-extraction"
    head = "BertModel"
    token_outputs = ("last_hidden_state",)
    parameters = {"truncation": None, "tokenize_kwargs": None, "return_tensors": False}

    def _resolve(self, params: Dict[str, Any], explicit: Mapping[str, Any]) -> Dict[str, Any]:
        kwargs = dict(params["tokenize_kwargs"] or {})
        if params["truncation"] is not None:
            if "truncation" in kwargs:
                raise PipelineError("truncation is given twice (as an argument and in tokenize_kwargs)")
            kwargs["truncation"] = params["truncation"]
        params["tokenize_kwargs"] = check_tokenizer_kwargs(self.task, kwargs)
        return params

    def __call__(self, inputs: Any, **params: Any) -> Any:
        params = self.resolve_options(params)
        if is_stream(inputs):
            return self.run(inputs, params)
        if isinstance(inputs, str):
            return next(self.run([inputs], params))
        return list(self.run(list(inputs), params))

    def preprocess(self, item: Any, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
        return [features_of(self.tokenizer(check_text("text", item), **params["tokenize_kwargs"]))]

    def select(self, feature: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return outputs["last_hidden_state"]  # (tokens, hidden)

    def postprocess(self, item, features, selected, params) -> Any:
        hidden = selected[0][None]  # (1, tokens, hidden)
        return hidden if params["return_tensors"] else hidden.tolist()
