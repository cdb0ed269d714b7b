"""Batch order: permutations, length grouping, step counts, and iter_steps resuming from any step boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bert_core.training import (
    Position,
    TrainingArguments,
    batch_rng,
    epoch_order,
    iter_steps,
    steps_per_epoch,
    total_steps,
)
from bert_core.training.order import global_step, length_grouped


def _args(**kw):
    return TrainingArguments("out", **kw).validate()


def test_epoch_order_is_seeded_permutation():
    a = epoch_order(50, seed=3, epoch=1)
    assert a.dtype == np.int64 and sorted(a.tolist()) == list(range(50))
    assert np.array_equal(a, np.random.default_rng([3, 1]).permutation(50))
    assert np.array_equal(a, epoch_order(50, 3, 1))
    assert not np.array_equal(a, epoch_order(50, 3, 2))
    assert not np.array_equal(a, epoch_order(50, 4, 1))
    assert epoch_order(5, 3, 1, shuffle=False).tolist() == [0, 1, 2, 3, 4]


def test_length_grouping_by_hand():
    lengths = [1, 9, 3, 3, 7, 2, 8, 5]
    # megabatch 2 * B = 4: [0 1 2 3] -> by length [1 2 3 0] (ties keep order), [4 5 6 7] -> [6 4 7 5]
    out = length_grouped(np.arange(8), lengths, batch_size=2, mega_batch_mult=2)
    assert out.tolist() == [1, 2, 3, 0, 6, 4, 7, 5]
    # the longest overall is swapped to the very front
    out = length_grouped(np.array([4, 5, 6, 7, 0, 1, 2, 3]), lengths, batch_size=2, mega_batch_mult=2)
    assert out.tolist() == [1, 4, 7, 5, 6, 2, 3, 0]


def test_length_grouped_epoch_order():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=200)
    order = epoch_order(200, 7, 0, lengths=lengths, group_by_length=True, batch_size=4)
    assert sorted(order.tolist()) == list(range(200))
    assert lengths[order[0]] == lengths.max()
    # default megabatch = min(200 // 16, 50) * 4 = 48 features, each sorted by decreasing length (after the swap)
    perm = epoch_order(200, 7, 0)
    first = perm[:48]
    # the swap exchanged at most one feature of the first megabatch with the front of the one holding the longest
    assert len(set(order[:48].tolist()) ^ set(first.tolist())) <= 2
    assert all(np.all(np.diff(lengths[order[s + 1 : s + 48]]) <= 0) for s in range(0, 200, 48))
    with pytest.raises(ValueError, match="needs the features' lengths"):
        epoch_order(10, 0, 0, group_by_length=True)
    with pytest.raises(ValueError, match="got 3 lengths for 10"):
        epoch_order(10, 0, 0, lengths=[1, 2, 3], group_by_length=True, batch_size=2)


def test_batch_rng_is_deterministic_and_distinct():
    draw = lambda *a: batch_rng(*a).integers(0, 2**31, 4).tolist()
    assert draw(1, 2, 3) == draw(1, 2, 3)
    assert len({tuple(draw(*a)) for a in [(1, 2, 3), (1, 2, 4), (1, 3, 3), (2, 2, 3)]}) == 4
    with pytest.raises(ValueError, match="micro_index=-1"):
        batch_rng(0, 0, -1)


@pytest.mark.parametrize("n, b, k", [(10, 3, 2), (10, 5, 2), (1, 8, 4), (17, 4, 1), (9, 1, 4)])
def test_steps_per_epoch_formula(n, b, k):
    assert steps_per_epoch(n, b, k) == math.ceil(math.ceil(n / b) / k)


def test_total_steps():
    assert (
        total_steps(_args(num_train_epochs=2.5, per_device_train_batch_size=3, gradient_accumulation_steps=2), 10) == 5
    )
    assert total_steps(_args(max_steps=11, num_train_epochs=1), 10) == 11


@pytest.mark.parametrize("n, b, k, epochs, max_steps", [(10, 3, 2, 2.5, -1), (7, 2, 3, 1.0, 9), (5, 5, 1, 2.0, -1)])
def test_iter_steps_covers_the_recipe(n, b, k, epochs, max_steps):
    args = _args(
        per_device_train_batch_size=b,
        gradient_accumulation_steps=k,
        num_train_epochs=epochs,
        max_steps=max_steps,
        seed=5,
    )
    steps = list(iter_steps(n, args))
    assert len(steps) == total_steps(args, n)
    micro = math.ceil(n / b)
    for position, micro_batches in steps:
        order = epoch_order(n, 5, position.epoch)
        assert position.micro_index % k == 0 and 1 <= len(micro_batches) <= k
        for j, batch in enumerate(micro_batches):
            m = position.micro_index + j
            assert m < micro and np.array_equal(batch, order[m * b : (m + 1) * b])
    # each full epoch sees every feature exactly once
    per_epoch = steps_per_epoch(n, b, k)
    first = np.concatenate([m for _, mbs in steps[:per_epoch] for m in mbs])
    assert sorted(first.tolist()) == list(range(n)) or len(steps) < per_epoch


def test_iter_steps_resumes_at_every_boundary():
    args = _args(per_device_train_batch_size=3, gradient_accumulation_steps=2, num_train_epochs=3, seed=1)
    full = [(p, [m.tolist() for m in mbs]) for p, mbs in iter_steps(10, args)]
    for i, (position, _) in enumerate(full):
        rest = [(p, [m.tolist() for m in mbs]) for p, mbs in iter_steps(10, args, start=position)]
        assert rest == full[i:]
        assert global_step(position, 10, 3, 2) == i
    # a checkpoint taken after an epoch's last step stores micro_index == micro-batches per epoch
    assert [p for p, _ in iter_steps(10, args, start=Position(0, 4))] == [p for p, _ in full[2:]]
    with pytest.raises(ValueError, match="cannot start at"):
        next(iter_steps(10, args, start=Position(0, 1)))
    assert list(iter_steps(10, args, start=Position(3, 0))) == []


def test_iter_steps_group_by_length_uses_lengths():
    lengths = list(range(20))
    args = _args(per_device_train_batch_size=2, group_by_length=True, max_steps=3)
    steps = list(iter_steps(20, args, lengths=lengths))
    assert steps[0][1][0][0] == 19
