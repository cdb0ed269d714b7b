"""The one tolerance policy and the one comparison function, used by the tests and the CLI alike.

Policy (fp32): two arrays agree when ``max|a - b| <= rtol * (1 + max|ref|)``, ``ref`` being the first array of the
pair. The bound scales with the magnitude of the reference so that large logits and small hidden states are held to
the same relative precision, and the ``1 +`` keeps it meaningful near zero. Integer arrays must be equal. Gradients
accumulate over many more float operations than a forward pass, so they get ``grad_factor`` times the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

#: fp32 default for forward outputs.
DEFAULT_RTOL = 1e-5
#: gradients are allowed this many times the forward bound.
DEFAULT_GRAD_FACTOR = 10.0


@dataclass(frozen=True)
class Tolerance:
    """``limit(ref) = rtol * (1 + max|ref|)``; gradients use ``rtol * grad_factor``."""

    rtol: float = DEFAULT_RTOL
    grad_factor: float = DEFAULT_GRAD_FACTOR

    def __post_init__(self) -> None:
        if not (isinstance(self.rtol, (int, float)) and self.rtol >= 0 and math.isfinite(self.rtol)):
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.rtol!r}")

    def for_grads(self) -> "Tolerance":
        return Tolerance(self.rtol * self.grad_factor, 1.0)

    def limit(self, ref: np.ndarray) -> float:
        ref = np.asarray(ref)
        peak = float(np.max(np.abs(ref))) if ref.size else 0.0
        return self.rtol * (1.0 + peak)

    def as_dict(self) -> dict:
        return {"rtol": self.rtol, "grad_factor": self.grad_factor, "rule": "max|a-b| <= rtol*(1+max|a|)"}


DEFAULT_TOLERANCE = Tolerance()


def parse_tolerance(text: Any) -> Tolerance:
    """``--tolerance 1e-4`` -> Tolerance(rtol=1e-4). Raises ValueError with the offending text."""
    if isinstance(text, Tolerance):
        return text
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"--tolerance expects a number like 1e-5, got {text!r}") from None
    return Tolerance(rtol=value)


@dataclass(frozen=True)
class Comparison:
    """Result of comparing one field: ``max_abs`` is ``inf`` for a shape/dtype-kind mismatch or a NaN."""

    max_abs: float
    limit: float
    passed: bool
    note: str = ""


def compare(a: Any, b: Any, tol: Tolerance = DEFAULT_TOLERANCE) -> Comparison:
    """Compare array ``a`` (the reference) with ``b`` under ``tol``. Shapes must match exactly."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        return Comparison(math.inf, 0.0, False, f"shape {a.shape} vs {b.shape}")
    a_int = a.dtype.kind in "iub"
    b_int = b.dtype.kind in "iub"
    if a_int and b_int:
        diff = float(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)))) if a.size else 0.0
        return Comparison(diff, 0.0, diff == 0.0, "" if diff == 0.0 else "integer values differ")
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    if a.size == 0:
        return Comparison(0.0, 0.0, True)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    if nan_a.any() or nan_b.any():
        # NaN in the same places on both sides is agreement only if the reference itself is NaN there
        if not np.array_equal(nan_a, nan_b):
            return Comparison(math.inf, 0.0, False, "NaN in one output only")
        a64, b64 = np.where(nan_a, 0.0, a64), np.where(nan_b, 0.0, b64)
    limit = tol.limit(a64)
    with np.errstate(invalid="ignore"):
        diff = float(np.max(np.abs(a64 - b64)))
    if math.isnan(diff):  # inf - inf
        diff = 0.0 if np.array_equal(a64, b64) else math.inf
    return Comparison(diff, limit, diff <= limit)


def compare_exact(a: Any, b: Any) -> Comparison:
    """Bit equality (save/load chains): same shape, dtype and bytes."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return Comparison(math.inf, 0.0, False, f"{a.dtype}{a.shape} vs {b.dtype}{b.shape}")
    same = a.tobytes() == b.tobytes()
    diff = 0.0 if same else float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return Comparison(diff, 0.0, same, "" if same else "not bit-identical")


def worst(comparisons) -> Tuple[float, bool]:
    """(largest max_abs, all passed) over an iterable of Comparison."""
    items = list(comparisons)
    return (max((c.max_abs for c in items), default=0.0), all(c.passed for c in items))
