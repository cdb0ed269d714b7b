"""``bert parity`` and ``bert convert`` (dispatched from bert_core.cli). ``main(argv) -> exit code``.

Exit codes: 0 all checks pass; 1 a comparison failed; 2 a usage error (missing source, unknown / not installed
backend, config and weights that disagree, a bad inputs file, a golden file for another model, ...), with the
reason on stderr in one line.

``bert parity`` runs the built-in battery, or with ``--inputs`` / ``--golden`` / ``--save-golden`` the user's inputs
(:mod:`conformance.input_runner`); ``--train-steps N`` adds training parity (:mod:`conformance.training`);
``--json``, ``--junit`` and ``--markdown`` write the report for CI systems.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from bert_core.io_utils import atomic_write_text
from bert_core.weights import HEADS

from .tolerance import DEFAULT_TOLERANCE, parse_tolerance

HEAD_ALIASES = {h.lower(): h for h in HEADS}
HEAD_ALIASES.update({h[len("BertFor") :].lower(): h for h in HEADS if h.startswith("BertFor")})
HEAD_ALIASES.update(
    {
        "model": "BertModel",
        "lmhead": "BertLMHeadModel",
        "lmheadmodel": "BertLMHeadModel",
        "mlm": "BertForMaskedLM",
        "nsp": "BertForNextSentencePrediction",
        "qa": "BertForQuestionAnswering",
    }
)


def _split(text: Optional[str]) -> Optional[List[str]]:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def parse_heads(text: Optional[str]) -> Optional[List[str]]:
    names = _split(text)
    if names is None:
        return None
    out = []
    for n in names:
        head = HEAD_ALIASES.get(n.lower())
        if head is None:
            raise ValueError(f"unknown head {n!r}; expected some of {', '.join(HEADS)}")
        out.append(head)
    return out


def _progress(quiet: bool):
    start = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def _write_json(path: str, data: dict) -> None:
    atomic_write_text(Path(path), json.dumps(data, indent=2) + "\n")


def _write_reports(args: argparse.Namespace, report) -> None:
    from .reports import write_junit, write_markdown

    if args.json:
        _write_json(args.json, report.as_dict())
    if getattr(args, "junit", None):
        write_junit(report, args.junit)
    if getattr(args, "markdown", None):
        write_markdown(report, args.markdown)


def _check_parity_flags(args: argparse.Namespace) -> bool:
    """True for a run on user inputs; refuses flags that do not apply to the chosen mode (instead of ignoring them)."""
    user = any(v is not None for v in (args.inputs, args.golden, args.save_golden))
    if args.golden is not None and args.save_golden is not None:
        raise ValueError("--golden compares with a golden file and --save-golden writes one: use one at a time")
    if args.save_golden is not None and args.inputs is None:
        raise ValueError("--save-golden needs --inputs FILE (the inputs whose outputs it records)")
    pairs = (
        ("--no-grads", args.no_grads, user),
        ("--no-chain", args.no_chain, user),
        ("--train-steps", args.train_steps is not None, user),
        ("--golden-backend", args.golden_backend is not None, args.save_golden is None),
        ("--max-length", args.max_length is not None, args.inputs is None),
        ("--runtimes", args.runtimes is not None, user),
    )
    wrong = [flag for flag, given, misplaced in pairs if given and misplaced]
    if wrong:
        raise ValueError(
            f"{', '.join(wrong)} do(es) not apply here: --no-grads/--no-chain/--train-steps/--runtimes are for the built-in "
            "battery, --golden-backend goes with --save-golden, --max-length with --inputs"
        )
    return user


def cmd_parity(args: argparse.Namespace) -> int:
    from .runner import run_parity

    user = _check_parity_flags(args)
    tolerance = parse_tolerance(args.tolerance) if args.tolerance is not None else None
    runtimes = None
    if args.runtimes is not None:
        from .export import parse_runtimes

        runtimes = parse_runtimes(args.runtimes)
    extra = {}
    if user:
        extra = dict(
            inputs=args.inputs,
            golden=args.golden,
            save_golden=args.save_golden,
            golden_backend=args.golden_backend,
            max_length=args.max_length,
        )
    report = run_parity(
        args.checkpoint,
        backends=_split(args.backends),
        heads=parse_heads(args.heads),
        tolerance=tolerance,
        grads=not args.no_grads,
        chain=not args.no_chain,
        progress=_progress(args.quiet),
        train_steps=args.train_steps or 0,
        **extra,
    )
    if runtimes:
        from .export import add_runtime_columns

        add_runtime_columns(report, args.checkpoint, runtimes, tolerance=tolerance, progress=_progress(args.quiet))
    print(report.format_table())
    _write_reports(args, report)
    return 0 if report.passed else 1


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert

    if not args.verify:
        unused = [
            flag
            for flag, value in (("--backends", args.backends), ("--tolerance", args.tolerance), ("--json", args.json))
            if value is not None
        ]
        if unused:
            raise ValueError(f"{', '.join(unused)} only apply with --verify")
    tolerance = parse_tolerance(args.tolerance) if args.tolerance is not None else DEFAULT_TOLERANCE
    say = _progress(args.quiet)
    result = convert(
        args.src,
        args.dst,
        verify_result=args.verify,
        to=args.to,
        backends=_split(args.backends),
        tolerance=tolerance,
        progress=say,
        overwrite=args.overwrite,
        tokenizer=args.tokenizer,
    )
    src = result.source
    print(f"converted {src.kind} source {src.path} ({src.head}, {len(src.weights)} tensors) -> {result.destination}")
    for f in result.files:
        print(f"  {f}")
    if src.dropped:
        print(f"  dropped tensors not used by {src.head}: {src.dropped[:8]}")
    if result.report is not None:
        print(result.report.format_table())
        if args.json:
            _write_json(args.json, result.report.as_dict())
        return 0 if result.report.passed else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bert")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parity", help="run every head on every backend from one checkpoint and compare")
    p.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="HF directory or hub id (default: an embedded small deterministic checkpoint)",
    )
    p.add_argument("--backends", help="comma-separated: torch,tf,flax (default: every installed backend)")
    p.add_argument(
        "--heads",
        help=f"comma-separated subset of {', '.join(HEADS)} (default: all; with --inputs the config's architectures, "
        "with --golden the golden file's)",
    )
    p.add_argument("--json", help="write the full report (every field) to this file")
    p.add_argument(
        "--junit", metavar="FILE", help="write a JUnit XML report (one testcase per head x check x backend pair)"
    )
    p.add_argument("--markdown", metavar="FILE", help="write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument(
        "--inputs",
        metavar="FILE",
        help='your inputs instead of the built-in battery: JSONL, one {"text": ...}, {"text": ..., "text_pair": ...} '
        'or {"input_ids": [...]} per line (optional "id"), run through the heads of config.json\'s architectures',
    )
    p.add_argument(
        "--golden", metavar="FILE", help="compare every backend with this golden file (its inputs unless --inputs)"
    )
    p.add_argument(
        "--save-golden", metavar="FILE", help="write the outputs of one backend on --inputs to this golden file"
    )
    p.add_argument(
        "--golden-backend", metavar="NAME", help="backend whose outputs --save-golden records (default: the first)"
    )
    p.add_argument(
        "--max-length",
        metavar="N",
        type=int,
        help="cut texts of --inputs to this many tokens (default: the model's limit)",
    )
    p.add_argument(
        "--tolerance",
        help=f"rtol of max|Δ| <= rtol*(1+max|ref|) (default {DEFAULT_TOLERANCE.rtol:g}, or the golden file's)",
    )
    p.add_argument("--no-grads", action="store_true", help="skip gradient parity and the SGD step")
    p.add_argument("--no-chain", action="store_true", help="skip the save/load chain through every backend")
    p.add_argument(
        "--train-steps",
        metavar="N",
        type=_positive_int,
        help="also training parity: N steps of AdamW (warmup, decay, clipping, accumulation; dropout off) in every "
        "backend from the checkpoint, on synthetic data through the tasks of the selected heads (default: "
        "sequence classification and MLM); compares step losses, gradient norms and weight updates",
    )
    p.add_argument(
        "--runtimes",
        metavar="LIST",
        help="also export every head to these runtimes (onnx, torch-export: torch; savedmodel, tflite: tf; stablehlo: "
        "flax) and verify each against its backend: one more column per runtime",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_parity)

    c = sub.add_parser("convert", help="convert a checkpoint to a canonical HF directory")
    c.add_argument("src", help="HF dir / hub id (any weight format), a .keras file, or a TF1 BERT checkpoint")
    c.add_argument("dst", help="output directory")
    c.add_argument(
        "--verify",
        action="store_true",
        help="check the result against the source: weights and outputs on every backend (hf), or the reloaded "
        "SavedModel's outputs (savedmodel); prints max|Δ| per check",
    )
    c.add_argument("--overwrite", action="store_true", help="replace a non-empty destination directory as a whole")
    c.add_argument("--to", default="hf", choices=["hf", "savedmodel"], help="output format (default hf)")
    c.add_argument("--tokenizer", help="take the tokenizer files from this directory (default: next to SRC)")
    c.add_argument("--backends", help="backends used by --verify (default: installed)")
    c.add_argument("--tolerance", help="rtol for --verify")
    c.add_argument("--json", help="write the --verify report here")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=cmd_convert)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help is 0, a usage error 2
        return int(exit_.code or 0)
    from bert_core.checkpoint import CheckpointError

    from .adapters import BackendUnavailable
    from .convert import ConversionError

    user_errors = (BackendUnavailable, CheckpointError, ConversionError, OSError, ValueError, KeyError, ImportError)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"bert {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - user errors get one line and exit 2; anything else is a bug: exit 3
        if isinstance(err, user_errors) or _is_tensorflow_op_error(err):
            print(f"bert {args.command}: error: {_one_line(err)}", file=sys.stderr)
            return 2
        import traceback

        traceback.print_exc()
        print(f"bert {args.command}: internal error ({type(err).__name__}); please report it", file=sys.stderr)
        return 3


def _is_tensorflow_op_error(err: BaseException) -> bool:
    """TensorFlow's OpError (a garbage TF1 checkpoint, a bad SavedModel) without importing tensorflow."""
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    return errors is not None and isinstance(err, errors.OpError)


def _one_line(err: BaseException) -> str:
    text = str(err) if not isinstance(err, KeyError) else str(err.args[0] if err.args else err)
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
