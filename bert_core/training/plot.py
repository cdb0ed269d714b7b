"""``training.png``: the training loss and the eval metric over optimizer steps (matplotlib, Agg, no display)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..io_utils import atomic_path


def plot_training(
    records: Sequence[Mapping[str, Any]], path: os.PathLike, metric: Optional[str] = None
) -> Optional[Path]:
    """Draw ``log.jsonl`` records into a PNG at ``path`` (written atomically).

    Left: training ``loss`` per logged step. Right: the eval ``metric`` (default ``eval_loss``) per evaluation, when
    the log has any. Returns the path, or None when the log has no training loss to draw.
    """
    # The figure is bound to an Agg canvas directly: no pyplot, no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [(r["step"], r["loss"]) for r in records if "loss" in r and "step" in r]
    if not train:
        return None
    metric = metric or "eval_loss"
    evals = [(r["step"], r[metric]) for r in records if metric in r and "step" in r]
    figure = Figure(figsize=(10 if evals else 5.5, 4), dpi=100, layout="tight")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if evals else 1, squeeze=False)[0]
    axes[0].plot(*zip(*train), color="tab:blue", linewidth=1.2)
    axes[0].set(title="training loss", xlabel="step", ylabel="loss")
    axes[0].grid(alpha=0.3)
    if evals:
        axes[1].plot(*zip(*evals), color="tab:orange", marker="o", linewidth=1.2)
        axes[1].set(title=metric, xlabel="step", ylabel=metric)
        axes[1].grid(alpha=0.3)
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
