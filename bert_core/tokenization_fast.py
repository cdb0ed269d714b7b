"""``BertTokenizerFast``: the BERT WordPiece pipeline on the Rust ``tokenizers`` library, equal to HF's
``transformers.BertTokenizerFast``. It shares the call/padding/tensor API of ``bert_core.tokenization`` and adds
alignment information: ``return_offsets_mapping`` (character spans, shape ``(batch, seq_len, 2)``), ``word_ids()``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .tokenization import (
    ADDED_TOKENS_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    VOCAB_FILES,
    AddedToken,
    BertTokenizer,
    BertTokenizerBase,
    PathLike,
    _CallOptions,
    _type_name,
    atomic_write_text,
    load_vocab,
)

# BatchEncoding key -> attribute of tokenizers.Encoding
_ENCODING_FIELDS = {
    "input_ids": "ids",
    "token_type_ids": "type_ids",
    "special_tokens_mask": "special_tokens_mask",
    "offset_mapping": "offsets",
}


def _backend_added_token(tok: AddedToken):
    from tokenizers import AddedToken as RustAddedToken

    return RustAddedToken(
        tok.content,
        single_word=tok.single_word,
        lstrip=tok.lstrip,
        rstrip=tok.rstrip,
        normalized=tok.normalized,
        special=tok.special,
    )


def _from_backend_added_token(tok) -> AddedToken:
    return AddedToken(
        tok.content,
        single_word=tok.single_word,
        lstrip=tok.lstrip,
        rstrip=tok.rstrip,
        normalized=tok.normalized,
        special=tok.special,
    )


def build_backend(
    vocab: Dict[str, int],
    *,
    do_lower_case: bool = True,
    tokenize_chinese_chars: bool = True,
    strip_accents: Optional[bool] = None,
    unk_token: str = "[UNK]",
    cls_token: str = "[CLS]",
    sep_token: str = "[SEP]",
    max_input_chars_per_word: int = 100,
):
    """A ``tokenizers.Tokenizer`` with the BERT pipeline: BertNormalizer, BertPreTokenizer, WordPiece,
    ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` post-processing and the WordPiece decoder."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    for name, token in (("unk_token", unk_token), ("cls_token", cls_token), ("sep_token", sep_token)):
        if token not in vocab:
            raise ValueError(f"{name} {token!r} is not in the vocabulary")
    backend = Tokenizer(WordPiece(dict(vocab), unk_token=unk_token, max_input_chars_per_word=max_input_chars_per_word))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=do_lower_case,
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


class BertTokenizerFast(BertTokenizerBase):
    """BERT tokenizer on ``tokenizers`` (Rust). Same arguments as ``BertTokenizer``, plus ``tokenizer_file``
    (a ``tokenizer.json``, used when given) or ``tokenizer_object`` (a ready ``tokenizers.Tokenizer``)."""

    is_fast = True

    def __init__(
        self,
        vocab_file: Optional[PathLike] = None,
        tokenizer_file: Optional[PathLike] = None,
        do_lower_case: bool = True,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        tokenize_chinese_chars: bool = True,
        strip_accents: Optional[bool] = None,
        *,
        tokenizer_object=None,
        vocab: Optional[Dict[str, int]] = None,
        model_max_length: Optional[int] = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        additional_special_tokens: Optional[Sequence] = None,
        added_tokens: Optional[Dict[int, AddedToken]] = None,
        name_or_path: str = "",
        do_basic_tokenize: bool = True,
        never_split: Optional[Iterable[str]] = None,
    ):
        from tokenizers import Tokenizer, normalizers

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
        if not do_basic_tokenize or never_split:
            # the Rust pipeline has no equivalent; refuse rather than tokenize differently from what was asked
            raise ValueError(
                "BertTokenizerFast does not support do_basic_tokenize=False or never_split; use BertTokenizer"
            )
        self.do_basic_tokenize = True
        self.never_split = set()
        self.do_lower_case = bool(do_lower_case)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.strip_accents = strip_accents
        if tokenizer_object is not None:
            backend = tokenizer_object
        elif tokenizer_file is not None:
            if not Path(tokenizer_file).is_file():
                raise FileNotFoundError(f"tokenizer file not found: {os.fspath(tokenizer_file)!r}")
            backend = Tokenizer.from_file(os.fspath(tokenizer_file))
        else:
            if vocab is None:
                if vocab_file is None:
                    raise ValueError(
                        "BertTokenizerFast needs vocab_file (vocab.txt), tokenizer_file or tokenizer_object"
                    )
                vocab = load_vocab(vocab_file)
            backend = build_backend(
                vocab,
                do_lower_case=self.do_lower_case,
                tokenize_chinese_chars=self.tokenize_chinese_chars,
                strip_accents=strip_accents,
                unk_token=self.unk_token,
                cls_token=self.cls_token,
                sep_token=self.sep_token,
            )
        # the config's casing/accents settings win over a tokenizer.json that disagrees (HF habit)
        state = None
        if backend.normalizer is not None:
            try:
                state = json.loads(backend.normalizer.__getstate__())
            except Exception:  # not a plain BertNormalizer (e.g. a Sequence): keep it as it is
                state = None
        if state is not None and state.get("type") == "BertNormalizer":
            wanted = {
                "lowercase": self.do_lower_case,
                "strip_accents": strip_accents,
                "handle_chinese_chars": self.tokenize_chinese_chars,
            }
            if any(state.get(k) != v for k, v in wanted.items()):
                backend.normalizer = normalizers.BertNormalizer(
                    clean_text=state.get("clean_text", True),
                    handle_chinese_chars=self.tokenize_chinese_chars,
                    strip_accents=strip_accents,
                    lowercase=self.do_lower_case,
                )
        backend.no_truncation()
        backend.no_padding()
        self._tokenizer = backend
        # The Rust tokenizer keeps truncation as state of the shared object: every call sets it, encodes and resets
        # it under this lock, so concurrent calls with different settings cannot see each other's truncation.
        self._lock = threading.RLock()
        if added_tokens:
            for _index, tok in sorted(added_tokens.items()):
                if backend.token_to_id(tok.content) is None:
                    self._add_tokens([tok], special_tokens=tok.special)
        specials = [t for t in self._special.values() if t is not None] + list(self._additional_special)
        self._add_tokens(specials, special_tokens=True)

    @property
    def backend_tokenizer(self):
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tokenizer

    # -- vocab ----------------------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def get_vocab(self) -> Dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> Dict[str, int]:
        return self.get_vocab()

    def _base_vocab(self) -> Dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=False)

    def _added_tokens_decoder(self) -> Dict[int, AddedToken]:
        return {i: _from_backend_added_token(t) for i, t in self._tokenizer.get_added_tokens_decoder().items()}

    @property
    def added_tokens_decoder(self) -> Dict[int, AddedToken]:
        return self._added_tokens_decoder()

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def _add_tokens(self, tokens: List[AddedToken], special_tokens: bool = False) -> int:
        tokens = list(tokens)
        for tok in tokens:
            if not tok.content:
                raise ValueError("cannot add an empty token")
            if special_tokens:
                tok.special = True
        if special_tokens:
            with self._lock:
                return self._tokenizer.add_special_tokens([_backend_added_token(t) for t in tokens])
        with self._lock:
            return self._tokenizer.add_tokens([_backend_added_token(t) for t in tokens])

    # -- conversions ----------------------------------------------------------------------------------------------------

    def convert_tokens_to_ids(self, tokens):
        """Id of a token (str -> int) or of each token (list -> list); unknown tokens map to the unk id."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        if not isinstance(tokens, (list, tuple)):
            raise TypeError(f"tokens must be a str or a list of str, got {_type_name(tokens)}")
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token: str) -> Optional[int]:
        index = self._tokenizer.token_to_id(token)
        if index is None and self.unk_token is not None:
            return self._tokenizer.token_to_id(self.unk_token)
        return index

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Token of an id (int -> str) or of each id (list -> list)."""
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        ids = self._ids_list(ids)
        specials = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._tokenizer.id_to_token(i) for i in ids if i not in specials]

    def convert_tokens_to_string(self, tokens: List[str]) -> str:
        return self._tokenizer.decoder.decode(tokens)

    def tokenize(self, text: str, pair: Optional[str] = None, add_special_tokens: bool = False, **kwargs) -> List[str]:
        """WordPiece tokens of ``text`` (no ``[CLS]``/``[SEP]`` unless ``add_special_tokens``)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {_type_name(text)}")
        kwargs.pop("is_split_into_words", None)
        if kwargs:
            raise TypeError(f"unexpected keyword argument(s): {sorted(kwargs)}")
        # an empty pair is no pair, as in HF's fast tokenizer (and this class's __call__)
        with self._lock:
            return self._tokenizer.encode(text, pair or None, add_special_tokens=add_special_tokens).tokens

    def decode(
        self,
        token_ids,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: Optional[bool] = None,
        **kwargs,
    ) -> str:
        """Text of ``token_ids`` (int or ``[seq_len]`` ints)."""
        ids = self._ids_list(token_ids)
        text = self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        clean = (
            self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        )
        return self.clean_up_tokenization(text) if clean else text

    # -- encoding rows ---------------------------------------------------------------------------------------------------

    def _encode_rows(self, pairs: List[Tuple[Any, Any]], options: _CallOptions):
        """Encode the rows in Rust: ids, truncation with its overflow window and special tokens in one
        ``encode_batch`` (``_encode_batch``); overflow windows become extra rows (``overflow_to_sample_mapping``
        says whose).

        Returns unpadded ``{field: [row values]}`` for ``options.row_fields``, the extra keys, and the Encodings (one
        per row).
        """
        inputs = [first if second is None else (first, second) for first, second in pairs]
        if options.is_split_into_words:
            inputs = [list(x) if not isinstance(x, tuple) else (list(x[0]), list(x[1])) for x in inputs]
        encodings = self._encode_batch(inputs, options)
        flat = []
        mapping = []
        for i, enc in enumerate(encodings):
            flat.append(enc)
            mapping.append(i)
            if options.return_overflowing_tokens:
                for over in enc.overflowing:
                    flat.append(over)
                    mapping.append(i)
        columns = {f: [getattr(e, _ENCODING_FIELDS[f]) for e in flat] for f in options.row_fields}
        extra: Dict[str, Any] = {}
        if options.return_overflowing_tokens:
            extra["overflow_to_sample_mapping"] = mapping
        return columns, extra, flat

    def _encode_batch(self, inputs: list, options: _CallOptions) -> list:
        """``backend.encode_batch`` with truncation switched on for this call only; the Rust errors (and panics)
        become ValueError / RuntimeError that name the argument to change."""
        with self._lock:
            return self._encode_batch_locked(inputs, options)

    def _encode_batch_locked(self, inputs: list, options: _CallOptions) -> list:
        backend = self._tokenizer
        max_length, truncation, stride = options.truncation_length, options.truncation, options.stride
        try:
            if max_length is not None:
                backend.enable_truncation(
                    max_length, stride=stride, strategy=truncation, direction=self.truncation_side
                )
            else:
                backend.no_truncation()
            try:
                return backend.encode_batch(
                    inputs, add_special_tokens=options.add_special_tokens, is_pretokenized=options.is_split_into_words
                )
            except BaseException as err:  # Rust raises Exception, or a PanicException (a BaseException)
                if isinstance(err, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                    raise
                message = str(err)
                if "stride" in message:
                    raise ValueError(
                        f"stride={stride} is too large: it must be smaller than the number of tokens the truncated "
                        f"sequence may keep within max_length={max_length} ({message.split('(')[0].strip()})"
                    ) from err
                if "runcat" in message:
                    raise ValueError(
                        f"cannot truncate to max_length={max_length} with truncation={truncation!r}: {message}. "
                        "The sequence that may be cut is too short (e.g. only_second with a too-long first text); "
                        "use truncation='longest_first' or a larger max_length"
                    ) from err
                if type(err).__name__ == "PanicException":
                    raise RuntimeError(f"tokenizers failed: {message}") from err
                raise
        finally:
            backend.no_truncation()

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_lock", None)  # locks do not pickle; each copy gets its own
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # -- persistence -----------------------------------------------------------------------------------------------------

    def _save_extra(self, save_directory: Path, filename_prefix: Optional[str]):
        name = (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES["tokenizer_file"]
        path = save_directory / name
        atomic_write_text(path, self._tokenizer.to_str(pretty=True))
        return (str(path),)

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
    ) -> "BertTokenizerFast":
        """Load from a directory (tokenizer.json, else vocab.txt; plus tokenizer_config.json and
        special_tokens_map.json) or a hub repo id. Keyword arguments override the saved configuration."""
        from .hub import resolve_model_dir

        directory = resolve_model_dir(
            name_or_path,
            allow_patterns=[
                "vocab.txt",
                "tokenizer.json",
                TOKENIZER_CONFIG_FILE,
                SPECIAL_TOKENS_MAP_FILE,
                ADDED_TOKENS_FILE,
            ],
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
        tokenizer_file = directory / VOCAB_FILES["tokenizer_file"]
        vocab_file = directory / VOCAB_FILES["vocab_file"]
        if not tokenizer_file.is_file() and not vocab_file.is_file():
            raise FileNotFoundError(
                f"neither {os.fspath(tokenizer_file)!r} nor {os.fspath(vocab_file)!r} exists (loading {os.fspath(name_or_path)!r})"
            )
        config = cls._read_configs(directory)
        kwargs = cls._kwargs_from_config(config, kwargs)
        # slow-only settings at their defaults (as HF writes them) are dropped; others are refused in __init__
        if kwargs.get("do_basic_tokenize", True):
            kwargs.pop("do_basic_tokenize", None)
        if not kwargs.get("never_split"):
            kwargs.pop("never_split", None)
        added = cls._config_added_tokens(config)
        kwargs.setdefault("name_or_path", os.fspath(name_or_path))
        if tokenizer_file.is_file():
            return cls(tokenizer_file=tokenizer_file, added_tokens=added, **kwargs)
        return cls(vocab_file=vocab_file, added_tokens=added, **kwargs)

    @classmethod
    def from_slow(cls, slow: BertTokenizer) -> "BertTokenizerFast":
        """A fast tokenizer with the same vocabulary, added tokens and settings as ``slow``."""
        if not isinstance(slow, BertTokenizer):
            raise TypeError(f"from_slow expects a BertTokenizer, got {_type_name(slow)}")
        if not slow.do_basic_tokenize or slow.never_split:
            raise ValueError("cannot convert a BertTokenizer with do_basic_tokenize=False or never_split to fast")
        return cls(vocab=slow.vocab, added_tokens=slow.added_tokens_decoder, **slow._settings())

    def to_slow(self) -> BertTokenizer:
        """The pure-Python ``BertTokenizer`` with the same vocabulary, added tokens and settings."""
        base = self._base_vocab()
        added = {i: t for i, t in self._added_tokens_decoder().items()}
        return BertTokenizer(vocab=base, added_tokens=added, **self._settings())
