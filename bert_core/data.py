"""Data collation in numpy: padding (``pad_examples``, ``DataCollatorWithPadding``, ``DataCollatorForTokenClassification``,
``DataCollatorForMultipleChoice``), the masked-LM collator and the next-sentence-prediction pair builder.

Everything returns dicts of ``np.int64`` arrays of shape ``(batch, seq_len)`` (``next_sentence_label``: ``(batch,)``),
ready for any of the three frameworks. Randomness comes only from a ``numpy.random.Generator`` (seeded).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

IGNORE_INDEX = -100


def _as_generator(seed: Union[None, int, np.random.Generator]) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _rows(value) -> List[List[int]]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (int, np.integer)):
        return [list(value)]
    return [list(r) for r in value]


#: value that pads a token-aligned extra key (labels are ignored by the losses; special tokens mask pads as special)
PAD_VALUES = {"labels": IGNORE_INDEX, "special_tokens_mask": 1}
_MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def pad_examples(
    examples, pad_token_id: int, pad_to_multiple_of: Optional[int] = None, padding_side: str = "right"
) -> Dict[str, np.ndarray]:
    """Collate examples into padded arrays: ``input_ids``, ``token_type_ids``, ``attention_mask`` int64
    ``(batch, seq_len)``, and every other key the examples carry (nothing is dropped):

    - one number per example (a class label, ``start_positions``): stacked, ``(batch,)`` int64 or float32;
    - integer sequences as long as the example's ``input_ids`` (token-classification ``labels``,
      ``special_tokens_mask``): padded like the ids, with :data:`PAD_VALUES` (labels: -100) or 0;
    - other equal-length sequences (multi-hot labels): stacked, ``(batch, n)``.

    ``examples`` is a list of encodings (dicts with ``input_ids`` and optionally more keys), a list of id lists, or
    one dict of 2-D arrays/lists (e.g. a BatchEncoding).

    Raises:
        ValueError: a key whose per-example values fit none of the rules, naming the key and the lengths.
    """
    columns = _columns(examples)
    ids = columns.pop("input_ids")
    length = max((len(r) for r in ids), default=0)
    if pad_to_multiple_of and length % pad_to_multiple_of:
        length = (length // pad_to_multiple_of + 1) * pad_to_multiple_of
    n = len(ids)
    lengths = [len(r) for r in ids]
    tt = columns.pop("token_type_ids", None)
    am = columns.pop("attention_mask", None)
    out = {
        "input_ids": _pad_rows(ids, length, pad_token_id, padding_side),
        "token_type_ids": _pad_rows(tt, length, 0, padding_side) if tt is not None else np.zeros((n, length), np.int64),
        "attention_mask": _pad_rows(am, length, 0, padding_side)
        if am is not None
        else _pad_rows([[1] * k for k in lengths], length, 0, padding_side),
    }
    for key, values in columns.items():
        out[key] = _collate_extra(key, values, lengths, length, padding_side)
    return out


def _columns(examples) -> Dict[str, list]:
    """key -> per-example values (``input_ids`` first), from any of the accepted layouts."""
    if isinstance(examples, Mapping) or (
        hasattr(examples, "keys") and hasattr(examples, "__getitem__") and not isinstance(examples, (list, tuple))
    ):
        if "input_ids" not in examples:
            raise KeyError(f"the batch has no 'input_ids'; keys are {list(examples.keys())}")
        return {k: list(examples[k]) for k in ["input_ids"] + [k for k in examples.keys() if k != "input_ids"]}
    if not isinstance(examples, (list, tuple)):
        raise TypeError(f"examples must be a list of encodings or a dict of arrays, got {type(examples).__name__}")
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    first = examples[0]
    if isinstance(first, Mapping) or hasattr(first, "keys"):
        keys = ["input_ids"] + [k for k in first.keys() if k != "input_ids"]
        for i, e in enumerate(examples):
            if set(e.keys()) != set(keys):
                raise ValueError(f"example {i} has keys {sorted(e.keys())} but example 0 has {sorted(keys)}")
        return {k: [e[k] for e in examples] for k in keys}
    if isinstance(first, (list, tuple, np.ndarray)):
        return {"input_ids": list(examples)}
    raise TypeError(f"examples must be dicts of ids or id sequences, got a list of {type(first).__name__}")


def _pad_rows(rows, length: int, value, padding_side: str, dtype=np.int64) -> np.ndarray:
    out = np.full((len(rows), length), value, dtype=dtype)
    for i, row in enumerate(rows):
        row = np.asarray(row).reshape(-1)
        k = min(len(row), length)
        sl = slice(0, k) if padding_side == "right" else slice(length - k, length)
        out[i, sl] = row[:k]
    return out


def _collate_extra(key: str, values: list, lengths: list, length: int, padding_side: str) -> np.ndarray:
    arrays = [np.asarray(v) for v in values]
    floating = any(a.dtype.kind == "f" for a in arrays)
    dtype = np.float32 if floating else np.int64
    if all(a.ndim == 0 for a in arrays):
        return np.asarray(arrays, dtype=dtype)
    sizes = [a.size for a in arrays]
    if all(a.ndim == 1 for a in arrays):
        if not floating and sizes == lengths:
            return _pad_rows(arrays, length, PAD_VALUES.get(key, 0), padding_side)
        if len(set(sizes)) == 1:
            return np.stack(arrays).astype(dtype)
    raise ValueError(
        f"cannot collate {key!r}: per-example sizes {sizes} match neither the input_ids lengths {lengths} "
        f"nor each other"
    )


class DataCollatorForMLM:
    """Masked-LM collator (BERT recipe).

    Selects ``mlm_probability`` (15%) of the real, non-special tokens (or whole words with ``whole_word_mask``: a
    word is a token plus the ``##`` pieces after it); of the selected, 80% become ``[MASK]``, 10% a random
    non-special token different from the original, 10% stay. ``labels`` holds the original id at selected
    positions and -100 elsewhere.

    Args:
        tokenizer: a BertTokenizer/BertTokenizerFast (gives mask/pad ids, special ids, vocabulary and ``##`` pieces),
            or None with the explicit ids below.
        seed: int or ``numpy.random.Generator``; the collator keeps one generator, so successive batches differ
            but a run is reproducible.

    Returns (``__call__``): dict of int64 arrays ``(batch, seq_len)``: input_ids, attention_mask, token_type_ids,
    labels.
    """

    def __init__(
        self,
        tokenizer=None,
        *,
        mlm_probability: float = 0.15,
        whole_word_mask: bool = False,
        seed: Union[None, int, np.random.Generator] = None,
        pad_to_multiple_of: Optional[int] = None,
        mask_token_id: Optional[int] = None,
        pad_token_id: Optional[int] = None,
        vocab_size: Optional[int] = None,
        special_token_ids: Optional[Sequence[int]] = None,
        subword_ids: Optional[Sequence[int]] = None,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
    ):
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        if mask_replace_prob < 0 or random_replace_prob < 0 or mask_replace_prob + random_replace_prob > 1:
            raise ValueError("mask_replace_prob and random_replace_prob must be >= 0 and sum to at most 1")
        if tokenizer is not None:
            vocab = tokenizer.get_vocab()
            mask_token_id = tokenizer.mask_token_id if mask_token_id is None else mask_token_id
            pad_token_id = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
            vocab_size = len(tokenizer) if vocab_size is None else vocab_size
            special_token_ids = tokenizer.all_special_ids if special_token_ids is None else special_token_ids
            if subword_ids is None:
                subword_ids = [i for t, i in vocab.items() if t.startswith("##")]
        if mask_token_id is None or pad_token_id is None or vocab_size is None:
            raise ValueError("DataCollatorForMLM needs a tokenizer, or mask_token_id, pad_token_id and vocab_size")
        if whole_word_mask and subword_ids is None:
            raise ValueError(
                "whole_word_mask=True needs to know which ids are '##' pieces: pass a tokenizer or subword_ids"
            )
        self.mlm_probability = float(mlm_probability)
        self.whole_word_mask = bool(whole_word_mask)
        self.mask_token_id = int(mask_token_id)
        self.pad_token_id = int(pad_token_id)
        self.vocab_size = int(vocab_size)
        self.mask_replace_prob = float(mask_replace_prob)
        self.random_replace_prob = float(random_replace_prob)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.special_ids = np.array(sorted(set(int(i) for i in (special_token_ids or ()))), dtype=np.int64)
        self.is_subword = np.zeros(self.vocab_size, dtype=bool)
        if subword_ids is not None:
            self.is_subword[np.asarray(list(subword_ids), dtype=np.int64)] = True
        # random replacements come from real tokens only, so a [PAD]/[CLS] never appears mid-sentence
        self.random_pool = np.setdiff1d(np.arange(self.vocab_size, dtype=np.int64), self.special_ids)
        if len(self.random_pool) < 2:
            raise ValueError("the vocabulary needs at least two non-special tokens for random replacement")
        self.rng = _as_generator(seed)

    def _select(self, ids: np.ndarray, candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.whole_word_mask:
            return candidates & (rng.random(ids.shape) < self.mlm_probability)
        inside = np.clip(ids, 0, self.vocab_size - 1)
        continuation = candidates & self.is_subword[inside]
        starts = candidates & ~continuation
        # a word id per position: increments at every word start; pieces inherit their word's id
        word_index = np.cumsum(starts.ravel()).reshape(ids.shape) - 1
        picked = rng.random(int(starts.sum())) < self.mlm_probability
        chosen = np.zeros(ids.shape, dtype=bool)
        valid = candidates & (word_index >= 0)
        chosen[valid] = picked[word_index[valid]]
        return chosen

    def mask_tokens(
        self,
        input_ids: np.ndarray,
        attention_mask: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
    ):
        """Apply MLM masking to an int64 array ``(batch, seq_len)``; returns (masked input_ids, labels).

        ``rng``: the generator to draw from for this batch (e.g. ``bert_core.training.order.batch_rng``, so every
        backend and a resumed run mask alike); None: the collator's own generator."""
        rng = self.rng if rng is None else rng
        ids = np.asarray(input_ids, dtype=np.int64)
        if attention_mask is None:
            attention_mask = (ids != self.pad_token_id).astype(np.int64)
        candidates = (np.asarray(attention_mask) == 1) & (ids != self.pad_token_id) & ~np.isin(ids, self.special_ids)
        chosen = self._select(ids, candidates, rng)
        labels = np.where(chosen, ids, IGNORE_INDEX).astype(np.int64)
        out = ids.copy()
        action = rng.random(ids.shape)
        to_mask = chosen & (action < self.mask_replace_prob)
        to_random = (
            chosen & (action >= self.mask_replace_prob) & (action < self.mask_replace_prob + self.random_replace_prob)
        )
        out[to_mask] = self.mask_token_id
        n_random = int(to_random.sum())
        if n_random:
            originals = ids[to_random]
            pool = self.random_pool
            # draw among the pool minus the original: pick from len-1 slots and skip over the original's slot
            draws = rng.integers(0, len(pool) - 1, size=n_random)
            own = np.searchsorted(pool, originals)
            own_present = (own < len(pool)) & (pool[np.minimum(own, len(pool) - 1)] == originals)
            draws = np.where(own_present & (draws >= own), draws + 1, draws)
            out[to_random] = pool[draws]
        return out, labels

    def __call__(self, examples, rng: Optional[np.random.Generator] = None) -> Dict[str, np.ndarray]:
        batch = pad_examples(examples, self.pad_token_id, self.pad_to_multiple_of)
        batch.pop("special_tokens_mask", None)  # not a model input; the masking finds special ids itself
        batch["input_ids"], batch["labels"] = self.mask_tokens(batch["input_ids"], batch["attention_mask"], rng)
        return batch


def _label_name(features) -> Optional[str]:
    first = features[0]
    return next((k for k in ("label", "labels", "label_ids") if k in first), None)


def _check_features(features, who: str) -> None:
    if not isinstance(features, (list, tuple)) or not features:
        raise ValueError(f"{who} needs a non-empty list of features (dicts), got {features!r:.80}")
    if not all(isinstance(f, Mapping) for f in features):
        raise TypeError(
            f"{who} needs a list of dicts, found {type(next(f for f in features if not isinstance(f, Mapping))).__name__}"
        )


def _as_tensors(batch: Dict[str, np.ndarray], return_tensors: str) -> Dict[str, object]:
    if return_tensors == "np":
        return batch
    from .tokenization import convert_to_tensors

    return {k: convert_to_tensors(v, return_tensors) for k, v in batch.items()}


class DataCollatorWithPadding:
    """Pads a batch of encodings with ``tokenizer.pad`` (HF ``DataCollatorWithPadding``): ``input_ids``,
    ``token_type_ids``, ``attention_mask`` (and ``special_tokens_mask``) to the longest row (or ``max_length`` /
    a multiple of ``pad_to_multiple_of``); per-example labels (``label``/``label_ids`` renamed ``labels``) are stacked.

    Returns (``__call__``): dict of arrays: int64 ``(batch, seq_len)`` inputs; ``labels`` ``(batch,)`` int64 (class
    ids) or float64 (regression), or ``(batch, num_labels)`` (multi-label). ``return_tensors`` 'pt'/'tf'/'jax'
    converts them.
    """

    def __init__(
        self,
        tokenizer,
        padding=True,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        return_tensors: str = "np",
    ):
        self.tokenizer = tokenizer
        self.padding = padding
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.return_tensors = return_tensors

    def __call__(self, features) -> Dict[str, object]:
        _check_features(features, "DataCollatorWithPadding")
        batch = dict(
            self.tokenizer.pad(
                list(features),
                padding=self.padding,
                max_length=self.max_length,
                pad_to_multiple_of=self.pad_to_multiple_of,
                return_tensors=self.return_tensors,
            )
        )
        for name in ("label", "label_ids"):
            if name in batch:
                batch["labels"] = batch.pop(name)
        return batch


class DataCollatorForTokenClassification:
    """Pads encodings and their per-token ``labels`` (HF ``DataCollatorForTokenClassification``): inputs with
    ``tokenizer.pad``, labels with ``label_pad_token_id`` (-100: ignored by the loss) on the tokenizer's padding side.

    Returns (``__call__``): dict of int64 arrays ``(batch, seq_len)``: the inputs and ``labels`` (the key keeps
    its name, ``label`` or ``labels``, as in HF).
    """

    def __init__(
        self,
        tokenizer,
        padding=True,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        label_pad_token_id: int = IGNORE_INDEX,
        return_tensors: str = "np",
    ):
        self.tokenizer = tokenizer
        self.padding = padding
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.label_pad_token_id = int(label_pad_token_id)
        self.return_tensors = return_tensors

    def __call__(self, features) -> Dict[str, object]:
        _check_features(features, "DataCollatorForTokenClassification")
        name = "label" if "label" in features[0] else "labels"
        labels = [_as_list(f[name]) for f in features] if name in features[0] else None
        rest = [{k: v for k, v in f.items() if k != name} for f in features]
        batch = dict(
            self.tokenizer.pad(
                rest,
                padding=self.padding,
                max_length=self.max_length,
                pad_to_multiple_of=self.pad_to_multiple_of,
                return_tensors="np",
            )
        )
        batch = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items()}
        if labels is not None:
            length = batch["input_ids"].shape[1]
            for i, row in enumerate(labels):
                if len(row) > length:
                    raise ValueError(
                        f"features[{i}] has {len(row)} labels but its input_ids are padded to {length}: one label "
                        "per token is expected"
                    )
            side = self.tokenizer.padding_side
            batch[name] = _pad_rows(labels, length, self.label_pad_token_id, side)
        return _as_tensors(batch, self.return_tensors)


class DataCollatorForMultipleChoice:
    """Pads multiple-choice features (HF ``DataCollatorForMultipleChoice``): each feature holds one row per choice
    (``input_ids``: ``[num_choices][seq_len]``); all choices of all features are padded together.

    Returns (``__call__``): dict of int64 arrays ``(batch, num_choices, seq_len)`` and ``labels`` ``(batch,)``.

    Raises:
        ValueError: features with different numbers of choices.
    """

    def __init__(
        self,
        tokenizer=None,
        padding=True,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        return_tensors: str = "np",
        *,
        pad_token_id: Optional[int] = None,
    ):
        self.tokenizer = tokenizer
        self.padding = padding
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.return_tensors = return_tensors
        if tokenizer is None and pad_token_id is None:
            raise ValueError("DataCollatorForMultipleChoice needs a tokenizer or pad_token_id")
        self.pad_token_id = pad_token_id

    def __call__(self, features) -> Dict[str, object]:
        _check_features(features, "DataCollatorForMultipleChoice")
        name = _label_name(features)
        labels = [f[name] for f in features] if name is not None else None
        counts = [len(f["input_ids"]) for f in features]
        if len(set(counts)) != 1:
            raise ValueError(f"every feature of a multiple-choice batch needs the same number of choices, got {counts}")
        n_choices = counts[0]
        flat = [{k: v[c] for k, v in f.items() if k != name} for f in features for c in range(n_choices)]
        if self.tokenizer is not None:
            batch = dict(
                self.tokenizer.pad(
                    flat,
                    padding=self.padding,
                    max_length=self.max_length,
                    pad_to_multiple_of=self.pad_to_multiple_of,
                    return_tensors="np",
                )
            )
        else:
            batch = pad_examples(flat, self.pad_token_id, self.pad_to_multiple_of)
        out = {k: np.asarray(v, dtype=np.int64).reshape(len(features), n_choices, -1) for k, v in batch.items()}
        if labels is not None:
            out["labels"] = np.asarray(labels, dtype=np.int64)
        return _as_tensors(out, self.return_tensors)


def _as_list(value) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _truncate_pair(a: List[int], b: List[int], budget: int) -> None:
    # longest first, one token at a time from the end, in place
    while len(a) + len(b) > budget:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()


def build_nsp_pairs(
    documents: Sequence[Sequence[Union[str, Sequence[int]]]],
    tokenizer=None,
    *,
    max_length: int = 128,
    nsp_probability: float = 0.5,
    seed: Union[None, int, np.random.Generator] = None,
    cls_token_id: Optional[int] = None,
    sep_token_id: Optional[int] = None,
    pad_token_id: Optional[int] = None,
) -> Dict[str, np.ndarray]:
    """Sentence pairs for next-sentence prediction.

    Each consecutive sentence pair (A, B) of a document gives one example: with probability ``1 - nsp_probability``
    B stays the real next sentence (``next_sentence_label`` 0), otherwise B is a random sentence of another document
    (label 1, HF's convention). Sentences are str (tokenized with ``tokenizer``, no special tokens) or id lists.
    A and B are truncated longest-first so that ``[CLS] A [SEP] B [SEP]`` fits ``max_length``; rows are padded.

    Returns: dict of int64 arrays: input_ids, token_type_ids, attention_mask ``(n_pairs, max_length)`` and
    next_sentence_label ``(n_pairs,)``.
    """
    if tokenizer is not None:
        cls_token_id = tokenizer.cls_token_id if cls_token_id is None else cls_token_id
        sep_token_id = tokenizer.sep_token_id if sep_token_id is None else sep_token_id
        pad_token_id = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
    if cls_token_id is None or sep_token_id is None or pad_token_id is None:
        raise ValueError("build_nsp_pairs needs a tokenizer, or cls_token_id, sep_token_id and pad_token_id")
    if max_length < 5:
        raise ValueError(f"max_length must be at least 5 ([CLS] a [SEP] b [SEP]), got {max_length}")
    if not isinstance(documents, (list, tuple)):
        raise TypeError(f"documents must be a list of documents (lists of sentences), got {type(documents).__name__}")
    rng = _as_generator(seed)

    def ids_of(sentence) -> List[int]:
        if isinstance(sentence, str):
            if tokenizer is None:
                raise ValueError("str sentences need a tokenizer")
            return list(
                tokenizer(
                    sentence,
                    add_special_tokens=False,
                    return_token_type_ids=False,
                    return_attention_mask=False,
                    verbose=False,
                )["input_ids"]
            )
        if isinstance(sentence, (list, tuple, np.ndarray)):
            return [int(i) for i in sentence]
        raise TypeError(f"a sentence must be a str or a list of ids, got {type(sentence).__name__}")

    docs = []
    for d, doc in enumerate(documents):
        if isinstance(doc, str) or not isinstance(doc, (list, tuple)):
            raise TypeError(f"documents[{d}] must be a list of sentences, got {type(doc).__name__}")
        docs.append([ids_of(s) for s in doc])
    non_empty = [i for i, doc in enumerate(docs) if doc]
    if len(non_empty) < 2:
        raise ValueError("NSP needs at least two non-empty documents to draw random next sentences from")
    budget = max_length - 3
    rows_a, rows_b, labels = [], [], []
    for d, doc in enumerate(docs):
        for i in range(len(doc) - 1):
            a = list(doc[i])
            if rng.random() < nsp_probability:
                others = [j for j in non_empty if j != d]
                other = docs[others[int(rng.integers(len(others)))]]
                b = list(other[int(rng.integers(len(other)))])
                label = 1
            else:
                b = list(doc[i + 1])
                label = 0
            _truncate_pair(a, b, budget)
            rows_a.append(a)
            rows_b.append(b)
            labels.append(label)
    n = len(labels)
    input_ids = np.full((n, max_length), pad_token_id, dtype=np.int64)
    token_type_ids = np.zeros((n, max_length), dtype=np.int64)
    attention_mask = np.zeros((n, max_length), dtype=np.int64)
    for r, (a, b) in enumerate(zip(rows_a, rows_b)):
        seq = [cls_token_id] + a + [sep_token_id] + b + [sep_token_id]
        input_ids[r, : len(seq)] = seq
        token_type_ids[r, len(a) + 2 : len(seq)] = 1
        attention_mask[r, : len(seq)] = 1
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": attention_mask,
        "next_sentence_label": np.asarray(labels, dtype=np.int64),
    }


#: keys laid out along the token axis (the last axis of ``input_ids``: ``(batch, seq)`` or ``(batch, choices, seq)``)
_TOKEN_KEYS = ("input_ids", "token_type_ids", "attention_mask", "position_ids", "special_tokens_mask", "labels")


def pad_to_bucket(batch: Mapping[str, np.ndarray], multiple: int) -> Tuple[Dict[str, np.ndarray], int]:
    """Pad the token axis of a collated batch up to a multiple of ``multiple``, for compiled frameworks (XLA compiles
    one program per shape: padding every batch to its longest row would compile nearly every step anew).

    Added positions are padding (``attention_mask`` 0, ``labels`` -100, ``special_tokens_mask`` 1, ids 0), so the
    model's outputs on the real positions and its losses are unchanged. Only the keys in :data:`_TOKEN_KEYS` shaped
    like ``input_ids`` are padded (``labels`` then are token labels).

    Returns:
        ``(padded batch, original sequence length)``; the batch is returned as is when it already fits.
    """
    ids = np.asarray(batch["input_ids"])
    length = ids.shape[-1]
    target = -(-length // multiple) * multiple
    if target == length:
        return dict(batch), length
    out = dict(batch)
    for key in _TOKEN_KEYS:
        value = batch.get(key)
        if value is None or np.shape(value) != ids.shape:  # a class label (batch,) is not on the token axis
            continue
        widths = [(0, 0)] * (np.ndim(value) - 1) + [(0, target - length)]
        out[key] = np.pad(np.asarray(value), widths, constant_values=PAD_VALUES.get(key, 0))
    return out, length
