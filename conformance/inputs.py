"""User inputs for ``bert parity --inputs FILE``: JSONL records -> token ids with the checkpoint's own tokenizer.

One JSON object per line (blank lines are skipped):

* ``{"text": "..."}`` or ``{"text": "...", "text_pair": "..."}``: tokenized with
  ``bert_core.BertTokenizerFast.from_pretrained(checkpoint)``, special tokens added, truncated to the model's limit
  (``min(tokenizer.model_max_length, config.max_position_embeddings)``, or ``--max-length``);
* ``{"input_ids": [...]}`` (optionally ``"token_type_ids": [...]``): used as given (no special tokens added); ids
  longer than the limit are refused rather than cut, since they are exactly what the user asked to run;
* an optional ``"id"`` names the input in the report (default ``line<N>``, the 1-based line number).

Everything here is framework-free; a bad file raises :class:`InputsError` (a ValueError: exit 2 in the CLI) naming
the file and the line.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from bert_core.batching import iter_bucketed
from bert_core.config import BertConfig

PathLike = Union[str, os.PathLike]

#: keys a record may have
RECORD_KEYS = ("id", "text", "text_pair", "input_ids", "token_type_ids")
#: inputs per forward call; bucketing by length keeps padding (and jitted backends' distinct shapes) few
BATCH_SIZE = 16


class InputsError(ValueError):
    """The inputs file (or list) is empty or malformed; the message names the file and line."""


@dataclass(frozen=True)
class InputRecord:
    """One user input as written in the file.

    Attributes:
        name: how rows of the report name it (``"id"`` of the record, else ``line<N>`` / ``input<N>``).
        line: 1-based line of the file (for a Python list: the 0-based index).
        text, text_pair: the strings to tokenize, or None for raw ids.
        input_ids, token_type_ids: raw ids (tuples of int), or None for text.
    """

    name: str
    line: int
    text: Optional[str] = None
    text_pair: Optional[str] = None
    input_ids: Optional[Tuple[int, ...]] = None
    token_type_ids: Optional[Tuple[int, ...]] = None

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready, None fields left out (what a golden file stores)."""
        out: Dict[str, Any] = {"name": self.name, "line": self.line}
        for key in ("text", "text_pair", "input_ids", "token_type_ids"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "InputRecord":
        ids = data.get("input_ids")
        types = data.get("token_type_ids")
        return cls(
            name=str(data["name"]),
            line=int(data["line"]),
            text=data.get("text"),
            text_pair=data.get("text_pair"),
            input_ids=None if ids is None else tuple(int(i) for i in ids),
            token_type_ids=None if types is None else tuple(int(i) for i in types),
        )

    def content(self) -> Tuple[Any, ...]:
        """What the model sees, without the name/line (two files with the same inputs in another layout agree)."""
        return (self.text, self.text_pair, self.input_ids, self.token_type_ids)

    def describe(self, width: int = 60) -> str:
        """``line3 "first words of the te…"`` for messages."""
        if self.text is None:
            ids = list(self.input_ids or ())
            body = f"input_ids {ids[:8]}{'...' if len(ids) > 8 else ''}"
        else:
            body = self.text if self.text_pair is None else f"{self.text} | {self.text_pair}"
            body = json.dumps(body if len(body) <= width else body[: width - 1] + "…", ensure_ascii=False)
        return f"{self.name} {body}"


@dataclass
class EncodedInput:
    """A record as the model gets it: ``input_ids`` / ``token_type_ids`` int64 (L,), ``truncated`` if cut."""

    record: InputRecord
    input_ids: np.ndarray
    token_type_ids: np.ndarray
    truncated: bool = False

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


# ------------------------------------------------------------------------------------------------------ parsing


def _int_list(value: Any, key: str, where: str) -> Tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise InputsError(f"{where}: {key!r} must be a non-empty list of ints, got {_short(value)}")
    bad = [v for v in value if not isinstance(v, int) or isinstance(v, bool)]
    if bad:
        raise InputsError(f"{where}: {key!r} must hold ints only, got {_short(bad[0])}")
    return tuple(value)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def parse_record(data: Any, name: str, line: int, where: str) -> InputRecord:
    """One record (a decoded JSON object, or a plain string meaning ``{"text": ...}``) -> InputRecord.

    Raises:
        InputsError: naming ``where`` (``file:line``) and what is wrong.
    """
    if isinstance(data, str):
        data = {"text": data}
    if not isinstance(data, dict):
        raise InputsError(
            f'{where}: expected a JSON object like {{"text": "..."}} or {{"input_ids": [...]}}, got {_short(data)}'
        )
    unknown = [k for k in data if k not in RECORD_KEYS]
    if unknown:
        raise InputsError(f"{where}: unknown key(s) {unknown}; expected some of {list(RECORD_KEYS)}")
    if ("text" in data) == ("input_ids" in data):
        raise InputsError(f'{where}: give exactly one of "text" (with an optional "text_pair") or "input_ids"')
    if "id" in data:
        if not isinstance(data["id"], (str, int)) or isinstance(data["id"], bool) or str(data["id"]).strip() == "":
            raise InputsError(f'{where}: "id" must be a non-empty string or an int, got {_short(data["id"])}')
        name = str(data["id"])
    if "text" in data:
        for key in ("text", "text_pair"):
            if key in data and not isinstance(data[key], str):
                raise InputsError(f"{where}: {key!r} must be a string, got {_short(data[key])}")
        if "token_type_ids" in data:
            raise InputsError(f'{where}: "token_type_ids" goes with "input_ids"; texts get them from the tokenizer')
        return InputRecord(name, line, text=data["text"], text_pair=data.get("text_pair"))
    if "text_pair" in data:
        raise InputsError(f'{where}: "text_pair" goes with "text", not with "input_ids"')
    ids = _int_list(data["input_ids"], "input_ids", where)
    types = None
    if "token_type_ids" in data:
        types = _int_list(data["token_type_ids"], "token_type_ids", where)
        if len(types) != len(ids):
            raise InputsError(f"{where}: token_type_ids has {len(types)} values for {len(ids)} input_ids")
    return InputRecord(name, line, input_ids=ids, token_type_ids=types)


def _check_unique(records: Sequence[InputRecord], where: str) -> None:
    seen: Dict[str, InputRecord] = {}
    for r in records:
        if r.name in seen:
            raise InputsError(f"{where}: input name {r.name!r} is used twice (lines {seen[r.name].line} and {r.line})")
        seen[r.name] = r


def read_inputs(path: PathLike) -> List[InputRecord]:
    """Parse a JSONL inputs file.

    Raises:
        FileNotFoundError: no such file.
        InputsError: empty file, a line that is not UTF-8 / JSON / a valid record (named ``file:line``), a repeated id.
    """
    path = Path(path)
    where = os.fspath(path)
    data = path.read_bytes()
    records: List[InputRecord] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputsError(f"{where}:{number}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputsError(f"{where}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
        records.append(parse_record(value, f"line{number}", number, f"{where}:{number}"))
    if not records:
        raise InputsError(f'{where}: no inputs (expected one JSON object per line, e.g. {{"text": "..."}})')
    _check_unique(records, where)
    return records


def as_records(inputs: Union[PathLike, Iterable[Any], Sequence[InputRecord]]) -> List[InputRecord]:
    """A JSONL path, or a Python list of strings / dicts / InputRecords -> records (``input<i>`` names)."""
    if isinstance(inputs, (str, os.PathLike)):
        return read_inputs(inputs)
    items = list(inputs)
    records = [
        item if isinstance(item, InputRecord) else parse_record(item, f"input{i}", i, f"inputs[{i}]")
        for i, item in enumerate(items)
    ]
    if not records:
        raise InputsError('inputs: no inputs (give texts, {"text": ...} dicts or a JSONL file)')
    _check_unique(records, "inputs")
    return records


def records_digest(records: Sequence[InputRecord]) -> str:
    """sha256 of what the model sees (names/lines excluded)."""
    text = json.dumps([r.content() for r in records], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def first_difference(ours: Sequence[InputRecord], theirs: Sequence[InputRecord]) -> Optional[str]:
    """None when both lists hold the same inputs in the same order, else a sentence naming the first difference."""
    if len(ours) != len(theirs):
        return f"{len(ours)} inputs vs {len(theirs)}"
    for a, b in zip(ours, theirs):
        if a.content() != b.content():
            return f"{a.describe()} vs {b.describe()}"
    return None


# ------------------------------------------------------------------------------------------------------ tokenizing


def load_tokenizer(directory: Optional[PathLike]):
    """``BertTokenizerFast.from_pretrained(directory)`` or None when the checkpoint has no tokenizer files."""
    if directory is None:
        return None
    from bert_core.tokenization_fast import BertTokenizerFast

    try:
        return BertTokenizerFast.from_pretrained(os.fspath(directory))
    except FileNotFoundError:
        return None


def tokenizer_digest(tokenizer) -> Optional[str]:
    """sha256 of what decides the ids: vocabulary (added tokens included), normalisation settings, special tokens,
    truncation side. Not the file bytes: a tokenizer.json re-serialised by another version hashes the same."""
    if tokenizer is None:
        return None
    settings = {
        "vocab": sorted(tokenizer.get_vocab().items()),
        "do_lower_case": tokenizer.do_lower_case,
        "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars,
        "strip_accents": tokenizer.strip_accents,
        "special": tokenizer.special_tokens_map,
        "truncation_side": tokenizer.truncation_side,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def model_limit(config: BertConfig, tokenizer=None, max_length: Optional[int] = None) -> int:
    """Longest sequence the model takes: ``max_position_embeddings``, the tokenizer's ``model_max_length`` and
    ``max_length`` (whichever are given), the smallest."""
    limit = int(config.max_position_embeddings)
    if tokenizer is not None:
        limit = min(limit, int(tokenizer.model_max_length))
    if max_length is not None:
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 3:
            raise InputsError(f"max_length must be an int >= 3 ([CLS] a [SEP]), got {max_length!r}")
        limit = min(limit, max_length)
    return limit


def encode_inputs(
    records: Sequence[InputRecord], config: BertConfig, tokenizer=None, limit: Optional[int] = None
) -> List[EncodedInput]:
    """Token ids of every record: texts through ``tokenizer`` (special tokens, truncation to ``limit``), raw ids
    checked against the vocabulary, ``type_vocab_size`` and ``limit``.

    Raises:
        InputsError: texts without a tokenizer, ids out of range or longer than ``limit``, naming the input.
    """
    limit = model_limit(config, tokenizer) if limit is None else limit
    out: List[EncodedInput] = []
    for r in records:
        if r.text is not None:
            if tokenizer is None:
                raise InputsError(
                    f"{r.describe()}: texts need the checkpoint's tokenizer (vocab.txt or tokenizer.json next to "
                    f'config.json), and it has none; give token ids as {{"input_ids": [...]}} instead'
                )
            enc = tokenizer(r.text, r.text_pair, truncation=True, max_length=limit)
            full = tokenizer(r.text, r.text_pair, verbose=False)
            ids = np.asarray(enc["input_ids"], np.int64)
            types = np.asarray(enc["token_type_ids"], np.int64)
            out.append(EncodedInput(r, ids, types, truncated=len(full["input_ids"]) > len(ids)))
            continue
        ids = np.asarray(r.input_ids, np.int64)
        types = np.zeros_like(ids) if r.token_type_ids is None else np.asarray(r.token_type_ids, np.int64)
        where = f"{r.describe()}"
        if ids.shape[0] > limit:
            raise InputsError(f"{where}: {ids.shape[0]} input_ids, more than the model's limit of {limit}")
        if ids.min() < 0 or ids.max() >= config.vocab_size:
            raise InputsError(f"{where}: input_ids must be in [0, vocab_size={config.vocab_size})")
        if types.min() < 0 or types.max() >= config.type_vocab_size:
            raise InputsError(f"{where}: token_type_ids must be in [0, type_vocab_size={config.type_vocab_size})")
        out.append(EncodedInput(r, ids, types))
    return out


def batches(
    encoded: Sequence[EncodedInput], pad_token_id: int, limit: int, batch_size: int = BATCH_SIZE
) -> Iterator[Tuple[List[int], Dict[str, np.ndarray]]]:
    """``(indices into encoded, batch)``: inputs bucketed by length (bert_core.batching), right-padded with
    ``pad_token_id``; ``batch`` holds int64 ``input_ids``, ``attention_mask``, ``token_type_ids`` of shape (b, S)."""
    # padded lengths are rounded up to a multiple of 8 (fewer distinct shapes for jitted backends), unless that could
    # step past the position table
    multiple = 8 if limit % 8 == 0 else 1
    for indices, batch in iter_bucketed(
        [e.input_ids for e in encoded],
        batch_size=batch_size,
        pad_to_multiple_of=multiple,
        pad_token_id=pad_token_id,
        token_type_ids=[e.token_type_ids for e in encoded],
    ):
        yield [int(i) for i in indices], batch
