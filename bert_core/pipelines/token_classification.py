"""``token-classification`` (NER): a label per token, or entity groups, as HF's ``TokenClassificationPipeline``."""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..tokenization import VERY_LARGE_INTEGER
from .base import Pipeline, PipelineError, check_choice, check_int, check_text, features_of, is_stream, softmax

STRATEGIES = ("none", "simple", "first", "average", "max")
WORD_STRATEGIES = ("first", "average", "max")


class TokenClassificationPipeline(Pipeline):
    """Labels of ``config.id2label`` for every token, or grouped into entities.

    Call: ``pipe(text_or_texts, aggregation_strategy="none", ignore_labels=["O"], stride=None,
    is_split_into_words=False, delimiter=" ")``. Each text gives a list of ``{"entity", "score", "index", "word",
    "start", "end"}`` (strategy ``"none"``) or ``{"entity_group", "score", "word", "start", "end"}`` (``simple``:
    adjacent B-/I- tokens of one type; ``first`` / ``average`` / ``max``: a word takes one label, from its first
    piece, its mean scores, or its most confident piece). ``start``/``end`` are character offsets in the text.
    ``stride`` runs a text longer than the model's maximum as overlapping windows (needs an aggregation strategy);
    overlapping entities are resolved as HF does (the longer, then the more confident, wins).
    """

    task = "token-classification"
    head = "BertForTokenClassification"
    token_outputs = ("logits",)
    parameters = {
        "aggregation_strategy": None,
        "ignore_labels": None,
        "stride": None,
        "is_split_into_words": False,
        "delimiter": None,
    }

    def _setup(self) -> None:
        model = getattr(getattr(self.tokenizer, "backend_tokenizer", None), "model", None)
        # a word-aware (WordPiece "##") fast tokenizer tells sub-words by their length; others need a heuristic
        self._word_aware = bool(getattr(model, "continuing_subword_prefix", None))

    def _resolve(self, params: Dict[str, Any], explicit: Mapping[str, Any]) -> Dict[str, Any]:
        strategy = params["aggregation_strategy"]
        strategy = "none" if strategy is None else check_choice("aggregation_strategy", strategy, STRATEGIES)
        if strategy in WORD_STRATEGIES and not self.tokenizer.is_fast:
            raise PipelineError(
                f"aggregation_strategy={strategy!r} needs a fast tokenizer (word boundaries); use 'simple' or "
                "BertTokenizerFast"
            )
        params["aggregation_strategy"] = strategy
        ignore = params["ignore_labels"]
        params["ignore_labels"] = ["O"] if ignore is None else [check_text("ignore_labels[]", x) for x in ignore]
        if params["stride"] is not None:
            stride = check_int("stride", params["stride"], 0)
            if stride >= self.tokenizer.model_max_length:
                raise PipelineError(
                    f"stride ({stride}) must be smaller than the tokenizer's model_max_length "
                    f"({self.tokenizer.model_max_length}), minus its special tokens"
                )
            if explicit.get("aggregation_strategy") is not None and strategy == "none":
                raise PipelineError(
                    "stride runs long texts as overlapping windows, whose tokens must be merged: choose an "
                    "aggregation_strategy other than 'none'"
                )
            if not self.tokenizer.is_fast:
                raise PipelineError("stride needs a fast tokenizer (BertTokenizerFast)")
        if params["is_split_into_words"]:
            params["delimiter"] = " " if params["delimiter"] is None else check_text("delimiter", params["delimiter"])
            if not self.tokenizer.is_fast:
                raise PipelineError("is_split_into_words=True needs a fast tokenizer (BertTokenizerFast)")
        return params

    def __call__(self, inputs: Any, **params: Any) -> Any:
        params = self.resolve_options(params)
        if is_stream(inputs):
            return self.run(inputs, params)
        if isinstance(inputs, str):
            return next(self.run([inputs], params))
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise PipelineError("token-classification needs a text or a non-empty list of texts")
        if params["is_split_into_words"] and not all(isinstance(x, list) for x in inputs):
            inputs = [list(inputs)]  # one sentence of words: HF answers with a list of one result
        return list(self.run(list(inputs), params))

    def preprocess(self, item: Any, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
        tokenizer = self.tokenizer
        word_to_chars: Optional[List[Tuple[int, int]]] = None
        kwargs: Dict[str, Any] = {}
        if params["is_split_into_words"]:
            if not isinstance(item, list) or not all(isinstance(w, str) for w in item):
                raise PipelineError("with is_split_into_words=True every input must be a list of str words")
            delimiter = params["delimiter"]
            sentence = delimiter.join(item)
            word_to_chars, at = [], 0
            for word in item:  # the words' places in the joined sentence, to make offsets absolute
                word_to_chars.append((at, at + len(word)))
                at += len(word) + len(delimiter)
            kwargs["is_split_into_words"] = True
        else:
            sentence = check_text("text", item)
        windows = params["stride"] is not None  # a long text becomes overlapping rows (fast tokenizer only)
        if windows:
            kwargs.update(return_overflowing_tokens=True, stride=params["stride"])
        enc = tokenizer(
            item,
            truncation=0 < tokenizer.model_max_length < VERY_LARGE_INTEGER,
            return_special_tokens_mask=True,
            return_offsets_mapping=tokenizer.is_fast,
            **kwargs,
        )
        row = (lambda values, r: values[r]) if windows else (lambda values, r: values)
        return [
            features_of(
                enc,
                row=r if windows else None,
                sentence=sentence,
                special_tokens_mask=row(enc["special_tokens_mask"], r),
                offsets=row(enc["offset_mapping"], r) if tokenizer.is_fast else None,
                word_ids=enc.word_ids(r) if word_to_chars is not None else None,
                word_to_chars=word_to_chars,
            )
            for r in range(len(enc["input_ids"]) if windows else 1)
        ]

    def select(self, feature: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return outputs["logits"]  # (tokens, num_labels)

    # ---------------------------------------------------------------- postprocess (HF's steps, one method each)
    def postprocess(self, item, features, selected, params) -> List[Dict[str, Any]]:
        strategy = params["aggregation_strategy"]
        ignore = params["ignore_labels"]
        entities: List[Dict[str, Any]] = []
        for feature, logits in zip(features, selected):
            pre = self.gather_pre_entities(feature, softmax(logits), strategy)
            grouped = self.aggregate(pre, strategy)
            entities.extend(e for e in grouped if e.get("entity") not in ignore and e.get("entity_group") not in ignore)
        if len(features) > 1:
            entities = aggregate_overlapping_entities(entities)
        return [_floats(e) for e in entities]

    def gather_pre_entities(self, feature: Mapping[str, Any], scores: np.ndarray, strategy: str) -> List[Dict]:
        """One dict per non-special token: piece, scores (labels,), character span, whether it continues a word."""
        sentence, offsets = feature["sentence"], feature["offsets"]
        word_ids, word_to_chars = feature["word_ids"], feature["word_to_chars"]
        pre = []
        for idx, token_scores in enumerate(scores):
            if feature["special_tokens_mask"][idx]:
                continue
            token_id = int(feature["input_ids"][idx])
            word = self.tokenizer.convert_ids_to_tokens(token_id)
            if offsets is not None:
                start, end = offsets[idx]
                if word_ids is not None and word_ids[idx] is not None:
                    shift = word_to_chars[word_ids[idx]][0]
                    start, end = start + shift, end + shift
                word_ref = sentence[start:end]
                if self._word_aware:
                    is_subword = len(word) != len(word_ref)
                else:
                    if strategy in WORD_STRATEGIES:
                        warnings.warn(
                            "Tokenizer does not support real words, using fallback heuristic", UserWarning, stacklevel=2
                        )
                    is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
                if token_id == self.tokenizer.unk_token_id:
                    word, is_subword = word_ref, False
            else:
                start = end = None
                is_subword = False
            pre.append(
                {
                    "word": word,
                    "scores": token_scores,
                    "start": start,
                    "end": end,
                    "index": idx,
                    "is_subword": is_subword,
                }
            )
        return pre

    def aggregate(self, pre_entities: List[Dict], strategy: str) -> List[Dict]:
        if strategy in ("none", "simple"):
            entities = []
            for pre in pre_entities:
                best = int(pre["scores"].argmax())
                entities.append(
                    {
                        "entity": self.config.id2label[best],
                        "score": pre["scores"][best],
                        "index": pre["index"],
                        "word": pre["word"],
                        "start": pre["start"],
                        "end": pre["end"],
                    }
                )
        else:
            entities = self.aggregate_words(pre_entities, strategy)
        return entities if strategy == "none" else self.group_entities(entities)

    def aggregate_word(self, entities: List[Dict], strategy: str) -> Dict:
        """One word's pieces -> one entity: the label of the first piece, of the mean scores, or of the surest piece."""
        word = self.tokenizer.convert_tokens_to_string([e["word"] for e in entities])
        if strategy == "first":
            scores = entities[0]["scores"]
        elif strategy == "max":
            scores = max(entities, key=lambda e: e["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([e["scores"] for e in entities]), axis=0)
        idx = int(scores.argmax())
        return {
            "entity": self.config.id2label[idx],
            "score": scores[idx],
            "word": word,
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    def aggregate_words(self, entities: List[Dict], strategy: str) -> List[Dict]:
        words: List[Dict] = []
        group: Optional[List[Dict]] = None
        for entity in entities:
            if group is None:
                group = [entity]
            elif entity["is_subword"]:
                group.append(entity)
            else:
                words.append(self.aggregate_word(group, strategy))
                group = [entity]
        if group is not None:
            words.append(self.aggregate_word(group, strategy))
        return words

    def group_sub_entities(self, entities: List[Dict]) -> Dict:
        scores = np.nanmean([e["score"] for e in entities])
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": np.mean(scores),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    def group_entities(self, entities: List[Dict]) -> List[Dict]:
        """Adjacent entities of one type join a group unless the next one is a ``B-`` (a new entity begins)."""
        groups: List[Dict] = []
        current: List[Dict] = []
        for entity in entities:
            if not current:
                current.append(entity)
                continue
            bi, tag = get_tag(entity["entity"])
            _, last_tag = get_tag(current[-1]["entity"])
            if tag == last_tag and bi != "B":
                current.append(entity)
            else:
                groups.append(self.group_sub_entities(current))
                current = [entity]
        if current:
            groups.append(self.group_sub_entities(current))
        return groups


def get_tag(entity_name: str) -> Tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; a label without a B-/I- prefix continues (``"I"``)."""
    if entity_name.startswith("B-"):
        return "B", entity_name[2:]
    if entity_name.startswith("I-"):
        return "I", entity_name[2:]
    return "I", entity_name


def aggregate_overlapping_entities(entities: Sequence[Dict]) -> List[Dict]:
    """Entities of overlapping windows: among those that overlap, keep the longest (then the surest)."""
    if not entities:
        return list(entities)
    entities = sorted(entities, key=lambda x: x["start"])
    kept = []
    previous = entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > previous_length or length == previous_length and entity["score"] > previous["score"]:
                previous = entity
        else:
            kept.append(previous)
            previous = entity
    kept.append(previous)
    return kept


def _floats(entity: Dict) -> Dict:
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in entity.items()}
