"""Parity on the user's own inputs (``bert parity DIR --inputs FILE``), against a golden file (``--golden G``), and
the writing of one (``--save-golden G``).

Every head the checkpoint's config names (``architectures``; ``--heads`` overrides, a golden file brings its own)
runs every input on every backend from the same weights. Outputs are compared input by input, trimmed to the input's
own tokens, so a row names the head, the input and the field: ``BertModel/line3/last_hidden_state``. Sections:

* ``outputs`` (pair ``torch~tf``): two backends, the usual tolerance policy;
* ``golden`` (pair ``golden~torch``): a backend against the golden file (its tolerance unless one is given), and
  ``golden tokenizer`` (pair ``golden~tokenizer``): the ids the tokenizer gives now against the stored ones;
* ``rerun`` (pair ``torch``): when saving, the reference backend's first batch run twice must agree (a golden file
  recorded from non-reproducible outputs would fail at random later).
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bert_core.config import BertConfig
from bert_core.weights import HEADS, match_state_dict

from .adapters import BackendUnavailable, get_adapter, resolve_backends
from .cases import head_config
from .default import load_checkpoint_any
from .golden import Golden, check_golden, read_golden, version_changes, weights_digest, write_golden
from .inputs import (
    BATCH_SIZE,
    EncodedInput,
    InputsError,
    as_records,
    batches,
    encode_inputs,
    load_tokenizer,
    model_limit,
    tokenizer_digest,
)
from .tolerance import DEFAULT_TOLERANCE, Comparison, Tolerance, compare

#: heads whose forward takes ``use_cache`` (off here: the cache is the built-in battery's business)
CACHE_HEADS = ("BertModel", "BertLMHeadModel")
#: fields whose axis 1 is the sequence for every head, and heads whose ``logits`` are per token
SEQUENCE_FIELDS = ("last_hidden_state", "prediction_logits", "start_logits", "end_logits")
TOKEN_LOGIT_HEADS = ("BertForMaskedLM", "BertLMHeadModel", "BertForTokenClassification")


def heads_from_config(config: BertConfig) -> List[str]:
    """The heads named by ``config.architectures`` (``TFBert*`` / ``FlaxBert*`` spellings accepted); BertModel when
    there is none.

    Raises:
        ValueError: an architecture that is not one of this library's heads (pick heads with ``--heads``).
    """
    names = list(getattr(config, "architectures", None) or [])
    out: List[str] = []
    for name in names:
        head = name[2:] if name.startswith("TFBert") else name[4:] if name.startswith("FlaxBert") else name
        if head not in HEADS:
            raise ValueError(
                f"config.json names architecture {name!r}, which is not a BERT head of this library "
                f"({', '.join(HEADS)}); choose heads with --heads"
            )
        if head not in out:
            out.append(head)
    return out or ["BertModel"]


def _seq_axis(head: str, name: str) -> Optional[int]:
    """Axis of the sequence in output field ``name`` of ``head`` (None: no per-token axis, e.g. pooled logits)."""
    if name in SEQUENCE_FIELDS or name.startswith("hidden_states."):
        return 1
    if name == "logits" and head in TOKEN_LOGIT_HEADS:
        return 1
    return None


def split_rows(
    head: str, out: Mapping[str, np.ndarray], lengths: Sequence[int]
) -> List["OrderedDict[str, np.ndarray]"]:
    """Batch outputs (field -> (b, ...)) -> per input (field -> (...)), per-token fields cut to the input's length."""
    rows: List["OrderedDict[str, np.ndarray]"] = [OrderedDict() for _ in lengths]
    for name, value in out.items():
        value = np.asarray(value)
        axis = _seq_axis(head, name)
        for r, n in enumerate(lengths):
            item = value[r]
            if axis is not None and item.ndim >= axis:
                item = np.take(item, np.arange(n), axis=axis - 1)
            rows[r][name] = np.ascontiguousarray(item)
    return rows


def _model_inputs(head: str, batch: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    inputs: Dict[str, Any] = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    if head == "BertForMultipleChoice":
        # each input is one choice: (b, 1, S) -> logits (b, 1)
        inputs = {k: v[:, None, :] for k, v in inputs.items()}
    if head in CACHE_HEADS:
        inputs["use_cache"] = False
    return inputs


def _batch_label(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}+{len(names) - 1} more"


def _compare_fields(report, section, head, case, pair, a, b, tol) -> None:
    for name in list(a) + [k for k in b if k not in a]:
        if name not in a or name not in b:
            side = pair.split("~")[1] if name not in b else pair.split("~")[0]
            report.add(section, head, case, name, pair, Comparison(math.inf, 0.0, False, f"missing in {side}"))
        else:
            report.add(section, head, case, name, pair, compare(a[name], b[name], tol))


def run_inputs(
    checkpoint: Any = None,
    inputs: Any = None,
    backends: Optional[Sequence[str]] = None,
    heads: Optional[Sequence[str]] = None,
    tolerance: Optional[Tolerance] = None,
    *,
    golden: Any = None,
    save_golden: Optional[str] = None,
    golden_backend: Optional[str] = None,
    max_length: Optional[int] = None,
    weight_hook: Optional[Callable] = None,
    progress: Optional[Callable[[str], None]] = None,
    batch_size: int = BATCH_SIZE,
):
    """Run the user's inputs through every head on every backend; compare pairwise and/or with a golden file.

    Args:
        checkpoint: a directory or hub id (its tokenizer tokenizes the texts), a Checkpoint, or None (embedded
            default, which has no tokenizer: raw ``input_ids`` only).
        inputs: a JSONL path or a list of texts / dicts (see :mod:`conformance.inputs`); default: the golden file's.
        backends: names (default every installed). Fewer than two need ``golden``.
        heads: default the golden file's, else the config's ``architectures``.
        tolerance: default the golden file's, else the library default.
        golden: a golden file path (or a read :class:`Golden`) to compare every backend with.
        save_golden: write the outputs of ``golden_backend`` (default the first backend) here, if every check passed.
        max_length: cut texts to this many tokens (default the model's limit; a golden file brings its own).
        weight_hook: (backend, head, weights) -> weights given to that backend (tests break one backend with it).

    Returns:
        a :class:`conformance.runner.Report`; ``extra`` holds the inputs (name, line, tokens, truncated) and the
        golden file's provenance.

    Raises:
        InputsError / GoldenMismatch / GoldenError / ValueError: bad inputs, a golden file for another model,
            tokenizer or inputs, an unknown head; BackendUnavailable: fewer than two backends and no golden file.
    """
    from .runner import Report, head_weights

    start = time.perf_counter()
    say = progress or (lambda msg: None)
    if golden is not None and save_golden is not None:
        raise ValueError("--golden compares with a golden file and --save-golden writes one: use one at a time")
    if inputs is None and golden is None:
        raise ValueError("parity on user inputs needs --inputs FILE (or a golden file that holds them)")
    ckpt = load_checkpoint_any(checkpoint)
    config = ckpt.config
    gold: Optional[Golden] = None
    if golden is not None:
        gold = golden if isinstance(golden, Golden) else read_golden(golden)
    records = as_records(inputs) if inputs is not None else list(gold.records)  # type: ignore[union-attr]
    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None
    needs_tokenizer = any(r.text is not None for r in records) or (gold is not None and gold.has_texts)
    tokenizer = load_tokenizer(source) if needs_tokenizer else None
    if tokenizer is None and any(r.text is not None for r in records):
        first = next(r for r in records if r.text is not None)
        where = "the embedded default checkpoint" if source is None else source
        raise InputsError(
            f"{where} has no tokenizer (vocab.txt or tokenizer.json) for texts such as {first.describe(30)}; pass a "
            f'checkpoint directory that has one, or give token ids as {{"input_ids": [...]}}'
        )
    tok_sha = tokenizer_digest(tokenizer)
    if gold is not None:
        check_golden(
            gold,
            config=config,
            tokenizer_sha256=tok_sha,
            records=records if inputs is not None else None,
            max_length=max_length,
        )
        limit = gold.max_length
    else:
        limit = model_limit(config, tokenizer, max_length)
    encoded = encode_inputs(records, config, tokenizer, limit)

    names = resolve_backends(backends)
    if not names or (len(names) < 2 and gold is None and save_golden is None):
        have = f"only {names[0]!r} is" if names else "none is"
        raise BackendUnavailable(
            f"parity compares backends and needs at least two, or a golden file (--golden) to compare one with; "
            f"{have} selected/installed (pip install 'multi-bert[torch]', 'multi-bert[tf]', 'multi-bert[flax]')"
        )
    if heads is None:
        head_list = list(gold.heads) if gold is not None else heads_from_config(config)
    else:
        head_list = list(heads)
        for h in head_list:
            if h not in HEADS:
                raise ValueError(f"unknown head {h!r}; expected one of {', '.join(HEADS)}")
            if gold is not None and h not in gold.heads:
                raise ValueError(f"golden file {gold.path} has no outputs for {h} (it has {', '.join(gold.heads)})")
    reference = golden_backend or names[0]
    if save_golden is not None and reference not in names:
        raise ValueError(f"--golden-backend {reference!r} is not among the backends run ({', '.join(names)})")
    if tolerance is not None:
        tol = tolerance
    else:
        tol = gold.tolerance if gold is not None else DEFAULT_TOLERANCE

    report = Report(ckpt.name, names, head_list, tol)
    truncated = [e.record.name for e in encoded if e.truncated]
    report.extra["inputs"] = [
        dict(name=e.record.name, line=e.record.line, tokens=e.length, truncated=e.truncated) for e in encoded
    ]
    report.extra["max_length"] = limit
    report.notes.append(
        f"{len(encoded)} user input(s), {sum(e.length for e in encoded)} tokens, limit {limit}"
        + (f"; truncated: {', '.join(truncated[:8])}{' ...' if len(truncated) > 8 else ''}" if truncated else "")
    )
    if gold is not None:
        _golden_preamble(report, gold, encoded, names, ckpt.state, tokenizer is not None)
        # the model runs the stored ids: a tokenizer change is its own row, not a cascade of shape mismatches
        encoded = [
            EncodedInput(e.record, gold.input_ids[i], gold.token_type_ids[i], e.truncated)
            for i, e in enumerate(encoded)
        ]

    adapters = {}
    for n in names:
        t0 = time.perf_counter()
        adapters[n] = get_adapter(n)
        say(f"loaded backend {n} ({time.perf_counter() - t0:.1f} s)")
    pad_id = int(config.pad_token_id if config.pad_token_id is not None else 0)
    plan = list(batches(encoded, pad_id, limit, batch_size))
    saved: Dict[Tuple[str, int], "OrderedDict[str, np.ndarray]"] = {}
    for index, head in enumerate(head_list, 1):
        t0 = time.perf_counter()
        cfg = head_config(config, head)
        weights = head_weights(ckpt, cfg, head)
        _, info = match_state_dict(ckpt.state, cfg, head, ignore_mismatched_sizes=True)
        if info.missing_keys:
            # a head the checkpoint was not trained with (--heads): same seeded arrays everywhere, still comparable
            report.notes.append(
                f"{head}: {len(info.missing_keys)} tensor(s) not in the checkpoint, seeded init "
                f"({', '.join(info.missing_keys[:3])}{' ...' if len(info.missing_keys) > 3 else ''})"
            )
        models = {}
        for n, adapter in adapters.items():
            try:
                w = weights
                if weight_hook is not None:
                    w = OrderedDict(weight_hook(n, head, OrderedDict((k, v.copy()) for k, v in w.items())))
                models[n] = adapter.build(head, cfg, w)
            except Exception as err:  # a backend that cannot build fails its cells; the others still run
                report.error("build", head, "build", n, err)
        for number, (indices, batch) in enumerate(plan):
            labels = [encoded[i].record.name for i in indices]
            lengths = [encoded[i].length for i in indices]
            call = _model_inputs(head, batch)
            per_backend: Dict[str, List["OrderedDict[str, np.ndarray]"]] = {}
            for n, model in models.items():
                try:
                    per_backend[n] = split_rows(head, adapters[n].forward(model, call), lengths)
                except Exception as err:
                    report.error("outputs", head, _batch_label(labels), n, err)
            done = list(per_backend)
            for r, i in enumerate(indices):
                name = labels[r]
                for a_pos, a in enumerate(done):
                    for b in done[a_pos + 1 :]:
                        _compare_fields(
                            report, "outputs", head, name, f"{a}~{b}", per_backend[a][r], per_backend[b][r], tol
                        )
                if gold is not None:
                    ref = gold.outputs.get((head, i), OrderedDict())
                    for n in done:
                        _compare_fields(report, "golden", head, name, f"golden~{n}", ref, per_backend[n][r], tol)
                if save_golden is not None and reference in per_backend:
                    saved[(head, i)] = per_backend[reference][r]
            if save_golden is not None and number == 0 and reference in per_backend:
                try:
                    again = split_rows(head, adapters[reference].forward(models[reference], call), lengths)
                except Exception as err:
                    report.error("rerun", head, _batch_label(labels), reference, err)
                    continue
                for r, name in enumerate(labels):
                    _compare_fields(report, "rerun", head, name, reference, per_backend[reference][r], again[r], tol)
        bad = sum(1 for row in report.rows if row.head == head and not row.passed)
        say(
            f"[{index}/{len(head_list)}] {head}: {'ok' if not bad else f'{bad} failing'} "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        del models
    _name_inputs_in_failures(report, encoded)
    if save_golden is not None:
        _save(report, save_golden, reference, head_list, encoded, saved, limit, tok_sha, config, ckpt, tol)
    report.seconds = time.perf_counter() - start
    return report


def _golden_preamble(report, gold: Golden, encoded, names, state, have_tokenizer: bool) -> None:
    """Notes on the golden file's provenance, and the tokenizer rows (ids now vs stored)."""
    report.extra["golden"] = {
        "path": gold.path,
        "backend": gold.backend,
        "versions": gold.versions,
        "checkpoint": gold.checkpoint,
        "weights_sha256": gold.weights_sha256,
    }
    made = ", ".join(f"{k} {v}" for k, v in gold.versions.items() if v and k != "python")
    report.notes.append(f"golden file {gold.path}: {gold.backend} outputs of {gold.checkpoint} ({made})")
    changes = version_changes(gold, names)
    if changes:
        report.notes.append(f"versions changed since the golden file: {', '.join(changes)}")
    if gold.weights_sha256 and weights_digest(state) != gold.weights_sha256:
        report.notes.append(
            "weights are not bit-identical to those the golden file was made from; outputs compared within tolerance"
        )
    if not (gold.has_texts and have_tokenizer):
        return
    for i, e in enumerate(encoded):
        if e.record.text is None:
            continue
        now = OrderedDict(input_ids=e.input_ids, token_type_ids=e.token_type_ids)
        then = OrderedDict(input_ids=gold.input_ids[i], token_type_ids=gold.token_type_ids[i])
        _compare_fields(report, "golden", "tokenizer", e.record.name, "golden~tokenizer", then, now, DEFAULT_TOLERANCE)


def _name_inputs_in_failures(report, encoded: Sequence[EncodedInput]) -> None:
    """Failing rows carry the input's text in their note, so a CI log says which text broke."""
    by_name = {e.record.name: e.record for e in encoded}
    for row in report.rows:
        if not row.passed and row.case in by_name:
            text = by_name[row.case].describe(48).split(" ", 1)[1]
            row.note = f"{row.note}; input {text}" if row.note else f"input {text}"


def _save(report, path, reference, heads, encoded, saved, limit, tok_sha, config, ckpt, tol) -> None:
    complete = all((h, i) in saved for h in heads for i in range(len(encoded)))
    if not report.passed or not complete:
        report.notes.append(f"golden file {path} NOT written: the checks below failed")
        return
    out = write_golden(
        path,
        backend=reference,
        heads=heads,
        encoded=encoded,
        outputs=saved,
        max_length=limit,
        tokenizer_sha256=tok_sha,
        config=config,
        weights_sha256=weights_digest(ckpt.state),
        tolerance=tol,
        checkpoint=ckpt.name,
    )
    size = Path(out).stat().st_size
    report.extra["golden_written"] = os.fspath(out)
    report.notes.append(
        f"wrote golden file {os.fspath(out)}: {reference} outputs of {len(encoded)} input(s) x {len(heads)} head(s) "
        f"({size / 1e6:.1f} MB)"
    )


__all__ = ["InputsError", "heads_from_config", "run_inputs", "split_rows"]
