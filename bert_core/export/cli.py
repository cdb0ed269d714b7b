"""``bert export MODEL_DIR OUT --backend B --to FORMAT [--head H] [--opset N] [--quantize int8] [--optimize]
[--verify]`` (dispatched from bert_core.cli; ``main(argv) -> exit code``).

Exit status: 0 written (and verified, with ``--verify``); 1 ``--verify`` failed (the artifact stays written: it is
what was asked for, and the printed deltas say how far off it is); 2 a usage error (bad argument, a format the
backend does not write, a head the format cannot carry, a missing runtime), one line on stderr; 3 an internal error.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from . import FORMATS, QUANTIZE_CHOICES, ExportError

FORMAT_CHOICES = sorted({f for fmts in FORMATS.values() for f in fmts})


def _opset(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer opset like 17, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bert export",
        description="Export a checkpoint to a deployment format, all or nothing, with export.json and the tokenizer.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="local checkpoint directory (config.json + weights)")
    p.add_argument("out", metavar="OUT", help="output directory (new, empty, or a previous export to replace)")
    p.add_argument("--backend", required=True, help="torch, tf or flax: the framework that traces the model")
    p.add_argument(
        "--to",
        required=True,
        choices=FORMAT_CHOICES,
        help="; ".join(f"{b}: {', '.join(f)}" for b, f in FORMATS.items()),
    )
    p.add_argument("--head", help="head class or alias (default: config.json's architecture, else BertModel)")
    p.add_argument("--opset", type=_opset, help="ONNX opset (default: the exporter's)")
    p.add_argument("--quantize", choices=QUANTIZE_CHOICES, help="dynamic int8 weights (accuracy checked by --verify)")
    p.add_argument("--optimize", action="store_true", help="ONNX: onnxruntime's BERT fusions (attention, LN, GELU)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="run the artifact in its own runtime against the framework model and print max|Δ| per output",
    )
    p.add_argument("--tolerance", help="rtol for --verify (default 1e-5)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    from . import export

    start = time.perf_counter()

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    tolerance = None
    if args.tolerance is not None:
        if not args.verify:
            raise ExportError("--tolerance applies with --verify only")
        from conformance.tolerance import parse_tolerance

        tolerance = parse_tolerance(args.tolerance)
    result = export(
        args.model_dir,
        args.out,
        backend=args.backend,
        to=args.to,
        head=args.head,
        opset=args.opset,
        quantize=args.quantize,
        optimize=args.optimize,
        progress=say,
    )
    print(f"exported {result.head} ({result.backend}) -> {result.format} in {result.out} ({result.seconds:.1f} s)")
    for name in result.files:
        print(f"  {name}")
    if result.fusions is not None:
        fused = ", ".join(f"{op} x{n}" for op, n in result.fusions.items()) or "none"
        print(f"  onnxruntime fusions: {fused}")
    if not args.verify:
        return 0
    from conformance.export import format_verify, verify_export

    report = verify_export(args.model_dir, args.out, tolerance=tolerance, progress=say)
    print(format_verify(report))
    return 0 if report.passed else 1


def main(argv: Optional[List[str]] = None) -> int:
    from ..cli import subcommand_argv

    argv = subcommand_argv("export", argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: --help is 0, a usage error 2
        return int(exit_.code or 0)
    from ..backends import BackendUnavailable
    from ..checkpoint import CheckpointError

    try:
        return run(args)
    except KeyboardInterrupt:
        print("bert export: interrupted", file=sys.stderr)
        return 130
    except (ExportError, BackendUnavailable, CheckpointError, OSError, ValueError, ImportError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        print(f"bert export: error: {' '.join(lines) or type(err).__name__}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - anything else is a bug: traceback and exit 3
        import traceback

        traceback.print_exc()
        print(f"bert export: internal error ({type(err).__name__}); please report it", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
