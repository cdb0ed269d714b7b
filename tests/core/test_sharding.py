"""The tensor-parallel rule table (``bert_core.sharding``): which canonical weights the ``model`` axis splits, along
which axis in each backend's layout, and the divisibility check."""

from __future__ import annotations

import re

import pytest

from bert_core.config import tiny_config
from bert_core.sharding import RULES, backend_partition, check_divisible, partition
from bert_core.weights import HEADS, stored_weights

LAYER = "bert.encoder.layer.3."


@pytest.mark.parametrize(
    "name, expected",
    [
        (LAYER + "attention.self.query.weight", ("model", None)),  # (out, in): heads are the output features
        (LAYER + "attention.self.key.bias", ("model",)),
        (LAYER + "attention.output.dense.weight", (None, "model")),  # input features: partial sums
        (LAYER + "attention.output.dense.bias", ()),  # added after the all-reduce
        (LAYER + "attention.output.LayerNorm.weight", ()),
        (LAYER + "intermediate.dense.weight", ("model", None)),
        (LAYER + "intermediate.dense.bias", ("model",)),
        (LAYER + "output.dense.weight", (None, "model")),
        (LAYER + "output.dense.bias", ()),
        ("bert.embeddings.word_embeddings.weight", ()),
        ("bert.pooler.dense.weight", ()),
        ("cls.predictions.transform.dense.weight", ()),  # not a layer's output dense
        ("classifier.weight", ()),
    ],
)
def test_partition_of_canonical_names(name, expected):
    assert partition(name) == expected


def test_every_head_weight_gets_a_rule_and_only_the_model_axis_splits():
    config = tiny_config()
    for head in HEADS:
        for spec in stored_weights(config, head).values():
            got = partition(spec.name)
            assert len(got) <= len(spec.shape), spec.name
            assert set(got) <= {None, "model"}, spec.name
    assert all(re.compile(pattern) and why for pattern, _, why in RULES)  # every rule says why


def test_backend_layout_transposes_kernels():
    spec = stored_weights(tiny_config(), "BertForSequenceClassification")[
        LAYER.replace("3", "1") + "attention.self.query.weight"
    ]
    assert backend_partition(spec, "torch") == ("model", None)
    assert backend_partition(spec, "flax") == (None, "model")  # flax kernels are (in, out)
    out = stored_weights(tiny_config(), "BertForSequenceClassification")["bert.encoder.layer.1.output.dense.weight"]
    assert backend_partition(out, "flax") == ("model", None)
    bias = stored_weights(tiny_config(), "BertForSequenceClassification")["bert.encoder.layer.1.output.dense.bias"]
    assert backend_partition(bias, "flax") == (None,)  # padded to the rank: replicated


def test_check_divisible_names_the_weight_and_axis():
    specs = list(stored_weights(tiny_config(), "BertModel").values())  # intermediate_size 37
    check_divisible(specs, {"data": 4, "model": 1})
    with pytest.raises(ValueError, match=r"intermediate\.dense\.weight dim 0 = 37 on model=2.*divides hidden_size"):
        check_divisible(specs, {"data": 1, "model": 2})
    check_divisible(list(stored_weights(tiny_config(intermediate_size=36), "BertModel").values()), {"model": 4})
