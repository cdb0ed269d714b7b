"""``bert train TASK ...`` and ``bert evaluate TASK ...``.

Exit codes: 0 done; 2 a user error (bad flag or value, missing file, bad data row, backend not installed, a resume
that does not match its checkpoint), with the reason on stderr in one line; 130 interrupted by Ctrl-C (after the
checkpoint of the last completed step is saved); 3 an internal error (traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, List, Optional

from .args import SCHEDULES, TASK_NAMES, TrainingArguments
from .distributed import ALL_STRATEGIES


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=TASK_NAMES, help="the task (its data format, head and metrics)")
    p.add_argument("--backend", required=True, help="torch, tf or flax")
    p.add_argument("--max-length", type=int, default=128, help="tokens per feature (default 128)")
    p.add_argument("--doc-stride", type=int, default=32, help="question answering: window overlap (default 32)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision")
    p.add_argument("--seed", type=int, default=42, help="data order, masking, dropout and head init (default 42)")
    p.add_argument(
        "--set",
        dest="config_overrides",
        action="append",
        metavar="CONFIG_KEY=VALUE",
        default=[],
        help="override a model config field, e.g. --set hidden_dropout_prob=0 (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_parsers(subparsers: "argparse._SubParsersAction") -> None:
    """Register ``train`` and ``evaluate`` on ``subparsers`` (each sets ``func`` to a handler returning the exit
    code)."""
    t = subparsers.add_parser(
        "train",
        help="fine-tune or pre-train a model (one recipe in torch, tf and flax)",
        description="Fine-tune (or pre-train) a BERT checkpoint on a task; writes the final model, log.jsonl, "
        "metrics.json, args.json, training.png and checkpoints/step-N/ into --output.",
    )
    _add_common(t)
    t.add_argument("--model", required=True, help="starting checkpoint: a directory or a hub repo id")
    t.add_argument("--train", dest="train_file", required=True, help="training data file")
    t.add_argument("--eval", dest="eval_file", help="evaluation data file")
    t.add_argument("--output", dest="output_dir", required=True, help="output directory")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--epochs", dest="num_train_epochs", type=float, default=3.0, help="epochs (default 3)")
    length.add_argument("--max-steps", type=_positive_int, default=-1, help="optimizer steps (overrides --epochs)")
    t.add_argument("--batch-size", dest="per_device_train_batch_size", type=int, default=8, help="default 8")
    t.add_argument("--grad-accum", dest="gradient_accumulation_steps", type=int, default=1, help="default 1")
    t.add_argument("--lr", dest="learning_rate", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    t.add_argument("--schedule", dest="lr_scheduler_type", choices=SCHEDULES, default="linear", help="default linear")
    warmup = t.add_mutually_exclusive_group()
    warmup.add_argument("--warmup-ratio", type=float, default=0.0, help="warmup as a fraction of all steps")
    warmup.add_argument("--warmup-steps", type=int, default=0, help="warmup steps")
    t.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decay (not on biases, LayerNorm)")
    t.add_argument("--max-grad-norm", type=float, default=1.0, help="global-norm clipping; 0 turns it off")
    t.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep the file order")
    t.add_argument("--eval-every", dest="eval_steps", type=int, default=0, help="steps; 0: each epoch (default)")
    t.add_argument("--save-every", dest="save_steps", type=int, default=0, help="steps; 0: each epoch (default)")
    t.add_argument("--resume", dest="resume_from", help="a checkpoints/step-N directory or an output directory")
    scale = t.add_argument_group("scale-out (see README: Scaling out)")
    scale.add_argument(
        "--strategy",
        choices=ALL_STRATEGIES,
        default="none",
        help="torch: ddp|fsdp (under torchrun); tf: mirrored|multi-worker (TF_CONFIG); flax: mesh (default none)",
    )
    scale.add_argument("--mesh", help="flax: data=D[,model=M] over the devices (implies --strategy mesh)")
    scale.add_argument("--devices", type=_positive_int, help="tf mirrored: logical CPU devices; flax: first N devices")
    scale.add_argument("--num-processes", type=_positive_int, default=1, help="flax multi-process: P processes")
    scale.add_argument("--process-id", type=int, default=0, help="flax multi-process: this process's index")
    scale.add_argument("--coordinator", help="flax multi-process: HOST:PORT of process 0")
    t.set_defaults(func=cmd_train)

    e = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained model on a task's eval file",
        description="Evaluate a trained checkpoint; prints the metrics as JSON (or writes them to --output).",
    )
    _add_common(e)
    e.add_argument("--model", required=True, help="the trained checkpoint: a directory or a hub repo id")
    e.add_argument("--eval", dest="eval_file", required=True, help="evaluation data file")
    e.add_argument("--output", dest="metrics_file", help="write the metrics JSON here (default: stdout)")
    e.add_argument("--batch-size", dest="per_device_eval_batch_size", type=int, default=32, help="default 32")
    e.set_defaults(func=cmd_evaluate)


_NOT_ARGS = ("command", "func", "metrics_file")


def training_arguments(ns: argparse.Namespace) -> TrainingArguments:
    """The parsed flags as validated ``TrainingArguments`` (``--set`` values typed by the config fields)."""
    from .run import parse_config_overrides

    values = {k: v for k, v in vars(ns).items() if k not in _NOT_ARGS}
    values["config_overrides"] = parse_config_overrides(values.get("config_overrides"))
    if "output_dir" not in values:  # evaluate writes no output directory; the metrics file's folder stands in
        values["output_dir"] = os.path.dirname(os.path.abspath(ns.metrics_file)) if ns.metrics_file else os.getcwd()
    return TrainingArguments(**values).validate()


def _one_line(err: BaseException) -> str:
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip()) or type(err).__name__


def _guard(command: str, run: Callable[[], Any]) -> int:
    """Run ``run`` with the CLI's exit codes: user errors -> 2 (one line), Ctrl-C -> 130, bugs -> 3."""
    from ..backends import BackendUnavailable

    try:
        run()
        return 0
    except KeyboardInterrupt:
        print(f"bert {command}: interrupted", file=sys.stderr)
        return 130
    except (BackendUnavailable, ValueError, OSError, ImportError, KeyError) as err:
        print(f"bert {command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - anything else is a bug: show it
        import traceback

        traceback.print_exc()
        print(f"bert {command}: internal error ({type(err).__name__}); please report it", file=sys.stderr)
        return 3


def cmd_train(ns: argparse.Namespace) -> int:
    def run() -> None:
        from .run import train

        metrics = train(training_arguments(ns))
        if not ns.quiet:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
            print(f"bert train: done, {shown}; outputs in {ns.output_dir}", file=sys.stderr)

    return _guard("train", run)


def cmd_evaluate(ns: argparse.Namespace) -> int:
    def run() -> None:
        from .run import evaluate

        metrics = evaluate(training_arguments(ns), ns.metrics_file)
        if ns.metrics_file is None:
            print(json.dumps(metrics, indent=2))

    return _guard("evaluate", run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bert", description="Train and evaluate BERT models.")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """``bert train ...`` / ``bert evaluate ...`` (``argv`` starts with the command name)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help is 0, a usage error 2
        return int(exit_.code or 0)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
