"""Golden files: one backend's outputs on the user's inputs, kept so a later run (a new conversion, a library
upgrade) can be compared with them, not only the backends with each other.

A golden file is one safetensors file (nothing pickled, readable by any safetensors reader):

* tensors ``outputs/<head>/<i>/<field>``: float32 outputs of input ``i`` (0-based, file order), trimmed to the
  input's own tokens along the sequence axis (padding and batch composition do not enter);
  ``inputs/<i>/input_ids`` and ``inputs/<i>/token_type_ids``: int64 (L,), the ids the model saw;
* string metadata: ``format`` (:data:`GOLDEN_FORMAT`), ``format_version``, ``backend``, ``heads``, ``inputs`` (the
  records as written, JSON), ``inputs_sha256``, ``max_length``, ``tokenizer_sha256``, ``config`` (the fields that
  decide the outputs, JSON) and ``config_sha256``, ``weights_sha256``, ``versions`` (library and framework
  versions), ``tolerance``, ``checkpoint``.

Comparing refuses (:class:`GoldenMismatch`, exit 2) a file made for another model (config), another tokenizer or
other inputs; everything else is a comparison whose rows can fail (exit 1).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from bert_core.backends import BACKENDS, distribution_version
from bert_core.config import BertConfig
from bert_core.io_utils import atomic_path

from .inputs import EncodedInput, InputRecord, first_difference, records_digest
from .tolerance import Tolerance

PathLike = Union[str, os.PathLike]

GOLDEN_FORMAT = "multi-bert-parity-golden"
GOLDEN_VERSION = "1"
#: config.json keys that cannot change eval-mode outputs (bookkeeping, dropout, output switches, label names)
IGNORED_CONFIG_KEYS = frozenset(
    {
        "_name_or_path",
        "transformers_version",
        "architectures",
        "torch_dtype",
        "dtype",
        "id2label",
        "label2id",
        "gradient_checkpointing",
        "use_cache",
        "return_dict",
        "output_attentions",
        "output_hidden_states",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "classifier_dropout",
        "problem_type",
    }
)


class GoldenError(ValueError):
    """The golden file cannot be read or is not a golden file."""


class GoldenMismatch(ValueError):
    """The golden file was made for another model, tokenizer or set of inputs: comparing would be meaningless."""


def config_fingerprint(config: BertConfig) -> Dict[str, Any]:
    """The config fields that decide the outputs (JSON-ready, ``num_labels`` instead of the label names)."""
    data = {k: v for k, v in config.to_dict().items() if k not in IGNORED_CONFIG_KEYS}
    data["num_labels"] = config.num_labels
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def _sha(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def weights_digest(state: Mapping[str, np.ndarray]) -> str:
    """sha256 over every tensor (name, dtype, shape, bytes) in name order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name in sorted(state):
        a = np.ascontiguousarray(state[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def library_versions(backends: Sequence[str]) -> Dict[str, Optional[str]]:
    """Versions of multi-bert, its core dependencies and the frameworks of ``backends`` (None: not installed)."""
    names = ["multi-bert", "numpy", "safetensors", "tokenizers"]
    for b in backends:
        names.extend(d for d in BACKENDS[b].distributions if d not in names)
    out: Dict[str, Optional[str]] = {"python": platform.python_version()}
    out.update((n, distribution_version(n)) for n in names)
    return out


@dataclass
class Golden:
    """A golden file in memory. ``outputs[(head, i)]``: field -> float32 array of input ``i``."""

    path: str
    backend: str
    heads: List[str]
    records: List[InputRecord]
    input_ids: List[np.ndarray]
    token_type_ids: List[np.ndarray]
    outputs: Dict[Tuple[str, int], "OrderedDict[str, np.ndarray]"]
    max_length: int
    tokenizer_sha256: Optional[str]
    config: Dict[str, Any]
    config_sha256: str
    weights_sha256: str
    versions: Dict[str, Optional[str]]
    tolerance: Tolerance
    checkpoint: str
    extra: Dict[str, str] = field(default_factory=dict)

    @property
    def has_texts(self) -> bool:
        return any(r.text is not None for r in self.records)


def write_golden(
    path: PathLike,
    *,
    backend: str,
    heads: Sequence[str],
    encoded: Sequence[EncodedInput],
    outputs: Mapping[Tuple[str, int], Mapping[str, np.ndarray]],
    max_length: int,
    tokenizer_sha256: Optional[str],
    config: BertConfig,
    weights_sha256: str,
    tolerance: Tolerance,
    checkpoint: str,
) -> Path:
    """Write the golden file atomically (a kill leaves the previous file, or none). Returns its path."""
    from safetensors.numpy import save_file

    tensors: Dict[str, np.ndarray] = {}
    for i, e in enumerate(encoded):
        tensors[f"inputs/{i}/input_ids"] = np.ascontiguousarray(e.input_ids, np.int64)
        tensors[f"inputs/{i}/token_type_ids"] = np.ascontiguousarray(e.token_type_ids, np.int64)
    for (head, i), fields in outputs.items():
        for name, value in fields.items():
            value = np.asarray(value)
            dtype = np.int64 if value.dtype.kind in "iub" else np.float32
            tensors[f"outputs/{head}/{i}/{name}"] = np.ascontiguousarray(value, dtype)
    records = [e.record for e in encoded]
    fingerprint = config_fingerprint(config)
    metadata = {
        "format": GOLDEN_FORMAT,
        "format_version": GOLDEN_VERSION,
        "backend": backend,
        "heads": json.dumps(list(heads)),
        "inputs": json.dumps([r.as_dict() for r in records], ensure_ascii=False),
        "inputs_sha256": records_digest(records),
        "max_length": str(int(max_length)),
        "tokenizer_sha256": tokenizer_sha256 or "",
        "config": json.dumps(fingerprint, sort_keys=True),
        "config_sha256": _sha(fingerprint),
        "weights_sha256": weights_sha256,
        "versions": json.dumps(library_versions([backend]), sort_keys=True),
        "tolerance": json.dumps({"rtol": tolerance.rtol, "grad_factor": tolerance.grad_factor}),
        "checkpoint": checkpoint,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, os.fspath(tmp), metadata=metadata)
    return path


def read_golden(path: PathLike) -> Golden:
    """Read a golden file (safetensors only: nothing is unpickled).

    Raises:
        FileNotFoundError: no such file.
        GoldenError: not a safetensors file, or not a golden file of this library (e.g. a model.safetensors).
    """
    from safetensors import safe_open

    where = os.fspath(path)
    if not Path(where).is_file():
        raise FileNotFoundError(f"golden file {where!r} does not exist")
    try:
        with safe_open(where, framework="np") as handle:
            meta = dict(handle.metadata() or {})
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:  # safetensors' own error type is not a ValueError: one message for every reader failure
        raise GoldenError(f"{where}: not a readable safetensors file ({err})") from None
    if meta.get("format") != GOLDEN_FORMAT:
        raise GoldenError(
            f"{where}: not a bert parity golden file (write one with `bert parity DIR --inputs FILE --save-golden G`)"
        )
    if meta.get("format_version") != GOLDEN_VERSION:
        raise GoldenError(
            f"{where}: golden format version {meta.get('format_version')!r}; this library reads {GOLDEN_VERSION!r}"
        )
    try:
        records = [InputRecord.from_dict(d) for d in json.loads(meta["inputs"])]
        n = len(records)
        ids = [tensors[f"inputs/{i}/input_ids"] for i in range(n)]
        types = [tensors[f"inputs/{i}/token_type_ids"] for i in range(n)]
        heads = list(json.loads(meta["heads"]))
        tol = json.loads(meta["tolerance"])
        outputs: Dict[Tuple[str, int], "OrderedDict[str, np.ndarray]"] = {}
        for key in sorted(tensors):
            if key.startswith("outputs/"):
                _, head, index, name = key.split("/", 3)
                outputs.setdefault((head, int(index)), OrderedDict())[name] = tensors[key]
        golden = Golden(
            path=where,
            backend=meta["backend"],
            heads=heads,
            records=records,
            input_ids=ids,
            token_type_ids=types,
            outputs=outputs,
            max_length=int(meta["max_length"]),
            tokenizer_sha256=meta.get("tokenizer_sha256") or None,
            config=json.loads(meta["config"]),
            config_sha256=meta["config_sha256"],
            weights_sha256=meta.get("weights_sha256", ""),
            versions=json.loads(meta.get("versions", "{}")),
            tolerance=Tolerance(float(tol["rtol"]), float(tol.get("grad_factor", 10.0))),
            checkpoint=meta.get("checkpoint", ""),
        )
    except (KeyError, ValueError, TypeError) as err:
        raise GoldenError(f"{where}: damaged golden file ({type(err).__name__}: {err})") from None
    return golden


def check_golden(
    golden: Golden,
    *,
    config: BertConfig,
    tokenizer_sha256: Optional[str],
    records: Optional[Sequence[InputRecord]] = None,
    max_length: Optional[int] = None,
) -> None:
    """Refuse a golden file made for another model, tokenizer, inputs or length limit.

    Raises:
        GoldenMismatch: naming what differs (config fields with both values, the first differing input, ...).
    """
    where = golden.path
    now = config_fingerprint(config)
    if _sha(now) != golden.config_sha256:
        keys = sorted(set(now) | set(golden.config))
        diff = [
            f"{k}: {golden.config.get(k)!r} in the golden file vs {now.get(k)!r}"
            for k in keys
            if now.get(k) != golden.config.get(k)
        ]
        raise GoldenMismatch(
            f"golden file {where} was made for another model (config differs: {'; '.join(diff[:4]) or 'hash'})"
        )
    if golden.has_texts and tokenizer_sha256 != golden.tokenizer_sha256:
        if tokenizer_sha256 is None:
            raise GoldenMismatch(
                f"golden file {where} holds texts, and the checkpoint has no tokenizer to check them with "
                "(copy vocab.txt / tokenizer.json next to config.json)"
            )
        raise GoldenMismatch(
            f"golden file {where} was made with another tokenizer (vocabulary or settings differ: sha256 "
            f"{(golden.tokenizer_sha256 or 'none')[:12]} in the golden file vs {tokenizer_sha256[:12]})"
        )
    if records is not None:
        diff = first_difference(list(records), golden.records)
        if diff is not None:
            raise GoldenMismatch(f"golden file {where} was made from other inputs ({diff} in the golden file)")
    if max_length is not None and max_length != golden.max_length:
        raise GoldenMismatch(
            f"golden file {where} was made with max_length {golden.max_length}, this run uses {max_length}"
        )


def version_changes(golden: Golden, backends: Sequence[str]) -> List[str]:
    """``["torch 2.12.0 -> 2.13.0", ...]``: versions that differ from the golden file's (for the report's notes)."""
    now = library_versions(backends)
    return [
        f"{k} {golden.versions[k]} -> {v}"
        for k, v in now.items()
        if k in golden.versions and golden.versions[k] is not None and v is not None and golden.versions[k] != v
    ]
