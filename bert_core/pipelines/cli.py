"""``bert predict TASK --model M [--backend B] [--input FILE|-] [--output FILE|-] [--batch-size N] [options]``.

JSON lines in, JSON lines out, streaming. Each input line is a JSON string (the text) or object (``{"text": ...,
"text_pair": ...}``, ``{"question": ..., "context": ...}``, ``{"text": ..., "candidate_labels": [...]}``; an ``"id"``
is copied to the output). Each output line is ``{"line": N, "output": ...}`` (what the Python pipeline returns for
that input) or ``{"line": N, "error": "..."}``: a line that cannot be processed is reported and the run goes on.

Exit status: 0 when every line succeeded, 1 when some failed (listed on stderr), 2 for a usage error (unknown task,
an option the task does not take, a model that cannot be loaded): one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from ..compiled import COMPILE_HELP

#: option dest -> (pipeline parameter, tasks that take it)
TASK_OPTIONS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "top_k": ("top_k", ("fill-mask", "text-classification", "question-answering")),
    "targets": ("targets", ("fill-mask",)),
    "function_to_apply": ("function_to_apply", ("text-classification",)),
    "truncation": ("truncation", ("text-classification", "feature-extraction")),
    "aggregation_strategy": ("aggregation_strategy", ("token-classification",)),
    "ignore_labels": ("ignore_labels", ("token-classification",)),
    "stride": ("stride", ("token-classification",)),
    "doc_stride": ("doc_stride", ("question-answering",)),
    "max_answer_len": ("max_answer_len", ("question-answering",)),
    "max_seq_len": ("max_seq_len", ("question-answering",)),
    "max_question_len": ("max_question_len", ("question-answering",)),
    "handle_impossible_answer": ("handle_impossible_answer", ("question-answering",)),
    "align_to_words": ("align_to_words", ("question-answering",)),
    "candidate_labels": ("candidate_labels", ("zero-shot-classification",)),
    "hypothesis_template": ("hypothesis_template", ("zero-shot-classification",)),
    "multi_label": ("multi_label", ("zero-shot-classification",)),
    "normalize": ("normalize", ("sentence-embedding",)),
}


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


def _split(text: str) -> List[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _top_k(text: str) -> Optional[int]:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'all', got {text!r}") from None


def add_parsers(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bert predict`` on ``subparsers`` (``ArgumentParser.add_subparsers()``); loads no framework."""
    p = subparsers.add_parser(
        "predict",
        help="run a task pipeline over JSON lines (fill-mask, text-/token-classification, QA, embeddings, zero-shot)",
        description=__doc__.split("\n\n")[1],
    )
    # a usage error is one line on stderr and exit status 2 (argparse would print the whole usage first)
    p.error = lambda message: _usage_exit(message)  # type: ignore[method-assign]
    p.add_argument(
        "task",
        help="fill-mask, text-classification, token-classification, question-answering, "
        "feature-extraction, sentence-embedding, zero-shot-classification (or sentiment-analysis, ner)",
    )
    p.add_argument("--model", required=True, help="checkpoint directory or hub id")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory or hub id (default: the model's)")
    p.add_argument("--backend", default=None, help="torch, tf or flax (default: the first installed)")
    p.add_argument("--input", default="-", help="JSONL file, or - for stdin (default)")
    p.add_argument("--output", default="-", help="JSONL file (written all or nothing), or - for stdout (default)")
    p.add_argument("--batch-size", type=int, default=8, help="rows per model call (default 8)")
    p.add_argument("--bf16", action="store_true", help="run the model in bfloat16")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, gpu ... (default: the backend's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("task options (each applies to the tasks named)")
    g.add_argument("--top-k", type=_top_k, default=argparse.SUPPRESS, help="fill-mask, text-classification ('all'), QA")
    g.add_argument("--targets", type=_split, default=argparse.SUPPRESS, help="fill-mask: candidate words, a,b,c")
    g.add_argument("--function-to-apply", default=argparse.SUPPRESS, help="text-classification: softmax/sigmoid/none")
    g.add_argument(
        "--truncation",
        action="store_true",
        default=argparse.SUPPRESS,
        help="text-classification, feature-extraction: cut texts to the model's maximum length",
    )
    g.add_argument(
        "--aggregation-strategy", default=argparse.SUPPRESS, help="token-classification: none/simple/first/average/max"
    )
    g.add_argument(
        "--ignore-labels",
        type=_split,
        default=argparse.SUPPRESS,
        help="token-classification: labels left out, a,b ('' keeps all; default O)",
    )
    g.add_argument("--stride", type=int, default=argparse.SUPPRESS, help="token-classification: window overlap")
    g.add_argument("--doc-stride", type=int, default=argparse.SUPPRESS, help="QA: window overlap in tokens")
    g.add_argument("--max-answer-len", type=int, default=argparse.SUPPRESS, help="QA: longest answer in tokens")
    g.add_argument("--max-seq-len", type=int, default=argparse.SUPPRESS, help="QA: tokens per window")
    g.add_argument("--max-question-len", type=int, default=argparse.SUPPRESS, help="QA: accepted, unused (as HF)")
    g.add_argument(
        "--handle-impossible-answer",
        action="store_true",
        default=argparse.SUPPRESS,
        help="QA: the empty answer competes",
    )
    g.add_argument(
        "--no-align-to-words",
        dest="align_to_words",
        action="store_false",
        default=argparse.SUPPRESS,
        help="QA: answers from token offsets, not whole words",
    )
    g.add_argument(
        "--candidate-labels",
        type=_split,
        default=argparse.SUPPRESS,
        help="zero-shot: labels a,b,c (a line's own candidate_labels win)",
    )
    g.add_argument("--hypothesis-template", default=argparse.SUPPRESS, help="zero-shot: e.g. 'This text is about {}.'")
    g.add_argument(
        "--multi-label", action="store_true", default=argparse.SUPPRESS, help="zero-shot: labels independent"
    )
    g.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="sentence-embedding: unit-norm vectors (default: the checkpoint's own)",
    )
    p.set_defaults(func=run)
    return p


def _usage_exit(message: str) -> None:
    print(f"bert predict: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def task_params(task: str, args: argparse.Namespace) -> Dict[str, Any]:
    """The pipeline options given on the command line; UsageError for one ``task`` does not take."""
    params = {}
    for dest, (name, tasks) in TASK_OPTIONS.items():
        if dest not in vars(args):
            continue
        if task not in tasks:
            flag = "--" + ("no-align-to-words" if dest == "align_to_words" else dest.replace("_", "-"))
            own = [d for d, (_, ts) in TASK_OPTIONS.items() if task in ts]
            raise UsageError(
                f"{flag} does not apply to {task} (its options: "
                f"{', '.join('--' + d.replace('_', '-') for d in own) or 'none'})"
            )
        params[name] = getattr(args, dest)
    return params


def _records(stream: TextIO, pipe: Any, meta: "collections.deque") -> Iterator[Any]:
    """Input items (or the exception that stops one) in line order; ``meta`` gets each line's (number, id)."""
    from .base import PipelineError

    for number, line in enumerate(stream, start=1):
        ident = None
        try:
            if not line.strip():
                raise PipelineError("empty line")
            try:
                value = json.loads(line)
            except ValueError as err:
                raise PipelineError(f"invalid JSON: {err}") from None
            if isinstance(value, dict):
                ident = value.get("id")
            item = pipe.item_from_json(value)
        except Exception as err:  # noqa: BLE001 - every unreadable line is reported, the run goes on
            item = err
        meta.append((number, ident))
        yield item


@contextlib.contextmanager
def _open_output(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdout
        return
    from ..io_utils import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        yield handle


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdin
        return
    try:
        handle = open(path, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read --input {path!r}: {err.strerror}") from None
    with handle:
        yield handle


def run(args: argparse.Namespace) -> int:
    """``bert predict``: the exit status (0 ok, 1 some lines failed, 2 usage error)."""
    from ..backends import BackendUnavailable
    from ..checkpoint import CheckpointError
    from . import PipelineError, pipeline, task_class

    try:
        cls = task_class(args.task)
        params = task_params(cls.task, args)
        if args.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
        pipe = pipeline(
            cls.task,
            args.model,
            tokenizer=args.tokenizer,
            backend=args.backend,
            batch_size=args.batch_size,
            bf16=args.bf16,
            device=args.device,
            compile=args.compile,
            progress=False if args.quiet else None,
            **params,
        )
        with _open_input(args.input) as stream, _open_output(args.output) as out:
            failed = _predict(pipe, stream, out)
    except (UsageError, PipelineError, BackendUnavailable, CheckpointError, ImportError, OSError) as err:
        print(f"bert predict: error: {err}", file=sys.stderr)
        return 2
    if failed:
        shown = ", ".join(str(n) for n in failed[:20]) + (" ..." if len(failed) > 20 else "")
        print(f"bert predict: {len(failed)} line(s) failed: {shown}", file=sys.stderr)
        return 1
    return 0


def _predict(pipe: Any, stream: TextIO, out: TextIO) -> List[int]:
    """Write one record per input line; the numbers of the lines that failed."""
    meta: "collections.deque" = collections.deque()
    params = pipe.resolve_options({})
    failed = []
    for result in pipe.run(_records(stream, pipe, meta), params, errors="return"):
        number, ident = meta.popleft()
        record: Dict[str, Any] = {"line": number}
        if ident is not None:
            record["id"] = ident
        if isinstance(result, BaseException):
            record["error"] = str(result) or type(result).__name__
            failed.append(number)
        else:
            record["output"] = pipe.to_json(result)
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return failed


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``bert predict ...`` on its own (``argv`` with or without the leading ``predict``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "predict":
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="bert")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    args = parser.parse_args(["predict"] + argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
