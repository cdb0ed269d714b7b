"""The one table of backends: name -> package, framework distributions and modules, pip extra, aliases.

Everything that needs to know which backends exist (the CLI, ``conformance``, ``benchmarks``, the weight maps, the
backends' own import guards) reads it from here. Nothing here imports a framework: availability is checked with
``importlib.util.find_spec`` / ``importlib.metadata``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Backend:
    """One backend of the library.

    Attributes:
        name: the user-facing name (``--backend`` values, weight-layout key): "torch", "tf", "flax".
        package: the Python package implementing it.
        distributions: framework distributions shown by ``bert env``; the first decides "installed".
        modules: modules the package cannot import without.
        extra: the pip extra that installs them (``pip install 'multi-bert[EXTRA]'``).
        aliases: other spellings accepted for ``name`` (lower case).
    """

    name: str
    package: str
    distributions: Tuple[str, ...]
    modules: Tuple[str, ...]
    extra: str
    aliases: Tuple[str, ...] = ()

    @property
    def install_hint(self) -> str:
        return f"pip install 'multi-bert[{self.extra}]'"


BACKENDS: Dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("torch", "bert_torch", ("torch",), ("torch",), "torch", ("pt", "pytorch")),
        Backend(
            "tf",
            "bert_tf",
            ("tensorflow", "keras", "tensorflow-text"),
            ("tensorflow", "keras"),
            "tf",
            ("tensorflow", "keras"),
        ),
        Backend("flax", "bert_flax", ("jax", "jaxlib", "flax", "optax"), ("jax", "flax"), "flax", ("jax", "nnx")),
    )
}
BACKEND_NAMES: Tuple[str, ...] = tuple(BACKENDS)


class BackendUnavailable(RuntimeError):
    """A backend was asked for that is unknown or not installed; the message says what to install."""


def normalize_backend_name(name: str) -> str:
    """``name`` or one of its aliases -> the canonical backend name; BackendUnavailable if unknown."""
    key = str(name).strip().lower()
    for backend in BACKENDS.values():
        if key == backend.name or key in backend.aliases:
            return backend.name
    raise BackendUnavailable(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")


def distribution_version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_modules(name: str) -> List[str]:
    """The framework modules of backend ``name`` that cannot be found (nothing is imported)."""
    return [m for m in BACKENDS[name].modules if importlib.util.find_spec(m) is None]


def installed_backends() -> List[str]:
    """Backends whose framework modules are all present, in table order."""
    return [name for name in BACKEND_NAMES if not missing_modules(name)]


def require_backend(name: str) -> None:
    """ImportError naming the extra to install when ``name``'s framework is missing (checked without importing)."""
    missing = missing_modules(name)
    if missing:
        backend = BACKENDS[name]
        raise ImportError(
            f"{backend.package} needs {', '.join(missing)}, which is not installed: {backend.install_hint}"
        )


def check_installed(name: str) -> str:
    """Canonical name of an installed backend; BackendUnavailable naming the extra when it is unknown or missing."""
    key = normalize_backend_name(name)
    missing = missing_modules(key)
    if missing:
        raise BackendUnavailable(
            f"backend {key!r} is not installed ({', '.join(missing)} missing): {BACKENDS[key].install_hint}"
        )
    return key
