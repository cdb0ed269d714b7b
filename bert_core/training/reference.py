"""The recipe's optimizer math in plain numpy: the reference the backends' tests compare against.

``adamw_step`` is ``torch.optim.AdamW`` (single-tensor path) written out: decoupled decay ``p -= lr * wd * p`` first,
then bias-corrected moments with ``eps`` added to ``sqrt(v_hat)``. ``clip_by_global_norm`` is
``torch.nn.utils.clip_grad_norm_`` (scale ``max_norm / (norm + 1e-6)`` when below 1; optax divides by the norm
without the ``1e-6``, a relative difference of ``1e-6 / norm``).
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from .state import MOMENTS, STEP_KEY


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """``sqrt(sum of squares)`` over every gradient, accumulated in float64."""
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))


def clip_by_global_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> Tuple[Dict[str, np.ndarray], float]:
    """Scale ``grads`` so their global norm is at most ``max_norm`` (torch ``clip_grad_norm_``); 0 turns it off.

    Returns:
        ``(clipped grads (same dtypes), norm before clipping)``.
    """
    norm = global_norm(grads)
    if max_norm <= 0:
        return dict(grads), norm
    coef = min(1.0, max_norm / (norm + 1e-6))
    return {k: (g * np.asarray(coef, dtype=g.dtype)).astype(g.dtype) for k, g in grads.items()}, norm


def init_state(params: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Zero moments for ``params`` in the checkpoint layout (``exp_avg/<name>``, ``exp_avg_sq/<name>``, ``step``)."""
    out: Dict[str, np.ndarray] = {}
    for name, p in params.items():
        for moment in MOMENTS:
            out[f"{moment}/{name}"] = np.zeros_like(p)
    out[STEP_KEY] = np.asarray(0, np.int64)
    return out


def adamw_step(
    params: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    state: Mapping[str, np.ndarray],
    lr: float,
    *,
    betas: Tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decay: Optional[Mapping[str, bool]] = None,
) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """One ``torch.optim.AdamW`` update.

    Args:
        params: ``{name: array}``; grads: the same names and shapes.
        state: :func:`init_state`'s layout (``step`` = updates done so far).
        lr: this update's learning rate; betas, eps, weight_decay: as torch's AdamW.
        decay: ``{name: bool}``, which parameters get weight decay (default: all).

    Returns:
        ``(new params, new state)``; inputs are not modified.
    """
    beta1, beta2 = betas
    step = int(np.asarray(state[STEP_KEY])) + 1
    bias1, bias2_sqrt = 1 - beta1**step, math.sqrt(1 - beta2**step)
    new_params, new_state = {}, {STEP_KEY: np.asarray(step, np.int64)}
    for name, p in params.items():
        g = np.asarray(grads[name], dtype=p.dtype)
        dt = p.dtype.type
        if decay is None or decay[name]:
            p = p * dt(1 - lr * weight_decay)
        # the operation order of torch's kernels: exp_avg.lerp_(g, 1 - beta1), exp_avg_sq.mul_(beta2).addcmul_(g, g)
        m = state[f"exp_avg/{name}"]
        m = m + dt(1 - beta1) * (g - m)
        v = state[f"exp_avg_sq/{name}"] * dt(beta2) + dt(1 - beta2) * g * g
        denom = np.sqrt(v) / dt(bias2_sqrt) + dt(eps)
        new_params[name] = (p - dt(lr / bias1) * (m / denom)).astype(p.dtype)
        new_state[f"exp_avg/{name}"], new_state[f"exp_avg_sq/{name}"] = m, v
    return new_params, new_state
