"""The one tolerance policy and the one comparison function, used by the tests and the CLI alike.

Policy (fp32): two arrays agree when ``max|a - b| <= rtol * (1 + max|ref|)``, ``ref`` being the first array of the
pair. The bound scales with the magnitude of the reference so that large logits and small hidden states are held to
the same relative precision, and the ``1 +`` keeps it meaningful near zero. Integer arrays must be equal. Gradients
accumulate over many more float operations than a forward pass, so they get ``grad_factor`` times the bound.

After one SGD step the weights of two backends differ by ``lr * (g_a - g_b)``: each backend steps from its own
gradients, which agree only to fp32 round-off. That difference moves the outputs in proportion to how far the step
itself moved them, so the post-step bound adds ``STEP_SAFETY * e * max|out_after - out_before|`` to the forward
bound, ``e = ||g_a - g_b|| / ||g_a||`` being the measured relative gradient disagreement (global norms): a valid
model passes whatever its gradients' scale (a fine-tuned checkpoint's small gradients make ``e`` large and the check
correspondingly looser), while a backend whose forward pass or gradients are wrong still fails. The step size is
bounded relative to the weights (:func:`sgd_learning_rate`) so the step moves every model by the same small
fraction, instead of a fixed learning rate that is negligible for one checkpoint and explosive for another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Tuple

import numpy as np

#: fp32 default for forward outputs.
DEFAULT_RTOL = 1e-5
#: gradients are allowed this many times the forward bound.
DEFAULT_GRAD_FACTOR = 10.0
#: the SGD step moves the weights by this fraction of their global norm.
STEP_FRACTION = 1e-3
#: margin on the first-order propagation of the gradient disagreement through one step (nonlinearity, round-off).
STEP_SAFETY = 4.0


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


def _global_norm(arrays) -> float:
    return math.sqrt(sum(float(np.sum(np.square(np.asarray(x, np.float64)))) for x in arrays))


def sgd_learning_rate(weights: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> float:
    """The learning rate whose step ``lr * g`` has norm ``STEP_FRACTION * ||w||`` (0 for a zero gradient)."""
    g = _global_norm(grads[n] for n in weights if n in grads)
    return 0.0 if g == 0.0 else STEP_FRACTION * _global_norm(weights.values()) / g


def relative_gradient_error(grads_a: Mapping[str, np.ndarray], grads_b: Mapping[str, np.ndarray]) -> float:
    """``||g_a - g_b|| / ||g_a||`` over the tensors both have (global norms); 0 when both are zero."""
    names = [n for n in grads_a if n in grads_b]
    diff = _global_norm(np.asarray(grads_a[n], np.float64) - np.asarray(grads_b[n], np.float64) for n in names)
    ref = _global_norm(grads_a[n] for n in names)
    if ref == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / ref


def step_allowance(before: Any, after: Any, gradient_error: float) -> float:
    """What a step adds to the bound of one output field: ``STEP_SAFETY * e * max|after - before|``."""
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    if before.shape != after.shape or before.size == 0 or before.dtype.kind in "iub":
        return 0.0
    with np.errstate(invalid="ignore"):
        moved = np.nan_to_num(np.abs(after - before), nan=0.0, posinf=0.0)
    return STEP_SAFETY * gradient_error * float(np.max(moved))


def compare(a: Any, b: Any, tol: Tolerance = DEFAULT_TOLERANCE, extra: float = 0.0) -> Comparison:
    """Compare array ``a`` (the reference) with ``b`` under ``tol`` (plus ``extra`` on the bound). Shapes must
    match exactly."""
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
    limit = tol.limit(a64) + extra
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
