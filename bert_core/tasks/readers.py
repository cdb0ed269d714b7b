"""Reading the user's data files: CSV/TSV/JSON lines tables, CoNLL columns, plain text and SQuAD JSON.

Every reader names the file and the 1-based line (or the JSON path) of a bad row in a :class:`DataError`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from .base import DataError

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


def read_text(path) -> str:
    """The file's text (UTF-8, a leading BOM dropped).

    Raises:
        FileNotFoundError: no such file. DataError: not UTF-8 (naming the line of the first bad byte).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data file not found: {os.fspath(path)!r}")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(path, f"line {line}", None, f"is not UTF-8 text ({err.reason} at byte {err.start})") from None
    return text[1:] if text.startswith("\ufeff") else text


def _lines(path) -> List[str]:
    return read_text(path).splitlines()


def empty_error(path, what: str = "examples") -> DataError:
    return DataError(path, None, None, f"has no {what} (the file is empty)")


def table_format(path, task: str) -> str:
    """'csv', 'tsv' or 'jsonl' from the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise DataError(
            path, None, None, f"has an unknown extension {suffix or '(none)'!r} for {task}: use .csv, .tsv or .jsonl"
        )
    return TABLE_FORMATS[suffix]


def jsonl_rows(path) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``("line N", object)`` for every non-blank line of a JSON lines file."""
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            hint = " (one JSON object per line is expected)" if number == 1 and line.lstrip()[:1] == "[" else ""
            raise DataError(path, where, None, f"is not valid JSON: {err.msg} at column {err.colno}{hint}") from None
        if not isinstance(value, dict):
            raise DataError(
                path, where, None, f"must be a JSON object (one JSON object per line), got {type(value).__name__}"
            )
        yield where, value


def delimited_rows(path, delimiter: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``("line N", {column: cell})`` for every data row of a CSV/TSV file with a header row."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as err:
        raise DataError(path, "line 1", None, f"is not valid {'CSV' if delimiter == ',' else 'TSV'}: {err}") from None
    header = [h.strip() for h in header]
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(path, f"line {reader.line_num}", None, f"is not valid CSV/TSV: {err}") from None
        where = f"line {reader.line_num}"
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise DataError(path, where, None, f"has {len(cells)} columns but the header has {len(header)}")
        # a short row lacks its last columns: they read as missing fields
        yield where, dict(zip(header, cells))


def table_rows(path, task: str) -> Iterator[Tuple[str, str, Dict[str, Any]]]:
    """``(format, where, row)`` of a CSV, TSV or JSON lines file (format from the extension)."""
    kind = table_format(path, task)
    rows = jsonl_rows(path) if kind == "jsonl" else delimited_rows(path, "," if kind == "csv" else "\t")
    for where, row in rows:
        yield kind, where, row


def conll_sentences(path) -> Iterator[Tuple[str, List[str], List[str]]]:
    """``("line N", tokens, tags)`` per sentence of a CoNLL file: whitespace-separated columns, the token first and
    the tag last; blank lines between sentences; ``-DOCSTART-`` lines skipped."""
    tokens: List[str] = []
    tags: List[str] = []
    start = 0
    for number, line in enumerate(_lines(path), start=1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if tokens:
                yield f"line {start}", tokens, tags
            tokens, tags = [], []
            continue
        if len(columns) < 2:
            raise DataError(
                path, f"line {number}", None, f"has 1 column ({columns[0]!r}); a CoNLL line needs a token and a tag"
            )
        if not tokens:
            start = number
        tokens.append(columns[0])
        tags.append(columns[-1])
    if tokens:
        yield f"line {start}", tokens, tags


def text_lines(path) -> Iterator[Tuple[str, str]]:
    """``("line N", text)`` for every non-blank line."""
    for number, line in enumerate(_lines(path), start=1):
        if line.strip():
            yield f"line {number}", line


def documents(path) -> Iterator[Tuple[str, List[str]]]:
    """``("line N", sentences)`` per document: one sentence per line, blank lines between documents."""
    sentences: List[str] = []
    start = 0
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            if sentences:
                yield f"line {start}", sentences
            sentences = []
            continue
        if not sentences:
            start = number
        sentences.append(line.strip())
    if sentences:
        yield f"line {start}", sentences


def read_json(path) -> Any:
    """The whole file as one JSON value."""
    text = read_text(path)
    if not text.strip():
        raise empty_error(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            path, f"line {err.lineno}", None, f"is not valid JSON: {err.msg} at column {err.colno}"
        ) from None


def field(path, where: str, row: Mapping[str, Any], name: str, required: bool = True) -> Any:
    """``row[name]``; a required field that is absent or null raises a DataError (an optional one gives None)."""
    value = row.get(name)
    if value is None:
        if required:
            raise DataError(path, where, name, "is missing")
        return None
    return value


def text_field(path, where: str, row: Mapping[str, Any], name: str, required: bool = True) -> Optional[str]:
    """A string field (see :func:`field`)."""
    value = field(path, where, row, name, required)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(path, where, name, f"must be a string, got {type(value).__name__} {value!r:.40}")
    return value
