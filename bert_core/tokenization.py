"""BERT tokenizers: the shared encoding API and the pure-Python WordPiece ``BertTokenizer``.

The API follows Hugging Face ``transformers`` habits (``tok(text, padding=..., truncation=..., return_tensors=...)``)
so code written for HF keeps working. Ids are Python ints; ``return_tensors`` gives arrays of dtype int64 with shape
``(batch, seq_len)``. No framework is imported here: ``return_tensors='pt'|'tf'|'jax'`` imports it only when asked.
This module does not import ``tokenizers``; ``BertTokenizerFast`` lives in ``bert_core.tokenization_fast``.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from .io_utils import atomic_write_text

logger = logging.getLogger(__name__)

VOCAB_FILES = {"vocab_file": "vocab.txt", "tokenizer_file": "tokenizer.json"}
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
SPECIAL_TOKEN_ATTRS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# HF's "no limit" sentinel for model_max_length when the config does not give one.
VERY_LARGE_INTEGER = int(1e30)

PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------------------------------------------------------
# small utilities
# ----------------------------------------------------------------------------------------------------------------------


def load_vocab(vocab_file: PathLike) -> Dict[str, int]:
    """Read a WordPiece ``vocab.txt`` (one token per line; the line number is the id)."""
    path = Path(vocab_file)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {os.fspath(path)!r}")
    vocab: Dict[str, int] = collections.OrderedDict()
    with open(path, "r", encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            vocab[line.rstrip("\n")] = index
    return vocab


@dataclass
class AddedToken:
    """A token matched verbatim in raw text before WordPiece runs (special tokens and ``add_tokens`` entries).

    ``normalized=False`` means it is matched against the raw (not lower-cased) text; ``lstrip``/``rstrip`` swallow
    whitespace on that side; ``single_word`` only matches whole words.
    """

    content: str
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = True
    special: bool = False

    def __str__(self) -> str:
        return self.content

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _as_added_token(token: Union[str, AddedToken, Any], special: bool) -> AddedToken:
    if isinstance(token, AddedToken):
        return token
    if isinstance(token, str):
        return AddedToken(token, normalized=not special, special=special)
    content = getattr(token, "content", None)  # tokenizers.AddedToken or HF's AddedToken
    if isinstance(content, str):
        return AddedToken(
            content,
            single_word=bool(getattr(token, "single_word", False)),
            lstrip=bool(getattr(token, "lstrip", False)),
            rstrip=bool(getattr(token, "rstrip", False)),
            normalized=bool(getattr(token, "normalized", not special)),
            special=bool(getattr(token, "special", special)),
        )
    raise TypeError(f"a token to add must be a str or AddedToken, got {type(token).__name__}")


# ----------------------------------------------------------------------------------------------------------------------
# character classes. HF calls unicodedata for every character of every input; we compute each class once per
# distinct character and keep it in dicts that str.translate can consult at C speed.
# ----------------------------------------------------------------------------------------------------------------------


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    # \t \n \r are Cc but BERT treats them as whitespace
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    # ASCII symbols such as "$", "^", "`" are not Unicode punctuation but BERT splits them anyway
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    # The CJK Unified Ideographs blocks only: Hangul, Hiragana and Katakana are written with spaces/are not
    # ideographs, so they are left to the whitespace/WordPiece path as in the original BERT.
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class _CleanTable(dict):
    """``str.translate`` table: drop NUL/U+FFFD/control chars, map whitespace to " ", pad CJK ideographs with spaces."""

    def __init__(self, chinese: bool):
        super().__init__()
        self.chinese = chinese

    def __missing__(self, cp: int) -> str:
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or _is_control(char):
            out = ""
        elif _is_whitespace(char):
            out = " "
        elif self.chinese and _is_chinese_char(cp):
            out = f" {char} "
        else:
            out = char
        self[cp] = out
        return out


class _LowerTable(dict):
    """Per-character lower-casing. Differs from ``str.lower`` only for a word-final capital sigma, which HF's slow
    tokenizer lower-cases one character at a time (giving "σ", not "ς")."""

    def __missing__(self, cp: int) -> str:
        out = chr(cp).lower()
        self[cp] = out
        return out


_CLEAN_TABLES = {True: _CleanTable(True), False: _CleanTable(False)}
_LOWER_TABLE = _LowerTable()
_PUNCT_CACHE: Dict[str, bool] = {}
_MN_CACHE: Dict[str, bool] = {}


def _punct(char: str) -> bool:
    hit = _PUNCT_CACHE.get(char)
    if hit is None:
        hit = _PUNCT_CACHE[char] = _is_punctuation(char)
    return hit


def _strip_accents(text: str) -> str:
    text = unicodedata.normalize("NFD", text)
    if text.isascii():
        return text
    out = []
    for char in text:
        mark = _MN_CACHE.get(char)
        if mark is None:
            mark = _MN_CACHE[char] = unicodedata.category(char) == "Mn"
        if not mark:
            out.append(char)
    return "".join(out)


# ----------------------------------------------------------------------------------------------------------------------
# WordPiece pieces
# ----------------------------------------------------------------------------------------------------------------------


class BasicTokenizer:
    """Text cleaning, whitespace/punctuation splitting, optional lower-casing and accent stripping.

    ``strip_accents=None`` follows ``do_lower_case`` (the uncased BERT recipe); ``True``/``False`` force it.
    Tokens in ``never_split`` pass through untouched.
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        never_split: Optional[Iterable[str]] = None,
        tokenize_chinese_chars: bool = True,
        strip_accents: Optional[bool] = None,
        do_split_on_punc: bool = True,
    ):
        self.do_lower_case = do_lower_case
        self.never_split = set(never_split or ())
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self.do_split_on_punc = do_split_on_punc
        self._word_cache: Dict[Tuple[str, frozenset], List[str]] = {}

    def _split_on_punc(self, text: str, never_split: set) -> List[str]:
        if not self.do_split_on_punc or text in never_split:
            return [text]
        if text.isalnum():
            return [text]
        pieces: List[str] = []
        current: List[str] = []
        for char in text:
            if _punct(char):
                if current:
                    pieces.append("".join(current))
                    current = []
                pieces.append(char)
            else:
                current.append(char)
        if current:
            pieces.append("".join(current))
        return pieces

    def _word(self, token: str, never_split: set) -> List[str]:
        if token not in never_split:
            if self.do_lower_case:
                token = token.lower()
            if self.strip_accents is not False and (self.do_lower_case or self.strip_accents):
                token = _strip_accents(token)
        out: List[str] = []
        for piece in self._split_on_punc(token, never_split):
            out.extend(piece.split())
        return out

    def tokenize(self, text: str, never_split: Optional[Iterable[str]] = None) -> List[str]:
        """Split ``text`` into basic tokens (words and single punctuation characters)."""
        extra = frozenset(never_split) if never_split else frozenset()
        merged = self.never_split | extra if extra else self.never_split
        text = text.translate(_CLEAN_TABLES[bool(self.tokenize_chinese_chars)])
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        out: List[str] = []
        cache = self._word_cache
        if len(cache) > 200_000:  # bounded memory on huge corpora
            cache.clear()
        for token in text.split():
            key = (token, extra)
            pieces = cache.get(key)
            if pieces is None:
                pieces = cache[key] = self._word(token, merged)
            out.extend(pieces)
        return out


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece with ``##`` continuation pieces.

    A word longer than ``max_input_chars_per_word`` characters, or one that cannot be covered by vocabulary pieces,
    becomes ``unk_token``.
    """

    def __init__(self, vocab: Dict[str, int], unk_token: str, max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # no vocabulary piece is longer than this, so longer candidate substrings need not be looked up
        self._max_piece = max((len(t) for t in vocab), default=1)
        self._cache: Dict[str, List[str]] = {}

    def _word(self, word: str) -> List[str]:
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [self.unk_token]
        vocab = self.vocab
        if word in vocab:
            return [word]
        pieces = []
        start = 0
        limit = self._max_piece
        while start < n:
            end = min(n, start + limit)
            found = None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = "##" + sub
                if sub in vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                return [self.unk_token]
            pieces.append(found)
            start = end
        return pieces

    def tokenize(self, text: str) -> List[str]:
        """WordPiece tokens of the whitespace-separated words of ``text``."""
        out: List[str] = []
        cache = self._cache
        if len(cache) > 200_000:
            cache.clear()
        for word in text.split():
            pieces = cache.get(word)
            if pieces is None:
                pieces = cache[word] = self._word(word)
            out.extend(pieces)
        return out


# ----------------------------------------------------------------------------------------------------------------------
# BatchEncoding
# ----------------------------------------------------------------------------------------------------------------------


def _to_numpy(value: Any):
    """int64 array of ``value``; float values (e.g. regression labels passed through ``pad``) stay float."""
    import numpy as np

    try:
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError("the rows have different lengths")
        if arr.dtype.kind != "f" or arr.size == 0:
            arr = arr.astype(np.int64)
    except (ValueError, TypeError) as err:
        raise ValueError(
            "cannot make a tensor from sequences of different lengths; pass padding=True (or 'max_length') "
            f"and/or truncation=True: {err}"
        ) from err
    return arr


_EXTRA_FOR_TENSORS = {"torch": "torch", "tensorflow": "tf", "jax.numpy": "flax"}


def _import_for_tensors(module: str, tensor_type: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"return_tensors={tensor_type!r} needs {module.split('.')[0]}, which is not installed: "
            f"pip install 'multi-bert[{_EXTRA_FOR_TENSORS[module]}]' (or use return_tensors='np')"
        ) from err


def convert_to_tensors(value: Any, tensor_type: Optional[str]):
    """Convert nested int lists to an int64 array/tensor of ``tensor_type`` in None/'np'/'pt'/'tf'/'jax'
    ('jax' gives int32 unless ``jax_enable_x64`` is on)."""
    if tensor_type is None:
        return value
    if not isinstance(tensor_type, str):
        tensor_type = getattr(tensor_type, "value", tensor_type)
    if tensor_type == "np":
        return _to_numpy(value)
    if tensor_type == "pt":
        torch = _import_for_tensors("torch", tensor_type)  # lazily: only when asked for
        return torch.from_numpy(_to_numpy(value))
    if tensor_type == "tf":
        tf = _import_for_tensors("tensorflow", tensor_type)
        return tf.constant(_to_numpy(value))
    if tensor_type in ("jax", "flax"):
        jnp = _import_for_tensors("jax.numpy", tensor_type)

        # without jax_enable_x64 jax stores int32; converting silently (as HF does) beats a warning per call
        arr = _to_numpy(value)
        import jax

        if not jax.config.read("jax_enable_x64"):
            arr = arr.astype("int32")
        return jnp.asarray(arr)
    raise ValueError(f"return_tensors must be None, 'np', 'pt', 'tf' or 'jax'; got {tensor_type!r}")


class CharSpan(NamedTuple):
    """Characters ``[start, end)`` of the original string."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Tokens ``[start, end)`` of an encoded row."""

    start: int
    end: int


class BatchEncoding(collections.UserDict):
    """Tokenizer output: a dict of ``input_ids``/``token_type_ids``/``attention_mask``/... with attribute access.

    Values are lists (``[seq_len]`` for one unbatched input, ``[batch][seq_len]`` otherwise) or int64 arrays/tensors
    of shape ``(batch, seq_len)`` when ``return_tensors`` was given. ``encodings`` holds the ``tokenizers.Encoding``
    objects of a fast tokenizer (None for the slow one), which back ``word_ids``/``tokens``/``sequence_ids``.
    """

    _NO_TENSOR_KEYS = ("overflowing_tokens", "num_truncated_tokens")

    def __init__(self, data=None, encodings=None, tensor_type=None, n_sequences=None):
        super().__init__(data or {})
        self._encodings = encodings
        self._n_sequences = n_sequences
        self.convert_to_tensors(tensor_type)

    def __getattr__(self, item: str):
        if item.startswith("_") or item == "data":
            raise AttributeError(item)
        try:
            return self.data[item]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key {item!r}; keys are {list(self.data)}") from None

    def __getitem__(self, item):
        if isinstance(item, str):
            return self.data[item]
        if isinstance(item, int) and self._encodings is not None:
            return self._encodings[item]
        raise KeyError(f"index a BatchEncoding with a key name (str), got {item!r}")

    def __getstate__(self):
        return {"data": self.data, "encodings": self._encodings, "n": self._n_sequences}

    def __setstate__(self, state):
        self.data = state["data"]
        self._encodings = state["encodings"]
        self._n_sequences = state["n"]

    @property
    def encodings(self):
        return self._encodings

    @property
    def n_sequences(self) -> Optional[int]:
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    def _encoding(self, batch_index: int, method: str = "word_ids()/tokens()/sequence_ids()"):
        if self._encodings is None:
            raise ValueError(
                f"{method} need a fast tokenizer (BertTokenizerFast); "
                "the pure-Python BertTokenizer does not track alignments"
            )
        n = len(self._encodings)
        if not isinstance(batch_index, int) or not -n <= batch_index < n:
            raise IndexError(f"batch_index {batch_index!r} is out of range for a batch of {n} rows")
        return self._encodings[batch_index]

    def _locate(self, method: str, first: int, second: Optional[int]):
        """(Encoding, index) from HF's two call forms: ``f(index)`` on a batch of one, ``f(batch_index, index)``."""
        batch_index, index = (0, first) if second is None else (first, second)
        encoding = self._encoding(batch_index, method)
        if not isinstance(index, int):
            raise TypeError(f"{method}: the index must be an int, got {_type_name(index)}")
        return encoding, index

    def _token(self, method: str, first: int, second: Optional[int]):
        encoding, index = self._locate(method, first, second)
        n = len(encoding)
        if not -n <= index < n:
            raise IndexError(f"{method}: token index {index} is out of range for a row of {n} tokens")
        return encoding, index % n

    def token_to_sequence(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[int]:
        """0/1: the sequence (text or pair) the token comes from; None for special and padding tokens."""
        encoding, index = self._token("token_to_sequence()", batch_or_token_index, token_index)
        return encoding.token_to_sequence(index)

    def token_to_word(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[int]:
        """Index of the word (within its sequence) that holds the token; None for special and padding tokens."""
        encoding, index = self._token("token_to_word()", batch_or_token_index, token_index)
        return encoding.token_to_word(index)

    def token_to_chars(self, batch_or_token_index: int, token_index: Optional[int] = None) -> Optional[CharSpan]:
        """Characters of the token in its original string; None for special and padding tokens."""
        encoding, index = self._token("token_to_chars()", batch_or_token_index, token_index)
        span = encoding.token_to_chars(index)
        return CharSpan(*span) if span is not None else None

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[TokenSpan]:
        """Tokens of word ``word_index`` of sequence ``sequence_index`` (0: text, 1: pair); None when no token
        holds it (e.g. truncated away)."""
        encoding, index = self._locate("word_to_tokens()", batch_or_word_index, word_index)
        span = encoding.word_to_tokens(index, sequence_index) if index >= 0 else None
        return TokenSpan(*span) if span is not None else None

    def word_to_chars(
        self, batch_or_word_index: int, word_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[CharSpan]:
        """Characters of word ``word_index`` of sequence ``sequence_index``; None when no token holds it."""
        encoding, index = self._locate("word_to_chars()", batch_or_word_index, word_index)
        span = encoding.word_to_chars(index, sequence_index) if index >= 0 else None
        return CharSpan(*span) if span is not None else None

    def char_to_token(
        self, batch_or_char_index: int, char_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[int]:
        """Index of the token holding character ``char_index`` of sequence ``sequence_index``; None for a
        character no token holds (whitespace, truncated away)."""
        encoding, index = self._locate("char_to_token()", batch_or_char_index, char_index)
        return encoding.char_to_token(index, sequence_index) if index >= 0 else None

    def char_to_word(
        self, batch_or_char_index: int, char_index: Optional[int] = None, sequence_index: int = 0
    ) -> Optional[int]:
        """Index of the word holding character ``char_index`` of sequence ``sequence_index``; None when none does."""
        encoding, index = self._locate("char_to_word()", batch_or_char_index, char_index)
        return encoding.char_to_word(index, sequence_index) if index >= 0 else None

    def word_ids(self, batch_index: int = 0) -> List[Optional[int]]:
        """Word index of every token of row ``batch_index`` (None for special and padding tokens)."""
        return self._encoding(batch_index).word_ids

    def sequence_ids(self, batch_index: int = 0) -> List[Optional[int]]:
        """0/1 for tokens of the first/second sequence, None for special and padding tokens."""
        return self._encoding(batch_index).sequence_ids

    def tokens(self, batch_index: int = 0) -> List[str]:
        return self._encoding(batch_index).tokens

    def convert_to_tensors(self, tensor_type: Optional[str] = None) -> "BatchEncoding":
        if tensor_type is None:
            return self
        for key in list(self.data):
            if key in self._NO_TENSOR_KEYS:
                continue
            self.data[key] = convert_to_tensors(self.data[key], tensor_type)
        return self

    def to(self, device) -> "BatchEncoding":
        """Move torch tensors to ``device`` (no-op for other values)."""
        for key, value in self.data.items():
            if hasattr(value, "to") and callable(value.to):
                self.data[key] = value.to(device)
        return self


# ----------------------------------------------------------------------------------------------------------------------
# shared API
# ----------------------------------------------------------------------------------------------------------------------

_TRUNCATION = {"longest_first", "only_first", "only_second", "do_not_truncate"}
_PADDING = {"longest", "max_length", "do_not_pad"}


def _padding_strategy(padding) -> str:
    if padding is True:
        return "longest"
    if padding is False or padding is None:
        return "do_not_pad"
    padding = getattr(padding, "value", padding)
    if padding not in _PADDING:
        raise ValueError(f"padding must be True/False/'longest'/'max_length'/'do_not_pad', got {padding!r}")
    return padding


def _truncation_strategy(truncation) -> str:
    if truncation is True:
        return "longest_first"
    if truncation is False or truncation is None:
        return "do_not_truncate"
    truncation = getattr(truncation, "value", truncation)
    if truncation not in _TRUNCATION:
        raise ValueError(
            "truncation must be True/False/'longest_first'/'only_first'/'only_second'/'do_not_truncate', "
            f"got {truncation!r}"
        )
    return truncation


def _type_name(value: Any) -> str:
    return type(value).__name__


def _py(value: Any) -> Any:
    """Nested Python lists of a numpy/torch/tf value (``tolist``), lists of such values too."""
    if hasattr(value, "numpy") and not hasattr(value, "tolist"):
        value = value.numpy()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    return value


def _pad_row(value: List[Any], n: int, fill: Any, side: str) -> List[Any]:
    """``value`` with ``n`` copies of ``fill`` on ``side`` ("left"/"right"); ``value`` itself when ``n <= 0``."""
    if n <= 0:
        return value
    pad = [fill] * n
    return list(value) + pad if side == "right" else pad + list(value)


@dataclass(frozen=True)
class _CallOptions:
    """The options of one tokenizer call once checked and resolved (``BertTokenizerBase._resolve_options``)."""

    add_special_tokens: bool
    is_split_into_words: bool
    padding: str  # "longest" | "max_length" | "do_not_pad"
    truncation: str  # "longest_first" | "only_first" | "only_second" | "do_not_truncate"
    max_length: Optional[int]  # after the model_max_length default; None: no limit
    stride: int
    pad_to_multiple_of: Optional[int]
    padding_side: str  # "left" | "right"
    keys: Tuple[str, ...]  # output keys in HF's order: input_ids, token_type_ids, attention_mask, ...
    return_overflowing_tokens: bool
    return_length: bool
    return_tensors: Optional[str]

    @property
    def truncation_length(self) -> Optional[int]:
        """The length rows are truncated to (None: no truncation)."""
        return self.max_length if self.truncation != "do_not_truncate" else None

    @property
    def row_fields(self) -> Tuple[str, ...]:
        """The per-token keys the encoder returns: every output key but the attention mask (built when padding)."""
        return tuple(k for k in self.keys if k != "attention_mask")


class BertTokenizerBase:
    """Everything ``BertTokenizer`` and ``BertTokenizerFast`` share: input validation, padding, truncation options,
    tensors, decoding helpers and save/load of the config files. Subclasses provide ``_encode_rows``."""

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    is_fast = False
    _SAVE_FILES: Tuple[str, ...] = ("vocab.txt",)

    def _init_common(
        self,
        *,
        unk_token,
        sep_token,
        pad_token,
        cls_token,
        mask_token,
        model_max_length: Optional[int],
        padding_side: str,
        truncation_side: str,
        clean_up_tokenization_spaces: bool,
        name_or_path: str = "",
        additional_special_tokens: Optional[Sequence] = None,
    ):
        self._special: Dict[str, Optional[AddedToken]] = {}
        for attr, value in zip(SPECIAL_TOKEN_ATTRS, (unk_token, sep_token, pad_token, cls_token, mask_token)):
            self._special[attr] = None if value is None else _as_added_token(value, special=True)
        self._additional_special: List[AddedToken] = [
            _as_added_token(t, special=True) for t in (additional_special_tokens or ())
        ]
        self.model_max_length = int(model_max_length) if model_max_length is not None else VERY_LARGE_INTEGER
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if truncation_side not in ("right", "left"):
            raise ValueError(f"truncation_side must be 'right' or 'left', got {truncation_side!r}")
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.name_or_path = name_or_path
        self._warned_too_long = False

    # -- special tokens ------------------------------------------------------------------------------------------------

    def _special_str(self, attr: str) -> Optional[str]:
        token = self._special.get(attr)
        return None if token is None else token.content

    unk_token = property(lambda self: self._special_str("unk_token"))
    sep_token = property(lambda self: self._special_str("sep_token"))
    pad_token = property(lambda self: self._special_str("pad_token"))
    cls_token = property(lambda self: self._special_str("cls_token"))
    mask_token = property(lambda self: self._special_str("mask_token"))

    def _special_id(self, attr: str) -> Optional[int]:
        token = self._special_str(attr)
        return None if token is None else self.convert_tokens_to_ids(token)

    unk_token_id = property(lambda self: self._special_id("unk_token"))
    sep_token_id = property(lambda self: self._special_id("sep_token"))
    pad_token_id = property(lambda self: self._special_id("pad_token"))
    cls_token_id = property(lambda self: self._special_id("cls_token"))
    mask_token_id = property(lambda self: self._special_id("mask_token"))
    pad_token_type_id = 0

    @property
    def additional_special_tokens(self) -> List[str]:
        return [t.content for t in self._additional_special]

    @property
    def special_tokens_map(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {a: self._special_str(a) for a in SPECIAL_TOKEN_ATTRS if self._special.get(a) is not None}
        if self._additional_special:
            out["additional_special_tokens"] = self.additional_special_tokens
        return out

    @property
    def all_special_tokens(self) -> List[str]:
        seen: List[str] = []
        for attr in SPECIAL_TOKEN_ATTRS:
            token = self._special_str(attr)
            if token is not None and token not in seen:
                seen.append(token)
        for token in self._additional_special:
            if token.content not in seen:
                seen.append(token.content)
        return seen

    @property
    def all_special_ids(self) -> List[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def add_special_tokens(
        self, special_tokens_dict: Dict[str, Any], replace_additional_special_tokens: bool = True
    ) -> int:
        """Set/extend special tokens, e.g. ``{"additional_special_tokens": ["[E1]"]}``. Returns how many tokens were
        new to the vocabulary."""
        if not isinstance(special_tokens_dict, dict):
            raise TypeError(f"add_special_tokens expects a dict, got {_type_name(special_tokens_dict)}")
        to_add: List[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key == "additional_special_tokens":
                if isinstance(value, (str, AddedToken)) or not isinstance(value, (list, tuple)):
                    raise TypeError(f"additional_special_tokens must be a list or tuple, got {_type_name(value)}")
                tokens = [_as_added_token(v, special=True) for v in value]
                if replace_additional_special_tokens:
                    self._additional_special = list(tokens)
                else:
                    known = {t.content for t in self._additional_special}
                    self._additional_special += [t for t in tokens if t.content not in known]
                to_add += tokens
            elif key in SPECIAL_TOKEN_ATTRS:
                token = _as_added_token(value, special=True)
                self._special[key] = token
                to_add.append(token)
            else:
                raise ValueError(
                    f"unknown special token key {key!r}; use one of {SPECIAL_TOKEN_ATTRS} or additional_special_tokens"
                )
        return self._add_tokens(to_add, special_tokens=True)

    def add_tokens(self, new_tokens, special_tokens: bool = False) -> int:
        """Add tokens matched verbatim before WordPiece; returns how many were new to the vocabulary."""
        if isinstance(new_tokens, (str, AddedToken)):
            new_tokens = [new_tokens]
        if not isinstance(new_tokens, (list, tuple)):
            raise TypeError(f"add_tokens expects a str, AddedToken or list of them, got {_type_name(new_tokens)}")
        tokens = [_as_added_token(t, special=special_tokens) for t in new_tokens]
        return self._add_tokens(tokens, special_tokens=special_tokens)

    def __len__(self) -> int:
        return len(self.get_vocab())

    # -- common encoding entry point -----------------------------------------------------------------------------------

    @staticmethod
    def _check_text(value: Any, what: str, split_words: bool) -> None:
        if split_words:
            if not isinstance(value, (list, tuple)):
                raise TypeError(
                    f"{what} must be a list of str words when is_split_into_words=True, got {_type_name(value)}"
                )
            for word in value:
                if not isinstance(word, str):
                    raise TypeError(f"{what} must contain only str words, found {_type_name(word)}")
        elif not isinstance(value, str):
            raise TypeError(f"{what} must be a str, got {_type_name(value)}")

    def _normalize_inputs(self, text, text_pair, is_split_into_words) -> Tuple[bool, List[Tuple[Any, Any]]]:
        """Check the texts and bring every input form to rows ``(first, second or None)``.

        Returns ``(batched, rows)``. A batch element given as a 2-tuple/list of texts is a pair (HF habit). An empty
        unbatched ``text_pair`` (``""``, or ``[]`` with ``is_split_into_words``) is no pair, as in HF's fast
        tokenizer: ``[CLS] A [SEP]``, not ``[CLS] A [SEP] [SEP]``. In a batch an empty second text stays a pair, as in
        both HF tokenizers.
        """
        if text is None:
            raise TypeError("text must be a str, a list of str, or a list of pairs; got None")
        if is_split_into_words:
            batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
        else:
            batched = isinstance(text, (list, tuple))
        if not batched:
            self._check_text(text, "text", is_split_into_words)
            if text_pair is not None:
                self._check_text(text_pair, "text_pair", is_split_into_words)
            return False, [(text, text_pair or None)]
        items = list(text)
        if text_pair is not None:
            if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(items):
                raise ValueError(
                    f"text_pair must be a list of the same length as the batch text ({len(items)}), "
                    f"got {_type_name(text_pair)}"
                    + (f" of length {len(text_pair)}" if isinstance(text_pair, (list, tuple)) else "")
                )
            pairs = list(zip(items, text_pair))
        else:
            pairs = []
            for item in items:
                if (not is_split_into_words and isinstance(item, (list, tuple))) or (
                    is_split_into_words
                    and isinstance(item, (list, tuple))
                    and len(item) == 2
                    and isinstance(item[0], (list, tuple))
                ):
                    if len(item) != 2:
                        raise ValueError(f"a pair in a batch must have exactly 2 texts, got {len(item)}")
                    pairs.append((item[0], item[1]))
                else:
                    pairs.append((item, None))
        for i, (first, second) in enumerate(pairs):
            self._check_text(first, f"text[{i}]", is_split_into_words)
            if second is not None:
                self._check_text(second, f"text_pair[{i}]", is_split_into_words)
        return True, pairs

    def __call__(
        self,
        text=None,
        text_pair=None,
        *,
        add_special_tokens: bool = True,
        padding=False,
        truncation=None,
        max_length: Optional[int] = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: Optional[int] = None,
        padding_side: Optional[str] = None,
        return_tensors: Optional[str] = None,
        return_token_type_ids: Optional[bool] = None,
        return_attention_mask: Optional[bool] = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        **kwargs,
    ) -> BatchEncoding:
        """Encode a text, a pair, a batch of texts/pairs, or pre-split words.

        Returns a BatchEncoding with ``input_ids`` (and ``token_type_ids``, ``attention_mask`` and the optional keys
        requested). Unbatched input gives ``[seq_len]`` lists; batched input ``[batch][seq_len]``; with
        ``return_tensors`` int64 arrays of shape ``(batch, seq_len)`` (batch 1 for an unbatched input).

        The steps, one method each: ``_normalize_inputs`` (rows of text and pair), ``_resolve_options``,
        ``_encode_rows`` (ids of each text and pair, truncation with its overflow window, special tokens), ``_pad``,
        ``_batch_encoding`` (output keys, lengths, tensors).
        """
        if kwargs:
            raise TypeError(f"unexpected keyword argument(s): {sorted(kwargs)}")
        batched, pairs = self._normalize_inputs(text, text_pair, is_split_into_words)
        options = self._resolve_options(
            pairs,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            is_split_into_words=is_split_into_words,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_tensors=return_tensors,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping,
            return_length=return_length,
            verbose=verbose,
        )
        rows, extra, encodings = self._encode_rows(pairs, options)
        lengths = [len(r) for r in rows["input_ids"]]
        if verbose and options.max_length is None:
            self._warn_if_too_long(lengths)
        columns = self._pad(rows, lengths, encodings, options)
        return self._batch_encoding(columns, lengths, extra, encodings, pairs, batched, options)

    def _resolve_options(
        self,
        pairs: List[Tuple[Any, Any]],
        *,
        add_special_tokens: bool,
        padding,
        truncation,
        max_length: Optional[int],
        stride: int,
        is_split_into_words: bool,
        pad_to_multiple_of: Optional[int],
        padding_side: Optional[str],
        return_tensors: Optional[str],
        return_token_type_ids: Optional[bool],
        return_attention_mask: Optional[bool],
        return_overflowing_tokens: bool,
        return_special_tokens_mask: bool,
        return_offsets_mapping: bool,
        return_length: bool,
        verbose: bool,
    ) -> _CallOptions:
        """Check the call's options and resolve them as HF does: strategies from bools/strings, ``max_length`` from
        ``model_max_length`` when padding/truncation need one, the output keys from the ``return_*`` flags."""
        pad_mode, trunc_mode, max_length = self._padding_and_truncation(padding, truncation, max_length, verbose)
        if (
            pad_to_multiple_of is not None
            and max_length is not None
            and pad_mode != "do_not_pad"
            and trunc_mode != "do_not_truncate"
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                f"truncation and padding together need max_length ({max_length}) to be a multiple of "
                f"pad_to_multiple_of ({pad_to_multiple_of})"
            )
        # HF's slow tokenizer accepts any stride (the overflow window just grows); the Rust one panics, so the
        # fast tokenizer checks up front
        if self.is_fast and stride and trunc_mode != "do_not_truncate" and max_length is not None:
            specials = (
                self.num_special_tokens_to_add(pair=any(p[1] is not None for p in pairs)) if add_special_tokens else 0
            )
            if stride >= max_length - specials and return_overflowing_tokens:
                raise ValueError(
                    f"stride ({stride}) must be smaller than the tokens left after special tokens "
                    f"(max_length {max_length} - {specials})"
                )
        if trunc_mode != "do_not_truncate" and max_length is not None and add_special_tokens:
            # the Rust tokenizer would silently return more than max_length ids here; HF's slow one raises
            specials = self.num_special_tokens_to_add(pair=any(p[1] is not None for p in pairs))
            if max_length < specials:
                raise ValueError(
                    f"max_length={max_length} is smaller than the {specials} special tokens every row needs "
                    f"([CLS] ... [SEP]{' ... [SEP]' if specials == 3 else ''}); use max_length >= {specials} "
                    f"or add_special_tokens=False"
                )
        if return_token_type_ids and not add_special_tokens and not self.is_fast:
            raise ValueError("return_token_type_ids=True needs add_special_tokens=True (as in HF's slow tokenizer)")
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        padding_side = padding_side or self.padding_side
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        wanted = {
            "input_ids": True,
            "token_type_ids": return_token_type_ids,
            "attention_mask": return_attention_mask,
            "special_tokens_mask": return_special_tokens_mask,
            "offset_mapping": return_offsets_mapping,
        }
        return _CallOptions(
            add_special_tokens=add_special_tokens,
            is_split_into_words=is_split_into_words,
            padding=pad_mode,
            truncation=trunc_mode,
            max_length=max_length,
            stride=stride,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            keys=tuple(k for k, on in wanted.items() if on),
            return_overflowing_tokens=return_overflowing_tokens,
            return_length=return_length,
            return_tensors=return_tensors,
        )

    def _padding_and_truncation(self, padding, truncation, max_length, verbose: bool) -> Tuple[str, str, Optional[int]]:
        """``(padding strategy, truncation strategy, max_length)`` with HF's defaults: ``max_length`` alone implies
        truncation, and padding/truncation without ``max_length`` use ``model_max_length`` (none when unlimited)."""
        pad_mode = _padding_strategy(padding)
        trunc_mode = _truncation_strategy(truncation)
        if truncation is None and max_length is not None and pad_mode == "do_not_pad":
            if verbose:
                logger.warning(
                    "max_length was given without truncation=True; truncating with 'longest_first' (as HF does). "
                    "Pass truncation=True explicitly to silence this."
                )
            trunc_mode = "longest_first"
        if max_length is None and (pad_mode == "max_length" or trunc_mode != "do_not_truncate"):
            if self.model_max_length < VERY_LARGE_INTEGER:
                max_length = self.model_max_length
            elif pad_mode == "max_length":
                raise ValueError("padding='max_length' needs max_length: the tokenizer has no model_max_length")
            else:
                trunc_mode = "do_not_truncate"
        if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
            raise ValueError(f"max_length must be a non-negative int, got {max_length!r}")
        return pad_mode, trunc_mode, max_length

    def _warn_if_too_long(self, lengths: List[int]) -> None:
        """Log once per tokenizer that a row is longer than ``model_max_length`` (HF's warning, same words)."""
        longest = max(lengths, default=0)
        if longest > self.model_max_length and not self._warned_too_long:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({longest} > {self.model_max_length}). Running this sequence through the model will "
                "result in indexing errors"
            )
            self._warned_too_long = True

    def _pad(
        self, rows: Dict[str, List[Any]], lengths: List[int], encodings, options: _CallOptions
    ) -> Dict[str, List[Any]]:
        """The output columns (``options.keys``, in order) padded to the longest row or ``max_length`` and rounded
        up to ``pad_to_multiple_of``; the attention mask is built here. Pads the fast tokenizer's Encodings too."""
        target = None
        if options.padding == "longest":
            target = max(lengths, default=0)
        elif options.padding == "max_length":
            target = options.max_length
        multiple = options.pad_to_multiple_of
        if target is not None and multiple and target % multiple:
            target = (target // multiple + 1) * multiple
        pad_values = {
            "input_ids": self.pad_token_id,
            "token_type_ids": self.pad_token_type_id,
            "attention_mask": 0,
            "special_tokens_mask": 1,
            "offset_mapping": (0, 0),
        }
        if target is not None and pad_values["input_ids"] is None:
            raise ValueError("padding needs a pad_token; set one with add_special_tokens({'pad_token': '[PAD]'})")
        columns: Dict[str, List[Any]] = {}
        for key in options.keys:
            column = [[1] * n for n in lengths] if key == "attention_mask" else rows[key]
            if target is not None:
                fill = pad_values[key]
                column = [_pad_row(value, target - n, fill, options.padding_side) for value, n in zip(column, lengths)]
            columns[key] = column
        if encodings is not None and target is not None:
            for enc in encodings:
                if len(enc) < target:
                    enc.pad(
                        target,
                        direction=options.padding_side,
                        pad_id=self.pad_token_id,
                        pad_type_id=self.pad_token_type_id,
                        pad_token=self.pad_token,
                    )
        return columns

    def _batch_encoding(
        self,
        columns: Dict[str, List[Any]],
        lengths: List[int],
        extra: Dict[str, Any],
        encodings,
        pairs: List[Tuple[Any, Any]],
        batched: bool,
        options: _CallOptions,
    ) -> BatchEncoding:
        """The BatchEncoding of the padded columns, plus ``length`` when asked and the encoder's extra keys; one
        unbatched input gives flat lists, ``return_tensors`` arrays of shape ``(batch, seq_len)``."""
        data = dict(columns)
        if options.return_length:
            # HF habit: the slow tokenizer reports pre-padding lengths for batches, the fast one padded lengths
            data["length"] = lengths if batched and not self.is_fast else [len(v) for v in data["input_ids"]]
        data.update(extra)
        # HF habit: one unbatched input gives flat lists, except fast overflow rows (several rows per input)
        if not batched and options.return_tensors is None and not (self.is_fast and options.return_overflowing_tokens):
            data = {k: v[0] for k, v in data.items()}
        return BatchEncoding(
            data,
            encodings=encodings,
            tensor_type=options.return_tensors,
            n_sequences=max((2 if p[1] is not None else 1 for p in pairs), default=1),
        )

    def encode(self, text, text_pair=None, *, add_special_tokens: bool = True, **kwargs) -> List[int]:
        """Ids of one text (or pair): ``[seq_len]`` list of int."""
        if isinstance(text, (list, tuple)) and not kwargs.get("is_split_into_words"):
            raise TypeError(
                f"encode takes one str (and an optional pair); got {_type_name(text)}; call the tokenizer for batches"
            )
        enc = self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)
        ids = enc["input_ids"]
        if hasattr(ids, "shape"):
            return ids
        if ids and isinstance(ids[0], list):  # overflowing rows of a fast tokenizer
            return ids[0]
        return ids

    def encode_plus(self, text, text_pair=None, **kwargs) -> BatchEncoding:
        return self(text, text_pair, **kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs, **kwargs) -> BatchEncoding:
        return self(list(batch_text_or_text_pairs), **kwargs)

    # -- padding already-encoded inputs --------------------------------------------------------------------------------

    def pad(
        self,
        encoded_inputs,
        padding=True,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        padding_side: Optional[str] = None,
        return_attention_mask: Optional[bool] = None,
        return_tensors: Optional[str] = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad encoded inputs as HF's ``tokenizer.pad``: ``input_ids`` with the pad id, ``token_type_ids`` with 0,
        ``special_tokens_mask`` with 1, and an ``attention_mask`` (built when missing); other keys pass through
        unpadded (use ``bert_core.data.DataCollatorWithPadding`` to pad labels too). Nothing is truncated.

        Args:
            encoded_inputs: one encoding (dict of ``[seq_len]`` lists), a batch (dict of ``[batch][seq_len]``
                lists, a BatchEncoding) or a list of encodings (a collate function's input). numpy rows are
                accepted and give numpy outputs unless ``return_tensors`` says otherwise.
            padding: True/'longest' (to the longest row), 'max_length' (to ``max_length``), False/'do_not_pad'.
            pad_to_multiple_of: round the padded length up to a multiple of it.
            return_tensors: None (lists), 'np', 'pt', 'tf' or 'jax': int64 ``(batch, seq_len)``.

        Returns:
            a BatchEncoding of the padded columns.
        """
        if isinstance(encoded_inputs, (list, tuple)):
            if not encoded_inputs:
                raise ValueError("pad got an empty list of encodings")
            if not isinstance(encoded_inputs[0], Mapping):
                raise TypeError(
                    f"pad takes an encoding, a batch of encodings or a list of them, got a list of "
                    f"{_type_name(encoded_inputs[0])}"
                )
            encoded_inputs = {key: [e[key] for e in encoded_inputs] for key in encoded_inputs[0]}
        if not isinstance(encoded_inputs, Mapping):
            raise TypeError(f"pad takes an encoding or a list of encodings, got {_type_name(encoded_inputs)}")
        encoded_inputs = dict(encoded_inputs)
        main = self.model_input_names[0]
        if main not in encoded_inputs:
            raise ValueError(
                f"pad needs an encoding or a list of encodings with {main!r}, got keys {list(encoded_inputs)}"
            )
        required = encoded_inputs[main]
        if required is None or len(required) == 0:
            if return_attention_mask:
                encoded_inputs["attention_mask"] = []
            return BatchEncoding(encoded_inputs)
        # array rows (numpy/torch/tf) become lists; numpy input gives numpy output, as in HF
        first = required[0]
        if isinstance(first, (list, tuple)):
            first = next((row[0] for row in required if len(row)), first)
        if not isinstance(first, (int, list, tuple)):
            if return_tensors is None:
                module = type(first).__module__.split(".")[0]
                return_tensors = {"numpy": "np", "torch": "pt", "tensorflow": "tf", "jaxlib": "jax", "jax": "jax"}.get(
                    module
                )
            encoded_inputs = {k: _py(v) for k, v in encoded_inputs.items()}
        pad_mode, _, max_length = self._padding_and_truncation(padding, False, max_length, verbose)
        if pad_mode != "do_not_pad" and self.pad_token_id is None:
            raise ValueError("padding needs a pad_token; set one with add_special_tokens({'pad_token': '[PAD]'})")
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        side = padding_side or self.padding_side
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        required = encoded_inputs[main]
        if required and not isinstance(required[0], (list, tuple)):
            row = self._pad_encoded(
                encoded_inputs, pad_mode, max_length, pad_to_multiple_of, side, return_attention_mask
            )
            return BatchEncoding(row, tensor_type=return_tensors)
        batch_size = len(required)
        for key, value in encoded_inputs.items():
            if len(value) != batch_size:
                raise ValueError(f"pad: {key!r} has {len(value)} rows but {main!r} has {batch_size}")
        if pad_mode == "longest":
            max_length = max(len(r) for r in required)
            pad_mode = "max_length"
        out: Dict[str, List[Any]] = {}
        for i in range(batch_size):
            row = self._pad_encoded(
                {k: v[i] for k, v in encoded_inputs.items()},
                pad_mode,
                max_length,
                pad_to_multiple_of,
                side,
                return_attention_mask,
            )
            for key, value in row.items():
                out.setdefault(key, []).append(value)
        return BatchEncoding(out, tensor_type=return_tensors)

    def _pad_encoded(
        self,
        row: Dict[str, Any],
        pad_mode: str,
        max_length: Optional[int],
        multiple: Optional[int],
        side: str,
        return_attention_mask: bool,
    ) -> Dict[str, Any]:
        """One encoding padded (HF ``_pad``): the keys it pads, the attention mask added when asked."""
        ids = list(row[self.model_input_names[0]])
        if pad_mode == "longest":
            max_length = len(ids)
        if max_length is not None and multiple and max_length % multiple:
            max_length = (max_length // multiple + 1) * multiple
        if return_attention_mask and "attention_mask" not in row:
            row["attention_mask"] = [1] * len(ids)
        if pad_mode == "do_not_pad" or max_length is None or len(ids) >= max_length:
            return row
        n = max_length - len(ids)
        fills = {"attention_mask": 0, "token_type_ids": self.pad_token_type_id, "special_tokens_mask": 1}
        for key, fill in fills.items():
            if key in row and (key != "attention_mask" or return_attention_mask):
                row[key] = _pad_row(list(row[key]), n, fill, side)
        row[self.model_input_names[0]] = _pad_row(ids, n, self.pad_token_id, side)
        return row

    # -- truncation ---------------------------------------------------------------------------------------------------

    def truncate_sequences(
        self,
        ids: List[int],
        pair_ids: Optional[List[int]] = None,
        num_tokens_to_remove: int = 0,
        truncation_strategy: str = "longest_first",
        stride: int = 0,
    ) -> Tuple[List[int], Optional[List[int]], List[int]]:
        """Remove ``num_tokens_to_remove`` ids following the strategy; returns (ids, pair_ids, overflowing ids).

        Raises ValueError when the chosen sequence is too short to remove that many ids.
        """
        strategy = _truncation_strategy(truncation_strategy)
        if num_tokens_to_remove <= 0 or strategy == "do_not_truncate":
            return ids, pair_ids, []
        right = self.truncation_side == "right"
        overflow: List[int] = []
        if strategy == "only_first" or (strategy == "longest_first" and pair_ids is None):
            if len(ids) <= num_tokens_to_remove:
                raise ValueError(
                    f"cannot truncate: {num_tokens_to_remove} tokens must go but the first sequence has only "
                    f"{len(ids)}; use truncation='longest_first' or 'only_second', or a larger max_length"
                )
            window = min(len(ids), stride + num_tokens_to_remove)
            if right:
                overflow, ids = ids[-window:], ids[:-num_tokens_to_remove]
            else:
                overflow, ids = ids[:window], ids[num_tokens_to_remove:]
        elif strategy == "longest_first":
            n1, n2 = len(ids), len(pair_ids)
            if n1 + n2 < num_tokens_to_remove:
                raise ValueError(
                    f"cannot truncate: {num_tokens_to_remove} tokens must go but the pair has only {n1 + n2}; "
                    "increase max_length"
                )
            # the longer sequence loses tokens until both are equal, then they shrink alternately
            # (ties go to the second sequence), as HF's slow tokenizer does
            first_remove = min(abs(n2 - n1), num_tokens_to_remove)
            rest = num_tokens_to_remove - first_remove
            if n1 > n2:
                cut1, cut2 = first_remove + rest // 2, rest - rest // 2
            else:
                cut1, cut2 = rest // 2, first_remove + rest - rest // 2
            if right:
                ids = ids[:-cut1] if cut1 else ids
                pair_ids = pair_ids[:-cut2] if cut2 else pair_ids
            else:
                ids, pair_ids = ids[cut1:], pair_ids[cut2:]
        elif strategy == "only_second":
            if pair_ids is None:
                return ids, pair_ids, []
            if len(pair_ids) <= num_tokens_to_remove:
                raise ValueError(
                    f"cannot truncate: {num_tokens_to_remove} tokens must go but the second sequence has only "
                    f"{len(pair_ids)} (the first text is too long for max_length); use truncation='longest_first' "
                    "or 'only_first', or a larger max_length"
                )
            window = min(len(pair_ids), stride + num_tokens_to_remove)
            if right:
                overflow, pair_ids = pair_ids[-window:], pair_ids[:-num_tokens_to_remove]
            else:
                overflow, pair_ids = pair_ids[:window], pair_ids[num_tokens_to_remove:]
        return ids, pair_ids, overflow

    # -- special tokens layout ----------------------------------------------------------------------------------------

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    def build_inputs_with_special_tokens(
        self, token_ids_0: List[int], token_ids_1: Optional[List[int]] = None
    ) -> List[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self, token_ids_0: List[int], token_ids_1: Optional[List[int]] = None, already_has_special_tokens: bool = False
    ) -> List[int]:
        """1 where a special token is (or would be added), 0 for sequence tokens."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError("with already_has_special_tokens=True pass a single, complete id sequence")
            special = set(self.all_special_ids)
            return [1 if t in special else 0 for t in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: List[int], token_ids_1: Optional[List[int]] = None
    ) -> List[int]:
        """0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``."""
        first = [0] * (len(token_ids_0) + 2)
        if token_ids_1 is None:
            return first
        return first + [1] * (len(token_ids_1) + 1)

    # -- decoding -----------------------------------------------------------------------------------------------------

    @staticmethod
    def clean_up_tokenization(text: str) -> str:
        """Undo the spaces WordPiece joining puts before punctuation and English contractions."""
        return (
            text.replace(" .", ".")
            .replace(" ?", "?")
            .replace(" !", "!")
            .replace(" ,", ",")
            .replace(" ' ", "'")
            .replace(" n't", "n't")
            .replace(" 'm", "'m")
            .replace(" 's", "'s")
            .replace(" 've", "'ve")
            .replace(" 're", "'re")
        )

    @staticmethod
    def _ids_list(token_ids) -> List[int]:
        if hasattr(token_ids, "tolist"):
            token_ids = token_ids.tolist()
        elif hasattr(token_ids, "numpy"):
            token_ids = token_ids.numpy().tolist()
        if isinstance(token_ids, int):
            return [token_ids]
        if not isinstance(token_ids, (list, tuple)):
            raise TypeError(f"token ids must be an int or a sequence of int, got {_type_name(token_ids)}")
        for t in token_ids:
            if not isinstance(t, int) or isinstance(t, bool):
                raise TypeError(f"token ids must be int, found {_type_name(t)}")
        return list(token_ids)

    def batch_decode(
        self,
        sequences,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: Optional[bool] = None,
        **kwargs,
    ) -> List[str]:
        """Decode each row of a ``[batch][seq_len]`` id list/array."""
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [
            self.decode(
                s,
                skip_special_tokens=skip_special_tokens,
                clean_up_tokenization_spaces=clean_up_tokenization_spaces,
                **kwargs,
            )
            for s in sequences
        ]

    def _settings(self) -> Dict[str, Any]:
        """Constructor settings shared by the slow and fast tokenizers (what slow <-> fast conversion carries over)."""
        out = dict(
            do_lower_case=self.do_lower_case,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            strip_accents=self.strip_accents,
            model_max_length=self.model_max_length,
            padding_side=self.padding_side,
            truncation_side=self.truncation_side,
            clean_up_tokenization_spaces=self.clean_up_tokenization_spaces,
            name_or_path=self.name_or_path,
        )
        for attr in SPECIAL_TOKEN_ATTRS:
            out[attr] = self._special.get(attr)
        out["additional_special_tokens"] = list(self._additional_special) or None
        return out

    # -- persistence ---------------------------------------------------------------------------------------------------

    def save_vocabulary(self, save_directory: PathLike, filename_prefix: Optional[str] = None) -> Tuple[str]:
        """Write ``[prefix-]vocab.txt`` (base vocabulary in id order) atomically; returns its path."""
        save_directory = Path(save_directory)
        if save_directory.exists() and not save_directory.is_dir():
            raise NotADirectoryError(f"save_directory {os.fspath(save_directory)!r} is a file")
        save_directory.mkdir(parents=True, exist_ok=True)
        name = (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES["vocab_file"]
        path = save_directory / name
        ordered = sorted(self._base_vocab().items(), key=lambda kv: kv[1])
        lines = []
        expected = 0
        for token, index in ordered:
            if index != expected:
                logger.warning(
                    f"vocabulary indices are not consecutive at {index} (expected {expected}); saving in id order"
                )
                expected = index
            lines.append(token + "\n")
            expected += 1
        atomic_write_text(path, "".join(lines))
        return (str(path),)

    def _write_configs(self, save_directory: Path) -> List[str]:
        config = {
            "do_lower_case": self.do_lower_case,
            "do_basic_tokenize": getattr(self, "do_basic_tokenize", True),
            "never_split": sorted(self.never_split) if getattr(self, "never_split", None) else None,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "strip_accents": self.strip_accents,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            # HF writes the slow class name for both; AutoTokenizer then picks the fast one when it can
            "tokenizer_class": "BertTokenizer",
        }
        for attr in SPECIAL_TOKEN_ATTRS:
            config[attr] = self._special_str(attr)
        if self._additional_special:
            config["additional_special_tokens"] = self.additional_special_tokens
        decoder = {}
        for index, tok in sorted(self._added_tokens_decoder().items()):
            decoder[str(index)] = tok.to_dict()
        config["added_tokens_decoder"] = decoder
        paths = []
        path = save_directory / TOKENIZER_CONFIG_FILE
        atomic_write_text(path, json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        paths.append(str(path))
        special_map = {}
        for attr in SPECIAL_TOKEN_ATTRS:
            tok = self._special.get(attr)
            if tok is not None:
                special_map[attr] = tok.to_dict()
        if self._additional_special:
            special_map["additional_special_tokens"] = [t.to_dict() for t in self._additional_special]
        path = save_directory / SPECIAL_TOKENS_MAP_FILE
        atomic_write_text(path, json.dumps(special_map, indent=2, ensure_ascii=False) + "\n")
        paths.append(str(path))
        return paths

    def save_pretrained(self, save_directory: PathLike, filename_prefix: Optional[str] = None) -> Tuple[str, ...]:
        """Write vocab.txt, tokenizer_config.json, special_tokens_map.json (and tokenizer.json for the fast
        tokenizer) into ``save_directory``; every file is written atomically. Returns the written paths."""
        save_directory = Path(save_directory)
        if save_directory.exists() and not save_directory.is_dir():
            raise NotADirectoryError(f"save_directory {os.fspath(save_directory)!r} is a file, not a directory")
        save_directory.mkdir(parents=True, exist_ok=True)
        paths = list(self._write_configs(save_directory))
        paths += list(self.save_vocabulary(save_directory, filename_prefix))
        paths += list(self._save_extra(save_directory, filename_prefix))
        return tuple(paths)

    def _save_extra(self, save_directory: Path, filename_prefix: Optional[str]) -> Tuple[str, ...]:
        return ()

    @staticmethod
    def _read_configs(directory: Path) -> Dict[str, Any]:
        config: Dict[str, Any] = {}
        cfg = directory / TOKENIZER_CONFIG_FILE
        if cfg.is_file():
            with open(cfg, encoding="utf-8") as handle:
                try:
                    config = json.load(handle)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{os.fspath(cfg)!r} is not valid JSON: {err}") from err
        smap = directory / SPECIAL_TOKENS_MAP_FILE
        if smap.is_file():
            with open(smap, encoding="utf-8") as handle:
                try:
                    special = json.load(handle)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{os.fspath(smap)!r} is not valid JSON: {err}") from err
            for key, value in special.items():
                if key not in config or config[key] is None:
                    config[key] = value
        return config

    @staticmethod
    def _config_special(value):
        if isinstance(value, dict):
            return AddedToken(**{k: v for k, v in value.items() if k in AddedToken.__dataclass_fields__})
        return value

    @classmethod
    def _kwargs_from_config(cls, config: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {}
        for key in (
            "do_lower_case",
            "do_basic_tokenize",
            "never_split",
            "tokenize_chinese_chars",
            "strip_accents",
            "model_max_length",
            "padding_side",
            "truncation_side",
            "clean_up_tokenization_spaces",
        ):
            if key in config:
                kwargs[key] = config[key]
        for key in SPECIAL_TOKEN_ATTRS:
            if key in config and config[key] is not None:
                kwargs[key] = cls._config_special(config[key])
        if config.get("additional_special_tokens"):
            kwargs["additional_special_tokens"] = [cls._config_special(v) for v in config["additional_special_tokens"]]
        kwargs.update(overrides)
        return kwargs

    @staticmethod
    def _config_added_tokens(config: Dict[str, Any]) -> Dict[int, AddedToken]:
        out = {}
        for index, value in (config.get("added_tokens_decoder") or {}).items():
            if isinstance(value, dict):
                out[int(index)] = AddedToken(**{k: v for k, v in value.items() if k in AddedToken.__dataclass_fields__})
        return out


# ----------------------------------------------------------------------------------------------------------------------
# BertTokenizer (pure Python)
# ----------------------------------------------------------------------------------------------------------------------


class BertTokenizer(BertTokenizerBase):
    """Pure-Python WordPiece BERT tokenizer, equal to HF ``transformers.BertTokenizer``.

    Args:
        vocab_file: path of ``vocab.txt``.
        do_lower_case: lower-case the text (uncased checkpoints).
        do_basic_tokenize: split on whitespace/punctuation before WordPiece.
        never_split: tokens the basic tokenizer keeps whole.
        unk_token, sep_token, pad_token, cls_token, mask_token: special tokens (str or AddedToken).
        tokenize_chinese_chars: put spaces around CJK ideographs.
        strip_accents: None follows ``do_lower_case``; True/False force it.
        model_max_length: longest sequence the model takes (None: unlimited).
    """

    is_fast = False

    def __init__(
        self,
        vocab_file: Optional[PathLike] = None,
        do_lower_case: bool = True,
        do_basic_tokenize: bool = True,
        never_split: Optional[Iterable[str]] = None,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        tokenize_chinese_chars: bool = True,
        strip_accents: Optional[bool] = None,
        *,
        vocab: Optional[Dict[str, int]] = None,
        model_max_length: Optional[int] = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = True,
        additional_special_tokens: Optional[Sequence] = None,
        added_tokens: Optional[Dict[int, AddedToken]] = None,
        name_or_path: str = "",
        max_input_chars_per_word: int = 100,
    ):
        if vocab is None:
            if vocab_file is None:
                raise ValueError("BertTokenizer needs vocab_file (path of vocab.txt)")
            vocab = load_vocab(vocab_file)
        self.vocab: Dict[str, int] = dict(vocab)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = bool(do_lower_case)
        self.do_basic_tokenize = bool(do_basic_tokenize)
        self.never_split = set(never_split or ())
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.strip_accents = strip_accents
        # HF only lower-cases raw text through its basic tokenizer; without one, do_lower_case has no effect
        self._lowercase_text = self.do_lower_case and self.do_basic_tokenize
        self.basic_tokenizer = BasicTokenizer(
            do_lower_case=self.do_lower_case,
            never_split=self.never_split,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            strip_accents=strip_accents,
        )
        self._init_common(
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            model_max_length=model_max_length,
            padding_side=padding_side,
            truncation_side=truncation_side,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            name_or_path=name_or_path,
            additional_special_tokens=additional_special_tokens,
        )
        self.wordpiece_tokenizer = WordpieceTokenizer(
            self.vocab, unk_token=self.unk_token or "[UNK]", max_input_chars_per_word=max_input_chars_per_word
        )
        # added tokens: id -> AddedToken; ids < len(vocab) re-use vocabulary ids (special tokens)
        self._added_decoder: Dict[int, AddedToken] = {}
        self._added_encoder: Dict[str, int] = {}
        for index, tok in sorted((added_tokens or {}).items()):
            self._added_decoder[index] = tok
            self._added_encoder[tok.content] = index
        specials = [t for t in self._special.values() if t is not None] + list(self._additional_special)
        self._add_tokens(specials, special_tokens=True)

    # -- vocab ----------------------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (without added tokens)."""
        return len(self.vocab)

    def get_vocab(self) -> Dict[str, int]:
        out = dict(self.vocab)
        out.update(self._added_encoder)
        return out

    def _base_vocab(self) -> Dict[str, int]:
        return self.vocab

    def _added_tokens_decoder(self) -> Dict[int, AddedToken]:
        return dict(self._added_decoder)

    @property
    def added_tokens_decoder(self) -> Dict[int, AddedToken]:
        return dict(self._added_decoder)

    def _add_tokens(self, tokens: List[AddedToken], special_tokens: bool = False) -> int:
        added = 0
        for tok in tokens:
            if not tok.content:
                raise ValueError("cannot add an empty token")
            if special_tokens:
                tok.special = True
            if not tok.special and tok.normalized and self._lowercase_text:
                tok = AddedToken(
                    tok.content.lower(), tok.single_word, tok.lstrip, tok.rstrip, tok.normalized, tok.special
                )
            if tok.content in self._added_encoder:
                index = self._added_encoder[tok.content]
                self._added_decoder[index] = tok
                continue
            if tok.content in self.vocab:
                index = self.vocab[tok.content]
            else:
                index = len(self.vocab) + sum(1 for i in self._added_decoder if i >= len(self.vocab))
                added += 1
            self._added_decoder[index] = tok
            self._added_encoder[tok.content] = index
        self._rebuild_patterns()
        return added

    def _rebuild_patterns(self) -> None:
        specials = self.all_special_tokens
        self._special_set = set(specials)
        lower_keep = list(specials) + [
            t.content for t in self._added_decoder.values() if not t.special and t.normalized
        ]
        # HF lower-cases everything except special tokens (and normalized added tokens) before the split
        self._lower_split = re.compile("(" + "|".join(re.escape(t) for t in lower_keep) + ")") if lower_keep else None
        contents = sorted(self._added_encoder, key=len, reverse=True)
        # longest-first alternation gives the leftmost-longest match of HF's trie
        self._added_split = re.compile("(" + "|".join(re.escape(t) for t in contents) + ")") if contents else None
        self._never_split_all = frozenset(specials)
        self.basic_tokenizer._word_cache.clear()

    # -- tokenize -------------------------------------------------------------------------------------------------------

    def _lower_outside_specials(self, text: str) -> str:
        if self._lower_split is None:
            return text.translate(_LOWER_TABLE)
        parts = self._lower_split.split(text)
        # odd positions are the captured (kept) tokens
        return "".join(p if i % 2 else p.translate(_LOWER_TABLE) for i, p in enumerate(parts))

    def _tokenize(self, text: str) -> List[str]:
        """WordPiece tokens of a chunk that contains no added token."""
        if not self.do_basic_tokenize:
            return self.wordpiece_tokenizer.tokenize(text)
        out: List[str] = []
        never = self.basic_tokenizer.never_split
        wp = self.wordpiece_tokenizer
        for token in self.basic_tokenizer.tokenize(text, never_split=self._never_split_all):
            if token in never:
                out.append(token)
            else:
                out.extend(wp.tokenize(token))
        return out

    def tokenize(self, text: str, **kwargs) -> List[str]:
        """WordPiece tokens of ``text`` (added/special tokens kept whole); no ``[CLS]``/``[SEP]`` added."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {_type_name(text)}")
        kwargs.pop("is_split_into_words", None)
        if kwargs:
            raise TypeError(f"unexpected keyword argument(s): {sorted(kwargs)}")
        if self._lowercase_text:
            text = self._lower_outside_specials(text)
        if self._added_split is None:
            return self._tokenize(text)
        parts = self._added_split.split(text)
        for i in range(1, len(parts), 2):
            tok = self._added_decoder[self._added_encoder[parts[i]]]
            if tok.rstrip and i + 1 < len(parts):
                parts[i + 1] = parts[i + 1].lstrip()
            if tok.lstrip:
                parts[i - 1] = parts[i - 1].rstrip()
            if tok.single_word:
                left, right = parts[i - 1], parts[i + 1] if i + 1 < len(parts) else ""
                if left and left[-1] != " ":
                    parts[i - 1] += parts[i]
                    parts[i] = ""
                elif right and right[0] != " ":
                    parts[i + 1] = parts[i] + right
                    parts[i] = ""
        out: List[str] = []
        for i, part in enumerate(parts):
            if not part:
                continue
            if i % 2 and part in self._added_encoder:
                out.append(part)
            else:
                out.extend(self._tokenize(part))
        return out

    def convert_tokens_to_ids(self, tokens):
        """Id of a token (str -> int) or of each token (list -> list); unknown tokens map to the unk id."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        if not isinstance(tokens, (list, tuple)):
            raise TypeError(f"tokens must be a str or a list of str, got {_type_name(tokens)}")
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token: str) -> int:
        index = self._added_encoder.get(token)
        if index is not None:
            return index
        index = self.vocab.get(token)
        if index is not None:
            return index
        return self.vocab.get(self.unk_token)

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Token of an id (int -> str) or of each id (list -> list)."""
        if isinstance(ids, int):
            return self._id_to_token(ids)
        ids = self._ids_list(ids)
        specials = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._id_to_token(i) for i in ids if i not in specials]

    def _id_to_token(self, index: int) -> str:
        tok = self._added_decoder.get(index)
        if tok is not None:
            return tok.content
        return self.ids_to_tokens.get(index, self.unk_token)

    def convert_tokens_to_string(self, tokens: List[str]) -> str:
        return " ".join(tokens).replace(" ##", "").strip()

    def decode(
        self,
        token_ids,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: Optional[bool] = None,
        spaces_between_special_tokens: bool = True,
        **kwargs,
    ) -> str:
        """Text of ``token_ids`` (int or ``[seq_len]`` ints): ``##`` pieces are joined to the previous token."""
        ids = self._ids_list(token_ids)
        tokens = self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        specials = self._special_set
        base = len(self.vocab)
        # added (non-special) tokens are emitted verbatim, not WordPiece-joined
        legacy = {t.content for t in self._added_decoder.values() if not t.special and t.content not in specials}
        legacy |= {
            t.content
            for i, t in self._added_decoder.items()
            if t.content in self.additional_special_tokens and i >= base
        }
        parts: List[str] = []
        current: List[str] = []
        for tok in tokens:
            if skip_special_tokens and tok in specials:
                continue
            if tok in legacy:
                if current:
                    text = self.convert_tokens_to_string(current)
                    if text:
                        parts.append(text)
                    current = []
                parts.append(tok)
            else:
                current.append(tok)
        if current:
            parts.append(self.convert_tokens_to_string(current))
        text = (" " if spaces_between_special_tokens else "").join(parts)
        clean = (
            self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        )
        return self.clean_up_tokenization(text) if clean else text

    # -- encoding rows ---------------------------------------------------------------------------------------------------

    def _ids_of(self, text, is_split_into_words: bool) -> List[int]:
        if is_split_into_words:
            tokens: List[str] = []
            for word in text:
                tokens.extend(self.tokenize(word))
        else:
            tokens = self.tokenize(text)
        return self.convert_tokens_to_ids(tokens)

    def _encode_rows(self, pairs: List[Tuple[Any, Any]], options: _CallOptions):
        """Encode each row in Python: ids of the text and pair (``_ids_of``), truncation with its overflow window
        (``_truncate_row``), special tokens (``_with_special_tokens``).

        Returns unpadded ``{field: [row ids]}`` for ``options.row_fields``, the extra keys (``overflowing_tokens``,
        ``num_truncated_tokens``) and the alignments (None: the slow tokenizer tracks none).
        """
        if "offset_mapping" in options.keys:
            raise NotImplementedError(
                "return_offsets_mapping needs alignments, which only BertTokenizerFast tracks; use BertTokenizerFast"
            )
        rows = []
        overflow: List[List[int]] = []
        truncated: List[int] = []
        for first, second in pairs:
            ids = self._ids_of(first, options.is_split_into_words)
            pair_ids = self._ids_of(second, options.is_split_into_words) if second is not None else None
            if options.return_overflowing_tokens and options.truncation == "longest_first" and pair_ids is not None:
                raise ValueError(
                    "overflowing tokens cannot be returned for pairs with truncation='longest_first'; "
                    "use 'only_first' or 'only_second'"
                )
            ids, pair_ids, over, excess = self._truncate_row(ids, pair_ids, options)
            if options.return_overflowing_tokens:
                overflow.append(over)
                truncated.append(excess)
            rows.append(self._with_special_tokens(ids, pair_ids, options.add_special_tokens))
        extra: Dict[str, Any] = {}
        if options.return_overflowing_tokens:
            extra["overflowing_tokens"] = overflow
            extra["num_truncated_tokens"] = truncated
        return {f: [r[f] for r in rows] for f in options.row_fields}, extra, None

    def _truncate_row(
        self, ids: List[int], pair_ids: Optional[List[int]], options: _CallOptions
    ) -> Tuple[List[int], Optional[List[int]], List[int], int]:
        """``(ids, pair_ids, overflowing ids, excess)``: the row cut to ``options.truncation_length`` (special
        tokens included) by ``truncate_sequences``.

        ``excess`` is HF's ``num_truncated_tokens``: the row's length minus the truncation length (negative when it
        fits), or its length when there is no truncation.
        """
        max_length = options.truncation_length
        specials = self.num_special_tokens_to_add(pair_ids is not None) if options.add_special_tokens else 0
        total = len(ids) + (len(pair_ids) if pair_ids is not None else 0) + specials
        if max_length is None:
            return ids, pair_ids, [], total
        over: List[int] = []
        if total > max_length:
            ids, pair_ids, over = self.truncate_sequences(
                ids, pair_ids, total - max_length, options.truncation, options.stride
            )
        return ids, pair_ids, over, total - max_length

    def _with_special_tokens(
        self, ids: List[int], pair_ids: Optional[List[int]], add_special_tokens: bool
    ) -> Dict[str, List[int]]:
        """The row's ``input_ids``, ``token_type_ids`` and ``special_tokens_mask``: ``[CLS] A [SEP] (B [SEP])`` when
        ``add_special_tokens``, else the bare ids (all type 0, no special token)."""
        if add_special_tokens:
            return {
                "input_ids": self.build_inputs_with_special_tokens(ids, pair_ids),
                "token_type_ids": self.create_token_type_ids_from_sequences(ids, pair_ids),
                "special_tokens_mask": self.get_special_tokens_mask(ids, pair_ids),
            }
        seq = ids + (pair_ids or [])
        return {"input_ids": seq, "token_type_ids": [0] * len(seq), "special_tokens_mask": [0] * len(seq)}

    # -- persistence -----------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: PathLike,
        *,
        revision: Optional[str] = None,
        cache_dir: Optional[PathLike] = None,
        token=None,
        local_files_only: bool = False,
        **kwargs,
    ) -> "BertTokenizer":
        """Load from a directory with vocab.txt (+ tokenizer_config.json, special_tokens_map.json) or a hub id.
        Keyword arguments override the saved configuration."""
        from .hub import resolve_model_dir

        directory = resolve_model_dir(
            name_or_path,
            allow_patterns=["vocab.txt", TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, ADDED_TOKENS_FILE],
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
        vocab_file = directory / VOCAB_FILES["vocab_file"]
        if not vocab_file.is_file():
            raise FileNotFoundError(
                f"vocabulary file not found: {os.fspath(vocab_file)!r} (loading {os.fspath(name_or_path)!r})"
            )
        config = cls._read_configs(directory)
        kwargs = cls._kwargs_from_config(config, kwargs)
        added = cls._config_added_tokens(config)
        extra_file = directory / ADDED_TOKENS_FILE
        if extra_file.is_file():
            with open(extra_file, encoding="utf-8") as handle:
                for content, index in json.load(handle).items():
                    added.setdefault(int(index), AddedToken(content))
        kwargs.setdefault("name_or_path", os.fspath(name_or_path))
        return cls(vocab_file, added_tokens=added, **kwargs)
