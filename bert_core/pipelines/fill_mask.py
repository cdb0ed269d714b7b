"""``fill-mask``: the most likely tokens at each ``[MASK]``, as HF's ``FillMaskPipeline``."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping

import numpy as np

from .base import (
    Pipeline,
    PipelineError,
    check_int,
    check_text,
    check_tokenizer_kwargs,
    features_of,
    is_stream,
    softmax,
)

logger = logging.getLogger(__name__)


class FillMaskPipeline(Pipeline):
    """Top-k tokens for every mask token of a text.

    Call: ``pipe(text_or_texts, top_k=5, targets=None, tokenizer_kwargs=None)``. One text with one mask gives
    ``[{"score", "token", "token_str", "sequence"}] * top_k``; with several masks one such list per mask (and the
    other masks kept in ``sequence``, special tokens included, as HF does); a list of texts one result per text (a
    list of one text gives that text's result, as HF). ``targets`` restricts the candidates to these words (a word
    outside the vocabulary is replaced by its first piece, with a warning).
    """

    task = "fill-mask"
    head = "BertForMaskedLM"
    token_outputs = ("logits",)
    parameters = {"top_k": 5, "targets": None, "tokenizer_kwargs": None}

    def _setup(self) -> None:
        if self.tokenizer.mask_token_id is None:
            raise PipelineError("fill-mask: the tokenizer defines no mask_token")

    def _resolve(self, params: Dict[str, Any], explicit: Mapping[str, Any]) -> Dict[str, Any]:
        params["top_k"] = check_int("top_k", params["top_k"], 1)
        params["tokenizer_kwargs"] = check_tokenizer_kwargs(self.task, params["tokenizer_kwargs"])
        params["target_ids"] = None if params["targets"] is None else self.target_ids(params["targets"])
        return params

    def target_ids(self, targets: Any) -> np.ndarray:
        """Vocabulary ids of ``targets`` (a word or a list of words), sorted and without repeats."""
        if isinstance(targets, str):
            targets = [targets]
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            check_text("targets", target)
            id_ = vocab.get(target)
            if id_ is None:
                pieces = self.tokenizer(
                    target, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False
                )["input_ids"]
                if not pieces:
                    logger.warning(f"The specified target token `{target}` is not in the vocabulary; it is ignored")
                    continue
                id_ = pieces[0]
                logger.warning(
                    f"The specified target token `{target}` is not in the vocabulary; using "
                    f"`{self.tokenizer.convert_ids_to_tokens(id_)}` instead."
                )
            ids.append(id_)
        if not ids:
            raise PipelineError("targets: at least one target must be given (none is in the vocabulary)")
        return np.array(sorted(set(ids)), dtype=np.int64)

    def __call__(self, inputs: Any, **params: Any) -> Any:
        params = self.resolve_options(params)
        if is_stream(inputs):
            return self.run(inputs, params)
        if isinstance(inputs, str):
            return next(self.run([inputs], params))
        results = list(self.run(list(inputs), params))
        return results[0] if len(results) == 1 else results

    def preprocess(self, item: Any, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
        text = check_text("text", item)
        enc = self.tokenizer(text, **params["tokenizer_kwargs"])
        positions = [i for i, t in enumerate(enc["input_ids"]) if t == self.tokenizer.mask_token_id]
        if not positions:
            raise PipelineError(f"fill-mask: no mask token ({self.tokenizer.mask_token}) found in the input {text!r}")
        return [features_of(enc, mask_positions=positions)]

    def select(self, feature: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return outputs["logits"][feature["mask_positions"]]  # (masks, vocab)

    def postprocess(self, item, features, selected, params) -> Any:
        feature, logits = features[0], selected[0]
        target_ids = params["target_ids"]
        probs = softmax(logits)
        if target_ids is not None:
            probs = probs[:, target_ids]
        top_k = min(params["top_k"], probs.shape[-1])
        single = len(feature["mask_positions"]) == 1
        pad = self.tokenizer.pad_token_id
        result = []
        for position, row in zip(feature["mask_positions"], probs):
            order = np.argsort(-row, kind="stable")[:top_k]
            proposals = []
            for p in order:
                token = int(target_ids[p]) if target_ids is not None else int(p)
                ids = list(feature["input_ids"])
                ids[position] = token
                ids = [t for t in ids if t != pad]
                proposals.append(
                    {
                        "score": float(row[p]),
                        "token": token,
                        "token_str": self.tokenizer.decode([token]),
                        # other masks stay visible when there are several (HF keeps special tokens then)
                        "sequence": self.tokenizer.decode(ids, skip_special_tokens=single),
                    }
                )
            result.append(proposals)
        return result[0] if single else result
