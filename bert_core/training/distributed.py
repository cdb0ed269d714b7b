"""Scale-out, framework-free: the strategies ``bert train`` knows, mesh specs, and how one global micro-batch is split
over data-parallel workers so that N workers train exactly the model one process trains with the same global batch.

The rule (every backend):

- the data order is the one of a single process whose micro-batch is the *global* micro-batch
  ``G = per_device_train_batch_size * W`` (W data-parallel workers): ``order`` is asked with batch size G;
- every worker collates the whole global micro-batch (same padding, same MLM masks from ``order.batch_rng`` as the
  single process), then keeps its rows, :func:`split_rows` (contiguous, as even as ``np.array_split``);
- a loss is a mean over its *loss units* (examples, or labelled tokens for token-level labels). A worker's own mean
  covers only its rows, so before the gradient all-reduce (a mean over workers) each worker multiplies its loss term
  by :func:`loss_scales` ``W * n_r / N`` (``n_r`` its units, ``N`` the global micro-batch's): the all-reduced gradient
  is then the gradient of the global mean. Heads with two loss terms (pre-training: masked LM + next sentence) scale
  each term by its own factor.
- JAX programs that see the global batch as one sharded array (``jax.sharding`` meshes, multi-process
  ``jax.distributed``) compute the global mean themselves and need no scales.

Backend hooks the loop uses when ``backend.world.size > 1`` (see ``TrainLoop``): ``train_step(local_micro_batches,
loss_scales=...)``, ``barrier()``, and optionally ``checkpoint_writer(tokenizer, output_dir, step)`` (called on every
worker: may gather or write sharded files; returns the ``directory -> None`` writer rank 0 runs inside the staged
checkpoint) and ``restore_checkpoint(directory)``.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

#: --strategy values per backend ("none": one process, one device).
STRATEGIES: Dict[str, Tuple[str, ...]] = {
    "torch": ("none", "ddp", "fsdp"),
    "tf": ("none", "mirrored", "multi-worker"),
    "flax": ("none", "mesh"),
}
ALL_STRATEGIES = tuple(dict.fromkeys(s for names in STRATEGIES.values() for s in names))

#: Mesh axes ``--mesh`` may name, in mesh order: ``data`` shards the batch, ``model`` the weights (see ``sharding``).
MESH_AXES = ("data", "model")

#: Labels whose value -100 means "no loss here" (HF's ignore index), keyed by the batch field of each loss term.
LOSS_TERMS = ("labels", "next_sentence_label", "start_positions")
IGNORE_INDEX = -100


class World(NamedTuple):
    """This worker's place among the data-parallel workers: ``rank`` in ``range(size)``."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, checkpoints and the final model."""
        return self.rank == 0


def check_world(rank: int, size: int) -> World:
    """``World(rank, size)`` after checking ``size >= 1`` and ``0 <= rank < size`` (ValueError naming them)."""
    for name, value in (("world size", size), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}={value!r} is invalid; expected an integer")
    if size < 1:
        raise ValueError(f"world size={size} is invalid; expected an integer >= 1")
    if not 0 <= rank < size:
        raise ValueError(f"rank={rank} is invalid; expected an integer in [0, {size - 1}] for world size {size}")
    return World(int(rank), int(size))


def timeout_from_env(variable: str, default: float) -> float:
    """Seconds from the environment variable ``variable`` (collective timeouts: a lost worker must end the job, not
    hang it), ``default`` when unset. Raises ValueError naming the variable unless it is a number > 0."""
    text = os.environ.get(variable)
    if text is None:
        return float(default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:  # also NaN
        raise ValueError(f"{variable}={text!r} is invalid; expected a number of seconds > 0")
    return value


def parse_mesh(text: Optional[str]) -> Dict[str, int]:
    """``"data=4,model=2"`` -> ``{"data": 4, "model": 2}`` (axes in :data:`MESH_AXES` order; a missing axis is 1).

    Raises:
        ValueError: naming ``--mesh``, the bad part and the expected form.
    """
    expected = "AXIS=N[,AXIS=N] with AXIS in data, model and N >= 1, e.g. data=2 or data=2,model=2"
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--mesh {text!r} is invalid; expected {expected}")
    sizes: Dict[str, int] = {}
    for part in text.split(","):
        match = re.fullmatch(r"\s*([a-z]+)\s*=\s*(\d+)\s*", part)
        if not match or match.group(1) not in MESH_AXES or int(match.group(2)) < 1:
            raise ValueError(f"--mesh {text!r} is invalid at {part.strip()!r}; expected {expected}")
        if match.group(1) in sizes:
            raise ValueError(f"--mesh {text!r} names axis {match.group(1)!r} twice; expected {expected}")
        sizes[match.group(1)] = int(match.group(2))
    return {axis: sizes.get(axis, 1) for axis in MESH_AXES}


def check_strategy(backend: Optional[str], strategy: str) -> str:
    """``strategy`` if ``backend`` has it (any known strategy when the backend is not chosen yet)."""
    allowed = STRATEGIES.get(backend, ALL_STRATEGIES) if backend else ALL_STRATEGIES
    if strategy not in allowed:
        where = f" for backend {backend}" if backend else ""
        raise ValueError(
            f"training argument strategy={strategy!r} is invalid{where}; expected one of {', '.join(allowed)}"
        )
    return strategy


def split_rows(num_rows: int, world_size: int) -> List[slice]:
    """The rows of each worker in a global micro-batch of ``num_rows``: contiguous, sizes differing by at most one
    (the first ``num_rows % W`` workers get one more), like ``np.array_split``. A worker may get none (a short last
    batch); it still runs the step, with loss scale 0."""
    base, extra = divmod(int(num_rows), int(world_size))
    bounds = np.cumsum([0] + [base + (1 if r < extra else 0) for r in range(world_size)])
    return [slice(int(bounds[r]), int(bounds[r + 1])) for r in range(world_size)]


def shard_batch(batch: Mapping[str, np.ndarray], world: World) -> Dict[str, np.ndarray]:
    """This worker's rows of a collated global micro-batch (every array's first axis is the batch)."""
    rows = split_rows(_batch_rows(batch), world.size)[world.rank]
    return {name: np.asarray(value)[rows] for name, value in batch.items()}


def _batch_rows(batch: Mapping[str, np.ndarray]) -> int:
    sizes = {len(np.asarray(v)) for v in batch.values() if np.ndim(v) > 0}
    if len(sizes) != 1:
        raise ValueError(f"a collated batch needs one batch size on every field, got sizes {sorted(sizes)}")
    return sizes.pop()


def loss_units(batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Per loss term (the label field that drives it), the number of loss units in each row: labelled tokens for
    token-level labels (``labels`` of shape (B, S): MLM, token classification), one per labelled row otherwise
    (sequence labels, next sentence labels, QA start positions). Returns ``{field: int64 (B,)}``."""
    units: Dict[str, np.ndarray] = {}
    for name in LOSS_TERMS:
        if name not in batch:
            continue
        labels = np.asarray(batch[name])
        labelled = labels != IGNORE_INDEX
        units[name] = labelled.reshape(len(labels), -1).sum(axis=1).astype(np.int64)
    return units


def loss_scales(batch: Mapping[str, np.ndarray], world: World) -> Dict[str, float]:
    """``{term: W * n_r / N}`` for this worker's rows of the global micro-batch ``batch`` (see the module docstring).
    ``N == 0`` (nothing labelled anywhere) gives 0: the single process's loss is NaN-free only when masked out too."""
    rows = split_rows(_batch_rows(batch), world.size)[world.rank]
    scales = {}
    for name, per_row in loss_units(batch).items():
        total = int(per_row.sum())
        scales[name] = 0.0 if total == 0 else world.size * int(per_row[rows].sum()) / total
    return scales


def shard_step(
    batches: List[Mapping[str, np.ndarray]], world: World
) -> Tuple[List[Dict[str, np.ndarray]], List[Dict[str, float]]]:
    """One optimizer step's global micro-batches -> (this worker's rows of each, their loss scales)."""
    return [shard_batch(b, world) for b in batches], [loss_scales(b, world) for b in batches]
