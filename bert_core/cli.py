"""The ``bert`` command line: ``bert env``, ``bert parity``, ``bert convert``, ``bert bench``.

Only ``env`` lives here; the other commands are implemented in the ``conformance`` and ``benchmarks`` packages and
imported when run, so ``bert --help`` loads no framework.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from typing import List, Optional

BACKEND_PACKAGES = {
    "torch": ("bert_torch", ["torch"], "torch"),
    "tf": ("bert_tf", ["tensorflow", "keras", "tensorflow-text"], "tf"),
    "flax": ("bert_flax", ["jax", "jaxlib", "flax", "optax"], "flax"),
}


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_backends() -> List[str]:
    """Backends whose framework distributions are installed (checked without importing them)."""
    return [name for name, (_, dists, _) in BACKEND_PACKAGES.items() if _version(dists[0]) is not None]


# modules each backend package cannot import without
_REQUIRED_MODULES = {"torch": ("torch",), "tf": ("tensorflow", "keras"), "flax": ("jax", "flax")}


def require_backend(name: str) -> None:
    """Raise ImportError naming the extra to install when ``name``'s framework is missing (checked without importing)."""
    import importlib.util

    missing = [m for m in _REQUIRED_MODULES[name] if importlib.util.find_spec(m) is None]
    if missing:
        package, _, extra = BACKEND_PACKAGES[name]
        raise ImportError(
            f"{package} needs {', '.join(missing)}, which is not installed: pip install 'multi-bert[{extra}]'"
        )


def cmd_env(args: argparse.Namespace) -> int:
    print(f"multi-bert {_version('multi-bert') or 'source tree'} on Python {sys.version.split()[0]}")
    for dist in ("numpy", "safetensors", "huggingface_hub", "tokenizers"):
        print(f"  {dist:<18} {_version(dist) or 'missing'}")
    for name, (package, dists, extra) in BACKEND_PACKAGES.items():
        versions = ", ".join(f"{d} {_version(d)}" for d in dists if _version(d))
        state = versions if _version(dists[0]) else f"not installed (pip install 'multi-bert[{extra}]')"
        print(f"  backend {name:<6} {package:<10} {state}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="bert", description="Multi-framework BERT: parity checks, conversion, benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_env = sub.add_parser("env", help="show installed backends and versions")
    p_env.set_defaults(func=cmd_env)

    for name, module, help_text in (
        ("parity", "conformance.cli", "run every head on every installed backend from one checkpoint and compare"),
        ("convert", "conformance.cli", "convert a checkpoint (HF dir/hub id, .bin, .h5, .msgpack, .keras, TF1) to a canonical HF dir"),
        ("bench", "benchmarks.cli", "speed and memory against the reference"),
    ):
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=None, module=module)

    argv = list(sys.argv[1:] if argv is None else argv)
    # Delegated commands get their arguments verbatim: argparse's REMAINDER drops the order of options that come
    # before the first positional (``bert parity --backends torch,tf`` would reach the command scrambled).
    delegated = {"parity": "conformance.cli", "convert": "conformance.cli", "bench": "benchmarks.cli"}
    if argv and argv[0] in delegated:
        command, module = argv[0], delegated[argv[0]]
        try:
            impl = importlib.import_module(module)
        except ImportError as err:
            print(f"bert {command}: cannot load {module}: {err}", file=sys.stderr)
            return 2
        return int(impl.main(argv) or 0)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
