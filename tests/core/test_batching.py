import numpy as np
import pytest

from bert_core.batching import collate, plan_batches, run_bucketed


def test_plan_covers_every_index_once_and_respects_budgets():
    rng = np.random.default_rng(0)
    lengths = np.minimum(8 + rng.geometric(1 / 40, size=500), 512)
    plan = plan_batches(lengths, batch_size=16, max_tokens=2048, pad_to_multiple_of=8)
    flat = np.concatenate(plan)
    assert sorted(flat.tolist()) == list(range(500))
    for batch in plan:
        width = -(-lengths[batch].max() // 8) * 8
        assert len(batch) <= 16 and (len(batch) == 1 or width * len(batch) <= 2048)
    padded = sum(len(b) * (-(-lengths[b].max() // 8) * 8) for b in plan)
    naive = sum(len(b) * lengths.max() for b in np.array_split(np.arange(500), len(plan)))
    assert padded < naive / 2  # bucketing removes most padding on a skewed corpus


def test_collate_and_original_order_round_trip():
    seqs = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [10, 11]]
    batch = collate(seqs, np.array([2, 0]), pad_token_id=0, pad_to_multiple_of=4)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0, 0, 0], [1, 2, 3, 0, 0, 0, 0, 0]]
    assert batch["attention_mask"].sum(1).tolist() == [5, 3] and batch["input_ids"].dtype == np.int64
    out = run_bucketed(lambda b: b["input_ids"][..., None] * 2, seqs, batch_size=2, pad_to_multiple_of=1)
    assert [o[:, 0].tolist() for o in out] == [[2, 4, 6], [8], [10, 12, 14, 16, 18], [20, 22]]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([3], batch_size=0)
    with pytest.raises(ValueError, match="lengths"):
        plan_batches([0, 3])


def _all_cuts(n, batch_size):
    """Every way to cut n sorted rows into contiguous batches of at most batch_size rows."""
    if n == 0:
        yield [0]
        return
    for last in range(1, min(batch_size, n) + 1):
        for head in _all_cuts(n - last, batch_size):
            yield head + [n]


def _total(cuts, padded, cost):
    return sum(cost + (b - a) * padded[a] for a, b in zip(cuts, cuts[1:]))


def _allowed(cuts, padded, budget):
    return all(b - a == 1 or (b - a) * padded[a] <= budget for a, b in zip(cuts, cuts[1:]))


def test_call_cost_plan_is_the_cheapest_cut():
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(1, 9))
        lengths = rng.integers(1, 200, size=n)
        batch_size, budget, cost = int(rng.integers(1, 6)), int(rng.integers(64, 1200)), int(rng.integers(0, 400))
        plan = plan_batches(lengths, batch_size=batch_size, max_tokens=budget, call_cost_tokens=cost)
        assert sorted(np.concatenate(plan).tolist()) == list(range(n))
        padded = sorted((-(-int(x) // 8) * 8 for x in lengths), reverse=True)

        best = min(_total(c, padded, cost) for c in _all_cuts(n, batch_size) if _allowed(c, padded, budget))
        got = sum(cost + len(b) * max(-(-int(lengths[i]) // 8) * 8 for i in b) for b in plan)
        assert got == best, (trial, lengths.tolist(), batch_size, budget, cost)
        assert all(len(b) <= batch_size for b in plan)


def test_call_cost_splits_long_rows_from_short_ones():
    lengths = [120] + [10] * 15
    greedy = plan_batches(lengths, batch_size=32, max_tokens=16384)
    assert len(greedy) == 1  # one call, every short row padded to 120
    planned = plan_batches(lengths, batch_size=32, max_tokens=16384, call_cost_tokens=128)
    assert [len(b) for b in planned] == [1, 15]  # 128 + 120 + 128 + 15 x 16 < 128 + 16 x 120
    assert len(plan_batches(lengths, batch_size=32, max_tokens=16384, call_cost_tokens=10**6)) == 1
    with pytest.raises(ValueError, match="call_cost_tokens"):
        plan_batches(lengths, call_cost_tokens=-1)
