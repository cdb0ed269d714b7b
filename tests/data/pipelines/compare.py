"""One comparison for pipeline outputs (ours vs HF, one backend vs another, batch 1 vs batch 8): structure, keys
(in order), labels, spans and strings exact; floats within ``atol`` (the pipelines' scores are probabilities)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

ATOL = 1e-5


def assert_same(ours: Any, ref: Any, atol: float = ATOL, where: str = "output", stats: Optional[Dict] = None) -> float:
    """Assert ``ours`` equals ``ref``; returns the largest float difference seen (added to ``stats["max"]``)."""
    deltas = [0.0]
    _compare(ours, ref, atol, where, deltas)
    if stats is not None:
        stats["max"] = max(stats.get("max", 0.0), max(deltas))
    return max(deltas)


def _compare(ours: Any, ref: Any, atol: float, where: str, deltas: list) -> None:
    if isinstance(ref, dict):
        assert isinstance(ours, dict), f"{where}: {type(ours).__name__} where the reference has a dict"
        assert list(ours) == list(ref), f"{where}: keys {list(ours)} vs {list(ref)}"
        for key in ref:
            _compare(ours[key], ref[key], atol, f"{where}[{key!r}]", deltas)
    elif isinstance(ref, (list, tuple)):
        assert isinstance(ours, (list, tuple)), f"{where}: {type(ours).__name__} where the reference has a list"
        assert len(ours) == len(ref), f"{where}: {len(ours)} items vs {len(ref)}: {ours!r} vs {ref!r}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            _compare(a, b, atol, f"{where}[{i}]", deltas)
    elif isinstance(ref, np.ndarray) or hasattr(ref, "numpy"):
        ref = np.asarray(ref.numpy() if hasattr(ref, "numpy") else ref, np.float64)
        ours = np.asarray(ours, np.float64)
        assert ours.shape == ref.shape, f"{where}: shape {ours.shape} vs {ref.shape}"
        delta = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
        deltas.append(delta)
        assert delta <= atol, f"{where}: max|Δ| = {delta:.3g} > {atol}"
    elif isinstance(ref, (float, np.floating)) and not isinstance(ref, bool):
        assert isinstance(ours, (float, np.floating)), f"{where}: {ours!r} where the reference has a float"
        deltas.append(abs(float(ours) - float(ref)))
        assert deltas[-1] <= atol, f"{where}: {float(ours)!r} vs {float(ref)!r}"
    else:
        assert ours == ref and type(ours) is type(ref) or (ours is None and ref is None), (
            f"{where}: {ours!r} ({type(ours).__name__}) vs {ref!r} ({type(ref).__name__})"
        )
