"""TFBertTokenizer: WordPiece BERT tokenization inside the TensorFlow graph (a Keras layer), on tensorflow-text.

strings (batch,) [or pairs] -> dict of int64 (batch, length) tensors ``input_ids``, ``token_type_ids``,
``attention_mask`` laid out ``[CLS] A [SEP] (B [SEP])`` and padded with the pad id, so a SavedModel can serve raw text.
Differences from HF ``BertTokenizerFast`` are listed in ``TOKENIZER_NOTES.md`` (and pinned by a test).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Union

from . import modeling  # noqa: F401  (selects the TensorFlow Keras backend first)
from .modeling import keras, tf

try:
    import tensorflow_text as text
except ImportError as err:  # pragma: no cover - tensorflow-text is a dependency of the tf extra
    raise ImportError("TFBertTokenizer needs tensorflow-text (pip install 'multi-bert[tf]')") from err

from bert_core.hub import resolve_model_dir

_TOKENIZER_FILES = ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]


@keras.saving.register_keras_serializable(package="bert_tf")
class TFBertTokenizer(keras.layers.Layer):
    """In-graph BERT tokenizer.

    Args:
        vocab_list: the WordPiece vocabulary, index = id.
        do_lower_case: lower-case, NFD-decompose and strip accents (uncased models), as HF's BasicTokenizer.
        cls_token_id / sep_token_id / pad_token_id: default to the ids of ``[CLS]`` / ``[SEP]`` / ``[PAD]``.
        padding: ``"longest"`` (pad to the longest row) or ``"max_length"``.
        truncation: cut to ``max_length`` including the special tokens (pairs: the longest segment first).
        max_length: int, default 512.
        pad_to_multiple_of: with ``padding="longest"``, round the length up to a multiple of this.
        return_token_type_ids / return_attention_mask: include those outputs.
        use_fast_bert_tokenizer: ``text.FastBertTokenizer`` (default); False uses ``text.BertTokenizer``, whose ops
            TF Serving ships.
    """

    def __init__(
        self,
        vocab_list: List[str],
        do_lower_case: bool = True,
        cls_token_id: Optional[int] = None,
        sep_token_id: Optional[int] = None,
        pad_token_id: Optional[int] = None,
        padding: str = "longest",
        truncation: bool = True,
        max_length: int = 512,
        pad_to_multiple_of: Optional[int] = None,
        return_token_type_ids: bool = True,
        return_attention_mask: bool = True,
        use_fast_bert_tokenizer: bool = True,
        unk_token: str = "[UNK]",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        self.vocab_list = list(vocab_list)
        index = {tok: i for i, tok in enumerate(self.vocab_list)}
        for name, tok in (
            ("cls_token_id", "[CLS]"),
            ("sep_token_id", "[SEP]"),
            ("pad_token_id", "[PAD]"),
            ("unk", unk_token),
        ):
            if tok not in index and (name == "unk" or locals()[name] is None):
                raise ValueError(f"the vocabulary has no {tok!r} token; pass {name} explicitly")
        self.do_lower_case = bool(do_lower_case)
        self.cls_token_id = index["[CLS]"] if cls_token_id is None else int(cls_token_id)
        self.sep_token_id = index["[SEP]"] if sep_token_id is None else int(sep_token_id)
        self.pad_token_id = index["[PAD]"] if pad_token_id is None else int(pad_token_id)
        self.padding = padding
        self.truncation = bool(truncation)
        self.max_length = int(max_length)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.return_token_type_ids = bool(return_token_type_ids)
        self.return_attention_mask = bool(return_attention_mask)
        self.use_fast_bert_tokenizer = bool(use_fast_bert_tokenizer)
        self.unk_token = unk_token
        if self.use_fast_bert_tokenizer:
            # normalisation is done by _normalize (HF's rules); tensorflow-text's own lower-casing is NFKC case
            # folding, which rewrites ligatures, fullwidth forms, '…', 'ß' ... unlike HF
            self.tf_tokenizer = text.FastBertTokenizer(
                vocab=self.vocab_list,
                token_out_type=tf.int64,
                unknown_token=unk_token,
                lower_case_nfd_strip_accents=False,
            )
        else:
            table = tf.lookup.StaticVocabularyTable(
                tf.lookup.KeyValueTensorInitializer(
                    keys=self.vocab_list,
                    values=tf.range(len(self.vocab_list), dtype=tf.int64),
                    key_dtype=tf.string,
                    value_dtype=tf.int64,
                ),
                num_oov_buckets=1,
            )
            self.tf_tokenizer = text.BertTokenizer(
                table, token_out_type=tf.int64, lower_case=False, unknown_token=unk_token
            )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, os.PathLike],
        *,
        revision=None,
        cache_dir=None,
        token=None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> "TFBertTokenizer":
        """Build from a directory or hub id holding ``vocab.txt`` (+ ``tokenizer_config.json`` for do_lower_case,
        model_max_length and the special tokens). ``kwargs`` override."""
        directory = resolve_model_dir(
            name_or_path,
            allow_patterns=_TOKENIZER_FILES,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
        vocab_file = directory / "vocab.txt"
        if not vocab_file.is_file():
            raise FileNotFoundError(f"no vocab.txt in {os.fspath(directory)!r}")
        vocab = vocab_file.read_text(encoding="utf-8").split("\n")
        if vocab and vocab[-1] == "":
            vocab = vocab[:-1]
        vocab = [v.rstrip("\r") for v in vocab]
        settings: Dict[str, Any] = {}
        config_file = directory / "tokenizer_config.json"
        if config_file.is_file():
            cfg = json.loads(config_file.read_text(encoding="utf-8"))
            if "do_lower_case" in cfg:
                settings["do_lower_case"] = bool(cfg["do_lower_case"])
            max_len = cfg.get("model_max_length")
            if isinstance(max_len, int) and 0 < max_len < 100_000:
                settings["max_length"] = max_len
            index = {t: i for i, t in enumerate(vocab)}
            for key, out in (
                ("cls_token", "cls_token_id"),
                ("sep_token", "sep_token_id"),
                ("pad_token", "pad_token_id"),
            ):
                tok = cfg.get(key)
                tok = tok.get("content") if isinstance(tok, Mapping) else tok
                if isinstance(tok, str) and tok in index:
                    settings[out] = index[tok]
            unk = cfg.get("unk_token")
            unk = unk.get("content") if isinstance(unk, Mapping) else unk
            if isinstance(unk, str) and unk in index:
                settings["unk_token"] = unk
        settings.update(kwargs)
        return cls(vocab, **settings)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **kwargs: Any) -> "TFBertTokenizer":
        """Build from any tokenizer object with a vocab (``get_vocab()`` or ``.vocab`` dict token -> id) and a
        ``do_lower_case`` attribute (HF BertTokenizer/BertTokenizerFast, bert_core's tokenizers)."""
        vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else getattr(tokenizer, "vocab", None)
        if not isinstance(vocab, Mapping):
            raise TypeError(f"{type(tokenizer).__name__} has no vocab dict (get_vocab() or .vocab)")
        ordered = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in ordered] != list(range(len(ordered))):
            raise ValueError("the tokenizer's vocab ids are not 0..n-1 without gaps")
        settings: Dict[str, Any] = {"do_lower_case": bool(getattr(tokenizer, "do_lower_case", True))}
        for attr in ("cls_token_id", "sep_token_id", "pad_token_id"):
            value = getattr(tokenizer, attr, None)
            if isinstance(value, int):
                settings[attr] = value
        max_len = getattr(tokenizer, "model_max_length", None)
        if isinstance(max_len, int) and 0 < max_len < 100_000:
            settings["max_length"] = max_len
        unk = getattr(tokenizer, "unk_token", None)
        if isinstance(unk, str) and unk in vocab:
            settings["unk_token"] = unk
        settings.update(kwargs)
        return cls([t for t, _ in ordered], **settings)

    # ------------------------------------------------------------------ tokenization
    def _normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """HF BertNormalizer, in graph: drop control/format characters (keeping tab/newline/CR, which are
        whitespace), every space separator becomes ' '; uncased: NFD, drop non-spacing marks (accents), then lower-case."""
        texts = tf.strings.regex_replace(texts, r"[^\P{C}\t\n\r]", "")
        texts = tf.strings.regex_replace(texts, r"\p{Zs}", " ")  # text.BertTokenizer misses e.g. U+00A0 otherwise
        if self.do_lower_case:
            texts = text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
            texts = tf.strings.lower(texts, encoding="utf-8")
        return texts

    def _words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return self.tf_tokenizer.tokenize(self._normalize(texts)).merge_dims(1, -1)

    def call(
        self,
        text_input,
        text_pair=None,
        padding: Optional[str] = None,
        truncation: Optional[bool] = None,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        return_token_type_ids: Optional[bool] = None,
        return_attention_mask: Optional[bool] = None,
    ):
        """Tokenize ``text_input`` (string (batch,) or (batch, 2) for pairs) [and ``text_pair`` (batch,)].

        Returns a dict of int64 (batch, length): input_ids, token_type_ids, attention_mask (as requested).
        """
        padding = self.padding if padding is None else padding
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        truncation = self.truncation if truncation is None else truncation
        max_length = self.max_length if max_length is None else int(max_length)
        pad_to_multiple_of = self.pad_to_multiple_of if pad_to_multiple_of is None else pad_to_multiple_of
        return_token_type_ids = self.return_token_type_ids if return_token_type_ids is None else return_token_type_ids
        return_attention_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask

        text_input = _as_strings(text_input, "text")
        if text_pair is not None:
            text_pair = _as_strings(text_pair, "text_pair")
            if text_input.shape.rank != 1 or text_pair.shape.rank != 1:
                raise ValueError("with text_pair, text and text_pair must both be 1-D string tensors (batch,)")
        elif text_input.shape.rank == 2:
            text_input, text_pair = text_input[:, 0], text_input[:, 1]
        elif text_input.shape.rank == 0:
            text_input = text_input[None]
        first = self._words(text_input)
        if text_pair is None:
            if truncation:
                first = first[:, : max_length - 2]
            segments = (first,)
        else:
            second = self._words(text_pair)
            if truncation:
                first, second = _truncate_longest_first(first, second, max_length - 3)  # [CLS] A [SEP] B [SEP]
            segments = (first, second)
        input_ids, token_type_ids = text.combine_segments(
            segments, start_of_sequence_id=self.cls_token_id, end_of_segment_id=self.sep_token_id
        )
        if padding == "longest":
            length = input_ids.bounding_shape(axis=1)
            if pad_to_multiple_of:
                length = pad_to_multiple_of * (-tf.math.floordiv(-length, pad_to_multiple_of))
        else:
            length = max_length
        input_ids, attention_mask = text.pad_model_inputs(input_ids, max_seq_length=length, pad_value=self.pad_token_id)
        output = {"input_ids": input_ids}
        if return_token_type_ids:
            output["token_type_ids"], _ = text.pad_model_inputs(token_type_ids, max_seq_length=length, pad_value=0)
        if return_attention_mask:
            output["attention_mask"] = attention_mask
        return output

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_list=self.vocab_list,
            do_lower_case=self.do_lower_case,
            cls_token_id=self.cls_token_id,
            sep_token_id=self.sep_token_id,
            pad_token_id=self.pad_token_id,
            padding=self.padding,
            truncation=self.truncation,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_token_type_ids=self.return_token_type_ids,
            return_attention_mask=self.return_attention_mask,
            use_fast_bert_tokenizer=self.use_fast_bert_tokenizer,
            unk_token=self.unk_token,
        )
        return config


def _truncate_longest_first(first: tf.RaggedTensor, second: tf.RaggedTensor, budget: int):
    """HF's ``longest_first`` for pairs, per row: the shorter segment (the first on a tie) keeps
    min(its length, floor(budget / 2)) tokens, the longer the rest of the budget.

    (tensorflow-text's ShrinkLongestTrimmer splits the budget differently: off by one token per segment.)"""
    l1, l2 = first.row_lengths(), second.row_lengths()
    budget = tf.constant(budget, l1.dtype)
    over = l1 + l2 > budget
    keep_short = tf.minimum(tf.minimum(l1, l2), budget // 2)
    first_is_short = l1 <= l2
    keep1 = tf.where(over, tf.where(first_is_short, keep_short, budget - keep_short), l1)
    keep2 = tf.where(over, tf.where(first_is_short, budget - keep_short, keep_short), l2)

    def head(segment, keep):
        positions = tf.ragged.range(segment.row_lengths())
        return tf.ragged.boolean_mask(segment, positions < keep[:, None])

    return head(first, keep1), head(second, keep2)


def _as_strings(value: Any, name: str) -> tf.Tensor:
    tensor = value if isinstance(value, (tf.Tensor, tf.RaggedTensor)) else None
    if tensor is None:
        try:
            tensor = tf.convert_to_tensor(value)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be strings (a str, list of str or tf.string tensor), got {type(value).__name__}"
            ) from err
    if tensor.dtype != tf.string:
        raise TypeError(
            f"{name} must be a tf.string tensor of raw text, got dtype {tensor.dtype.name}; "
            f"TFBertTokenizer tokenizes strings (pass token ids to the model directly)"
        )
    return tensor
