"""TrainingArguments: defaults, validation messages naming the field, JSON round trip; schedules; decay mask."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bert_core.config import BertConfig
from bert_core.training import TrainingArguments, decay_mask, decays, learning_rate, lr_lambda, warmup_steps
from bert_core.training.args import RESUME_FIELDS
from bert_core.training.decay import weight_kind
from bert_core.weights import HEADS, expected_weights

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_spec():
    args = TrainingArguments("out")
    assert (args.num_train_epochs, args.max_steps, args.per_device_train_batch_size) == (3.0, -1, 8)
    assert (args.learning_rate, args.lr_scheduler_type, args.max_grad_norm) == (5e-5, "linear", 1.0)
    assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon, args.seed) == (0.9, 0.999, 1e-8, 42)
    assert args.config_overrides == {} and args.config_overrides is not TrainingArguments("o").config_overrides
    assert args.validate() is args


def test_json_round_trip_keeps_every_field():
    args = TrainingArguments(
        "out", task="mlm", backend="pt", model="m", max_steps=7, config_overrides={"hidden_dropout_prob": 0.0}
    ).validate()
    assert args.backend == "torch"  # alias normalised
    back = TrainingArguments.from_json(args.to_json())
    assert back == args
    assert json.loads(args.to_json())["config_overrides"] == {"hidden_dropout_prob": 0.0}
    assert set(args.resume_fields()) == set(RESUME_FIELDS)


def test_from_json_refuses_unknown_and_bad_json():
    with pytest.raises(ValueError, match=r"unknown training argument\(s\) \['lr'\]"):
        TrainingArguments.from_json(json.dumps({"output_dir": "o", "lr": 1}))
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainingArguments.from_json("{")
    with pytest.raises(ValueError, match="JSON object"):
        TrainingArguments.from_json("[]")
    with pytest.raises(ValueError, match="output_dir"):
        TrainingArguments.from_json("{}")


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("per_device_train_batch_size", 0, "an integer >= 1"),
        ("gradient_accumulation_steps", 1.5, "an integer >= 1"),
        ("learning_rate", float("nan"), "a finite number >= 0"),
        ("warmup_ratio", 1.5, "a finite number >= 0 and <= 1"),
        ("adam_beta2", 1.0, "< 1"),
        ("mlm_probability", 0.0, "> 0"),
        ("num_train_epochs", 0, "> 0"),
        ("lr_scheduler_type", "poly", "one of linear, cosine, constant"),
        ("task", "ner", "one of text-classification"),
        ("backend", "mxnet", "one of torch, tf, flax"),
        ("seed", -1, "an integer >= 0"),
        ("save_total_limit", 0, "an integer >= 1"),
        ("shuffle", "yes", "True or False"),
        ("max_steps", -2, "an integer >= -1"),
        ("config_overrides", [], "a dict"),
    ],
)
def test_validate_names_field_value_and_range(field, value, expected):
    args = dataclasses.replace(TrainingArguments("out"), **{field: value})
    with pytest.raises(ValueError) as err:
        args.validate()
    message = str(err.value)
    assert message.startswith(f"training argument {field}={value!r} is invalid"), message
    assert expected in message, message


# ------------------------------------------------------------------------------------------------- schedules


def _args(**kw):
    return TrainingArguments("out", **kw).validate()


def test_warmup_steps_rule():
    assert warmup_steps(_args(warmup_ratio=0.1), 25) == 3  # ceil(2.5)
    assert warmup_steps(_args(warmup_ratio=0.1, warmup_steps=4), 25) == 4
    assert warmup_steps(_args(), 25) == 0


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant"])
def test_schedules_by_hand(kind):
    t, w, base = 10, 4, 1e-3
    args = _args(lr_scheduler_type=kind, warmup_steps=w, learning_rate=base)
    lrs = [learning_rate(u, args, t) for u in range(t + 2)]
    assert lrs[:w] == pytest.approx([base * u / w for u in range(w)], rel=1e-15)
    after = {
        "linear": [max(0.0, (t - u) / (t - w)) for u in range(w, t + 2)],
        "cosine": [max(0.0, 0.5 * (1 + math.cos(math.pi * (u - w) / (t - w)))) for u in range(w, t + 2)],
        "constant": [1.0] * (t + 2 - w),
    }[kind]
    assert lrs[w:] == pytest.approx([base * a for a in after], rel=1e-14, abs=1e-20)
    assert [lr_lambda(args, t)(u) * base for u in range(t + 2)] == lrs
    assert learning_rate(w, args, t) == base  # the peak sits right after warmup


def test_schedule_edges_never_divide_by_zero():
    assert learning_rate(0, _args(), 1) == 5e-5  # w = 0: full rate at once
    assert learning_rate(3, _args(warmup_steps=3), 3) == 0.0  # T == w
    assert learning_rate(0, _args(lr_scheduler_type="cosine", warmup_steps=5), 2) == 0.0


# ------------------------------------------------------------------------------------------------- decay mask

# HF Trainer.get_decay_parameter_names' name patterns (it also excludes nn.LayerNorm, which are all named LayerNorm)
_HF_FORBIDDEN = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


@pytest.mark.parametrize("head", HEADS)
def test_decay_agrees_with_hf_rule_on_every_name(head):
    config = BertConfig(
        vocab_size=8,
        hidden_size=4,
        num_hidden_layers=2,
        num_attention_heads=1,
        intermediate_size=4,
        is_decoder=True,
        add_cross_attention=True,
        position_embedding_type="relative_key_query",
    )
    names = list(expected_weights(config, head))
    mask = decay_mask(names)
    assert list(mask) == names
    for name in names:
        hf = not any(re.search(p, name.lower()) for p in _HF_FORBIDDEN)
        assert mask[name] == hf, name


def test_decay_examples_and_unknown_name():
    assert decays("bert.embeddings.word_embeddings.weight")
    assert decays("cls.predictions.decoder.weight")
    assert decays("bert.encoder.layer.11.attention.self.distance_embedding.weight")
    assert not decays("bert.encoder.layer.3.output.LayerNorm.weight")
    assert not decays("cls.predictions.bias")
    assert weight_kind("encoder.layer.7.intermediate.dense.bias") == "linear_bias"
    with pytest.raises(ValueError, match="not a canonical BERT weight name"):
        decays("bert.encoder.layer.0.attention.self.query.kernel")


def test_training_package_loads_no_framework():
    modules = [p.stem for p in (ROOT / "bert_core" / "training").glob("*.py") if p.stem != "__init__"]
    stmt = "; ".join(f"import bert_core.training.{m}" for m in modules)
    code = f"import sys; import bert_core.training; {stmt}; print([m for m in ('torch','tensorflow','jax','flax','keras') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
