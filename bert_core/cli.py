"""The ``bert`` command line: ``bert env``, ``bert parity``, ``bert convert``, ``bert bench``.

Only ``env`` lives here; the other commands are implemented in the ``conformance`` and ``benchmarks`` packages and
imported when run, so ``bert --help`` loads no framework.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

from .backends import BACKENDS, installed_backends
from .backends import distribution_version as _version


def cmd_env(args: argparse.Namespace) -> int:
    print(f"multi-bert {_version('multi-bert') or 'source tree'} on Python {sys.version.split()[0]}")
    for dist in ("numpy", "safetensors", "huggingface_hub", "tokenizers"):
        print(f"  {dist:<18} {_version(dist) or 'missing'}")
    installed = installed_backends()
    for name, backend in BACKENDS.items():
        versions = ", ".join(f"{d} {_version(d)}" for d in backend.distributions if _version(d))
        state = versions if name in installed else f"not installed ({backend.install_hint})"
        print(f"  backend {name:<6} {backend.package:<10} {state}")
    return 0


#: commands implemented elsewhere: name -> (module with ``main(argv)``, help)
DELEGATED = {
    "parity": ("conformance.cli", "run every head on every installed backend from one checkpoint and compare"),
    "convert": (
        "conformance.cli",
        "convert a checkpoint (HF dir/hub id, .bin, .h5, .msgpack, .keras, TF1) to a canonical HF dir",
    ),
    "bench": ("benchmarks.cli", "speed and memory against the reference"),
    "train": ("bert_core.training.cli", "fine-tune or pre-train a model (one recipe in torch, tf and flax)"),
    "evaluate": ("bert_core.training.cli", "evaluate a trained model on a task's eval file"),
    "serve": ("bert_core.serve.cli", "serve a task pipeline over HTTP (TEI-style /embed /predict /rerank, batching)"),
    "export": ("bert_core.export.cli", "export to ONNX / torch.export / SavedModel / TFLite / StableHLO, verified"),
}


def subcommand_argv(name: str, argv: Optional[List[str]]) -> List[str]:
    """What a delegated command's ``main`` starts with: the environment defaults set before any backend loads
    (quiet TF logs, Keras on TensorFlow), and ``argv`` (default ``sys.argv[1:]``) without a leading ``name``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    argv = list(sys.argv[1:] if argv is None else argv)
    return argv[1:] if argv and argv[0] == name else argv


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Delegated commands get their arguments verbatim: argparse's REMAINDER drops the order of options that come
    # before the first positional (``bert parity --backends torch,tf`` would reach the command scrambled).
    if argv and argv[0] in DELEGATED:
        command, module = argv[0], DELEGATED[argv[0]][0]
        try:
            impl = importlib.import_module(module)
        except ImportError as err:
            print(f"bert {command}: cannot load {module}: {err}", file=sys.stderr)
            return 2
        return int(impl.main(argv) or 0)
    parser = argparse.ArgumentParser(
        prog="bert", description="Multi-framework BERT: training, prediction, parity checks, conversion, benchmarks."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="show installed backends and versions").set_defaults(func=cmd_env)
    from .pipelines.cli import add_parsers as add_predict_parser

    add_predict_parser(sub)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
