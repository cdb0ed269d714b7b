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
from typing import Any, Mapping, Optional, Tuple

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


# ------------------------------------------------------------------------------------------------ training parity

#: training parity's margin over the gradient bound (see :class:`TrainTolerance`)
TRAIN_SAFETY = 10.0
#: elementwise bound on the difference of two updates, in units of ``Σ lr`` (the noise ceiling of single elements)
TRAIN_ELEMENT = 0.1
#: a tensor none of whose elements moved this fraction of ``Σ lr`` in either backend is "still" (noise only)
STILL_REACH = 0.1
#: logged learning rates must equal the recipe's to this fraction of the peak (float32 tables: ~6e-8)
LR_RTOL = 1e-6


@dataclass(frozen=True)
class TrainTolerance:
    """The bounds of training parity (:mod:`conformance.training`): N steps of AdamW in two backends.

    Where the differences come from: each backend's forward and backward pass differ from the others' by fp32
    round-off, which the output and gradient checks above bound by ``rtol`` and ``rtol * grad_factor`` (1e-4).
    Adam divides each gradient element by its own running scale, ``m_hat / (sqrt(v_hat) + eps)``, so for an element
    whose gradient is well above ``eps`` the *relative* disagreement of an update is that of the gradient that made
    it, and a sum of N updates that each agree to a relative ``e`` agrees to ``e`` too. Nothing compounds unless the
    dynamics amplify weight differences (large ``lr x curvature``): measured on the embedded default
    (text-classification and MLM heads, every pair of torch/tf/flax) the relative disagreement of the total updates
    stays at 1e-5..4e-5 from 2 to 80 steps, and at <= 6e-5 on the real MiniLM (6 layers, 384 wide). Hence one bound
    for everything that has been through optimizer steps, ten times the gradient bound:

        ``rtol_train = rtol * grad_factor * TRAIN_SAFETY`` = 1e-3 by default,

    applied as follows (``a`` the reference backend of the pair):

    * step losses: ``|L_a - L_b| <= rtol_train * (1 + |L_a|)`` at every step (measured <= 1.2e-5);
    * gradient norms (logged, pre-clip): ``|n_a - n_b| <= rtol_train * n_a`` (measured <= 2.2e-5 on the default,
      1.7e-4 on MiniLM's classifier, whose small gradients have the largest relative round-off);
    * each tensor's total update ``Δ = w_final - w_init``: ``||Δa - Δb|| <= rtol_train * ||Δa||`` (measured
      <= 4.2e-5, MiniLM 6e-5), except for *still* tensors (below);
    * every element of every tensor: ``max|Δa - Δb| <= TRAIN_ELEMENT * Σ lr`` (0.1 of the distance an element
      moving at Adam's full speed, ``lr`` per step, covers). This is a noise ceiling, not a precision claim: a
      single element is not averaged like a tensor's norm, and an element whose gradient is near ``eps`` turns an
      fp32 difference ``δg`` of its gradient into a step difference up to ``δg / (4 eps)`` while Adam's steps are
      still sign-like (``m_hat / sqrt(v_hat) ~ ±1``: the first steps, or steps that repeat one batch). Measured:
      <= 3.4e-4 over 20 steps, 1e-3 over 2, 1.1e-2 over 2 steps whose batches are the whole (8-example) dataset,
      2.7e-2 for the noise-driven key biases. A localized bug (an element, a row not updated or updated twice)
      moves elements by a full-speed step or more; a bug spread over a tensor is the relative check's;
    * *still* tensors, none of whose elements moved ``STILL_REACH`` (0.1) of a full-speed move in either
      backend, ``max|Δ| < 0.1 * Σlr``, get the elementwise check only. Adam moves every element whose gradient is
      well above ``eps`` at about full speed whatever the gradient's scale, so a tensor with no such element is one
      whose gradient is at the fp32 noise floor: the attention key biases, whose exact gradient is 0 (softmax is
      invariant to adding ``q . b`` to every score of a query). Their updates are noise divided by ``eps`` (1e-6 in
      the parity recipe: elements reach <= 3e-2, measured), different in every framework and irrelevant to the
      model's outputs: a relative comparison of them would be ~1 and meaningless. A sparsely used tensor (the word
      embeddings, a few rows of which see gradients) is not still: its used rows move at full speed;
    * logged learning rates: ``|lr - lr_recipe| <= LR_RTOL * lr_peak``.

    What the margins still catch, measured by injecting the bug into one backend and comparing it with the clean
    others (20 steps, both heads): eps added to ``sqrt(v)`` instead of ``sqrt(v_hat)`` (Keras' own AdamW) moves
    the updates by 1.8e-2 relative; a schedule one step ahead 0.29; decaying biases and LayerNorm weights 0.36, no
    decay at all 0.14; a short last step averaged over K instead of its own micro-batch count 0.12 (and its loss by
    0.24); clipping skipped 0.17; no bias correction 6. Every one is at least 18x the bound; the clean pairs are
    at least 17x under it (gradient norms on MiniLM 6x).
    """

    rtol: float = DEFAULT_RTOL * DEFAULT_GRAD_FACTOR * TRAIN_SAFETY
    element: float = TRAIN_ELEMENT
    still_reach: float = STILL_REACH
    lr_rtol: float = LR_RTOL

    def __post_init__(self) -> None:
        for name in ("rtol", "element", "still_reach", "lr_rtol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"training tolerance {name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def from_tolerance(cls, tol: Tolerance) -> "TrainTolerance":
        """The training bounds that go with the output policy ``tol`` (``--tolerance`` scales the relative ones)."""
        return cls(rtol=tol.rtol * tol.grad_factor * TRAIN_SAFETY)

    def as_dict(self) -> dict:
        return {
            "rtol": self.rtol,
            "element": self.element,
            "still_reach": self.still_reach,
            "lr_rtol": self.lr_rtol,
            "rule": "loss |ΔL|<=rtol*(1+|L|); grad norm, update ||Δa-Δb||/||Δa|| <= rtol (not for still tensors: "
            "max|Δ| < still_reach*Σlr in both); every element max|Δa-Δb| <= element*Σlr",
        }


def compare_steps(a: Any, b: Any, rtol: float, floor: float = 0.0) -> Tuple[Comparison, int]:
    """Per-step series (losses, gradient norms): the worst ``|a - b| / (floor + |a|)`` against ``rtol``.

    Returns:
        ``(comparison, worst step)`` with the step 1-based (0 when the series are empty); a length mismatch or a
        NaN on one side fails.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return Comparison(math.inf, rtol, False, f"{a.size} vs {b.size} steps"), 0
    if not a.size:
        return Comparison(0.0, rtol, True), 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(a - b) / (floor + np.abs(a))
    rel = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, rel)
    rel = np.where(np.isnan(rel), math.inf, rel)
    worst = int(np.argmax(rel))
    value = float(rel[worst])
    return Comparison(value, rtol, value <= rtol, f"worst at step {worst + 1}"), worst + 1


@dataclass(frozen=True)
class UpdateStats:
    """One tensor's total update in two backends, ``Δ = w_final - w_init``.

    ``rel = ||Δa - Δb|| / ||Δa||``; ``max_elem = max|Δa - Δb| / Σlr``; ``speed_a``, ``speed_b`` =
    ``||Δ|| / (Σlr * sqrt(n))``: 1 when every element moved ``lr`` per step (Adam's full speed), 0 when none moved;
    ``reach_a``, ``reach_b`` = ``max|Δ| / Σlr``, the farthest any element moved.
    """

    rel: float
    max_elem: float
    speed_a: float
    speed_b: float
    reach_a: float
    reach_b: float


def update_stats(w0: Any, wa: Any, wb: Any, lr_sum: float) -> Optional[UpdateStats]:
    """:class:`UpdateStats` of one tensor (None when the shapes differ). ``lr_sum`` must be > 0."""
    w0, wa, wb = (np.asarray(x, np.float64) for x in (w0, wa, wb))
    if not w0.shape == wa.shape == wb.shape:
        return None
    if not w0.size:
        return UpdateStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    da, db = wa - w0, wb - w0
    norm_a, diff = float(np.linalg.norm(da)), float(np.linalg.norm(da - db))
    rel = diff / norm_a if norm_a > 0 else (0.0 if diff == 0 else math.inf)
    scale = lr_sum * math.sqrt(da.size)
    return UpdateStats(
        rel=rel,
        max_elem=float(np.max(np.abs(da - db))) / lr_sum,
        speed_a=norm_a / scale,
        speed_b=float(np.linalg.norm(db)) / scale,
        reach_a=float(np.max(np.abs(da))) / lr_sum,
        reach_b=float(np.max(np.abs(db))) / lr_sum,
    )


def compare_update(
    w0: Any, wa: Any, wb: Any, lr_sum: float, tol: TrainTolerance
) -> Tuple[Optional[Comparison], Comparison]:
    """One tensor's updates under ``tol``: ``(relative-norm comparison, or None for a still tensor; elementwise
    comparison)``. Different shapes or non-finite weights fail both."""
    stats = update_stats(w0, wa, wb, lr_sum)
    if stats is None:
        bad = Comparison(math.inf, 0.0, False, "shapes differ")
        return bad, bad
    if not all(math.isfinite(x) for x in (stats.max_elem, stats.reach_a, stats.reach_b)):
        bad = Comparison(math.inf, 0.0, False, "weights not finite")
        return bad, bad
    still = max(stats.reach_a, stats.reach_b) < tol.still_reach
    if still:
        note = f"still tensor (elements reach {stats.reach_a:.1e}/{stats.reach_b:.1e} of Σlr): elementwise only"
    else:
        note = f"speed {stats.speed_a:.2f}"
    elementwise = Comparison(stats.max_elem, tol.element, stats.max_elem <= tol.element, note)
    return (None if still else Comparison(stats.rel, tol.rtol, stats.rel <= tol.rtol, note)), elementwise
