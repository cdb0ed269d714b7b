"""The batch order of the recipe: which features make each micro-batch and each optimizer step.

Every backend and every resumed run draws the same order from these functions:

- an epoch's features are ordered by :func:`epoch_order` (numpy ``default_rng([seed, epoch])``; HF-style
  length-grouped megabatches when asked);
- micro-batches are consecutive slices of ``B = per_device_train_batch_size`` of that order (the last may be smaller);
- ``K = gradient_accumulation_steps`` consecutive micro-batches make one optimizer step (an epoch's last step may have
  fewer), so an epoch has ``ceil(ceil(N / B) / K)`` steps (:func:`steps_per_epoch`);
- the collator of micro-batch ``m`` of epoch ``e`` gets ``batch_rng(seed, e, m)`` (MLM masking).

A :class:`Position` ``(epoch, micro_index)`` names the next micro-batch to run; checkpoints store it and
:func:`iter_steps` starts from it, so a resumed run continues with exactly the batches the uninterrupted one would see.
"""

from __future__ import annotations

import math
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .args import TrainingArguments

# Stream tags so batch and eval RNGs never share an entropy tuple with epoch permutations or each other.
_BATCH_STREAM = 1
_EVAL_STREAM = 2


class Position(NamedTuple):
    """Where training stands: the next micro-batch to run is ``micro_index`` (0-based) of epoch ``epoch``."""

    epoch: int = 0
    micro_index: int = 0


def _check_count(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} is invalid; expected an integer >= {low}")
    return int(value)


def micro_batches_per_epoch(num_features: int, batch_size: int) -> int:
    """``ceil(N / B)`` (0 for no features: an evaluation-only run)."""
    _check_count("num_features", num_features, 0)
    return math.ceil(num_features / _check_count("batch_size", batch_size, 1))


def steps_per_epoch(num_features: int, batch_size: int, accumulation: int) -> int:
    """Optimizer steps in one epoch: ``ceil(ceil(N / B) / K)``."""
    micro = micro_batches_per_epoch(num_features, batch_size)
    return math.ceil(micro / _check_count("gradient_accumulation_steps", accumulation, 1))


def total_steps(args: TrainingArguments, num_features: int) -> int:
    """``max_steps`` when > 0, else ``ceil(num_train_epochs * steps_per_epoch)`` (HF ``Trainer``'s count)."""
    if args.max_steps > 0:
        return int(args.max_steps)
    per_epoch = steps_per_epoch(num_features, args.per_device_train_batch_size, args.gradient_accumulation_steps)
    # at least one (HF floors an epoch at one update): an evaluation-only loop (no features) still builds an optimizer
    return max(1, math.ceil(args.num_train_epochs * per_epoch))


def length_grouped(
    order: np.ndarray, lengths: Sequence[int], batch_size: int, mega_batch_mult: Optional[int] = None
) -> np.ndarray:
    """HF ``get_length_grouped_indices`` applied to an already shuffled ``order``.

    ``order`` is cut into megabatches of ``mega_batch_mult * batch_size`` (default ``min(N // (4 B), 50)``, at least
    1), each sorted by decreasing length (stable), and the longest feature overall is swapped to the front so that an
    out-of-memory error shows on the first batch.

    Args:
        order: int64 array of shape ``(N,)``, a permutation of ``range(N)``.
        lengths: length of each feature, indexed by feature.
        batch_size: micro-batch size B.

    Returns:
        int64 array of shape ``(N,)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(order)
    if mega_batch_mult is None:
        mega_batch_mult = max(1, min(n // (batch_size * 4), 50))
    size = mega_batch_mult * batch_size
    megabatches = []
    for start in range(0, n, size):
        chunk = order[start : start + size]
        # stable sort on -length == Python's sorted(..., reverse=True), which keeps ties in order
        megabatches.append(chunk[np.argsort(-lengths[chunk], kind="stable")])
    maxima = [lengths[mb[0]] for mb in megabatches]
    longest = int(np.argmax(maxima))
    megabatches[0][0], megabatches[longest][0] = megabatches[longest][0], megabatches[0][0]
    return np.concatenate(megabatches).astype(np.int64)


def epoch_order(
    num_examples: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    lengths: Optional[Sequence[int]] = None,
    group_by_length: bool = False,
    batch_size: Optional[int] = None,
) -> np.ndarray:
    """The order of the training features in ``epoch``: a permutation of ``range(num_examples)``.

    Args:
        num_examples: N, the number of training features.
        seed, epoch: the permutation is ``default_rng([seed, epoch]).permutation(N)`` when ``shuffle``.
        shuffle: False keeps the file order (before any length grouping).
        lengths: per-feature lengths, required with ``group_by_length``.
        group_by_length: group features of similar length into micro-batches (HF ``LengthGroupedSampler``).
        batch_size: B, required with ``group_by_length``.

    Returns:
        int64 array of shape ``(N,)``.
    """
    n = _check_count("num_examples", num_examples, 1)
    order = (
        np.random.default_rng([_check_count("seed", seed, 0), _check_count("epoch", epoch, 0)]).permutation(n)
        if shuffle
        else np.arange(n)
    ).astype(np.int64)
    if not group_by_length:
        return order
    if lengths is None or batch_size is None:
        raise ValueError("group_by_length needs the features' lengths and the batch size")
    if len(lengths) != n:
        raise ValueError(f"group_by_length got {len(lengths)} lengths for {n} features")
    return length_grouped(order, lengths, _check_count("batch_size", batch_size, 1))


def batch_rng(seed: int, epoch: int, micro_index: int) -> np.random.Generator:
    """The generator the collator of micro-batch ``micro_index`` of ``epoch`` uses (MLM masking)."""
    return np.random.default_rng(
        [
            _check_count("seed", seed, 0),
            _check_count("epoch", epoch, 0),
            _check_count("micro_index", micro_index, 0),
            _BATCH_STREAM,
        ]
    )


def eval_rng(seed: int, batch_index: int) -> np.random.Generator:
    """The generator the collator of eval batch ``batch_index`` uses: the same masks at every evaluation."""
    return np.random.default_rng(
        [_check_count("seed", seed, 0), _check_count("batch_index", batch_index, 0), _EVAL_STREAM]
    )


def global_step(position: Position, num_features: int, batch_size: int, accumulation: int) -> int:
    """Optimizer steps done before ``position`` (which must be the start of a step)."""
    per_epoch = steps_per_epoch(num_features, batch_size, accumulation)
    return position.epoch * per_epoch + math.ceil(position.micro_index / accumulation)


def iter_steps(
    num_features: int,
    args: TrainingArguments,
    start: Optional[Position] = None,
    lengths: Optional[Sequence[int]] = None,
) -> Iterator[Tuple[Position, List[np.ndarray]]]:
    """The optimizer steps from ``start`` to the end of training (``total_steps(args, num_features)`` steps in all).

    Args:
        num_features: N, the number of training features.
        args: B, K, seed, shuffle, group_by_length and the step count come from here.
        start: the position to start from (default: the beginning).
        lengths: per-feature lengths, for ``group_by_length``.

    Yields:
        ``(position, micro_batches)`` per optimizer step: the position of its first micro-batch, and for each of its
        (up to K) micro-batches the int64 array of feature indices (shape ``(<=B,)``).

    Raises:
        ValueError: ``start`` is not the first micro-batch of an optimizer step of this data.
    """
    start = Position(0, 0) if start is None else start
    b, k = args.per_device_train_batch_size, args.gradient_accumulation_steps
    micro = micro_batches_per_epoch(num_features, b)
    epoch, index = int(start.epoch), int(start.micro_index)
    if epoch < 0 or index < 0 or index > micro or (index % k and index != micro):
        raise ValueError(
            f"cannot start at {Position(epoch, index)}: an optimizer step starts at a micro_index that is a multiple "
            f"of gradient_accumulation_steps={k} below {micro}"
        )
    if index == micro:  # a checkpoint taken after an epoch's last step
        epoch, index = epoch + 1, 0
    remaining = total_steps(args, num_features) - global_step(Position(epoch, index), num_features, b, k)
    while remaining > 0:
        order = epoch_order(num_features, args.seed, epoch, args.shuffle, lengths, args.group_by_length, b)
        while index < micro and remaining > 0:
            micro_batches = [order[m * b : (m + 1) * b] for m in range(index, min(index + k, micro))]
            yield Position(epoch, index), micro_batches
            index += len(micro_batches)
            remaining -= 1
        epoch, index = epoch + 1, 0
