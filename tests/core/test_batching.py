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
