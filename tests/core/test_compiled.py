"""bert_core.compiled: the argument errors shared by bert_torch / bert_tf ``compile_for_inference``, the eager
value checks of a compiled call, and the ``compile`` option of pipelines and the CLIs (no framework imported)."""

from __future__ import annotations

import argparse

import pytest

from bert_core import compiled
from bert_core.config import tiny_config


class _Model:
    pass


def test_check_model_names_what_was_passed():
    compiled.check_model(_Model(), [_Model], "bert_x")
    with pytest.raises(TypeError) as err:
        compiled.check_model(_Model, [_Model], "bert_x")
    assert str(err.value) == (
        "compile_for_inference(model): expected a bert_x model instance (BertModel or a head such as "
        "BertForSequenceClassification), got the class _Model"
    )
    with pytest.raises(TypeError, match=r"expected a bert_x model instance .*, got a str$"):
        compiled.check_model("path/to/model", [_Model], "bert_x")


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_check_flag_wants_a_bool(value):
    assert compiled.check_flag("freezing", True) is True
    with pytest.raises(TypeError, match=rf"^compile_for_inference: freezing must be True or False, got {value!r}$"):
        compiled.check_flag("freezing", value)


def test_check_optional_flag_and_choice():
    assert compiled.check_optional_flag("dynamic", None) is None
    assert compiled.check_optional_flag("dynamic", False) is False
    with pytest.raises(TypeError, match=r"dynamic must be None, True or False, got 1$"):
        compiled.check_optional_flag("dynamic", 1)
    assert compiled.check_choice("mode", None, (None, "default")) is None
    with pytest.raises(ValueError, match=r"^compile_for_inference: mode must be one of None, 'default', got 'x'$"):
        compiled.check_choice("mode", "x", (None, "default"))


def test_check_values_uses_the_eager_wording():
    config = tiny_config()  # vocab 99, 2 token types, 64 positions
    compiled.check_values(config, {"input_ids": (0, 98), "token_type_ids": (0, 1)}, seq_len=64)
    with pytest.raises(ValueError, match=r"input_ids contains id 99, out of range for vocab_size=99"):
        compiled.check_values(config, {"input_ids": (0, 99)}, seq_len=8)
    with pytest.raises(ValueError, match=r"input_ids contains negative id -1"):
        compiled.check_values(config, {"input_ids": (-1, 5)}, seq_len=8)
    with pytest.raises(ValueError, match=r"token_type_ids contains 2, out of range for type_vocab_size=2"):
        compiled.check_values(config, {"token_type_ids": (0, 2)}, seq_len=None)
    with pytest.raises(ValueError, match=r"position_ids contains 64, out of range for max_position_embeddings=64"):
        compiled.check_values(config, {"position_ids": (0, 64)}, seq_len=None)
    with pytest.raises(ValueError, match=r"sequence length 65 \(60 cached \+ 5 new\) exceeds"):
        compiled.check_values(config, {}, seq_len=5, past_length=60)


def test_pipeline_compile_must_be_a_bool():
    from bert_core.pipelines import pipeline

    with pytest.raises(TypeError, match=r"compile_for_inference: compile must be True or False, got 'yes'"):
        pipeline("fill-mask", "unused/path", compile="yes")


def test_compile_flag_of_bert_predict_and_bert_serve():
    from bert_core.pipelines import cli as pipeline_cli
    from bert_core.serve import cli as serve_cli

    parser = argparse.ArgumentParser(prog="bert")
    pipeline_cli.add_parsers(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["predict", "ner", "--model", "m", "--compile"]).compile is True
    assert parser.parse_args(["predict", "ner", "--model", "m"]).compile is False
    assert serve_cli.build_parser().parse_args(["m", "--task", "fill-mask", "--compile"]).compile is True
    assert serve_cli.build_parser().parse_args(["m", "--task", "fill-mask"]).compile is False
    assert "jax.jit" in compiled.COMPILE_HELP and "jax.jit" in compiled.FLAX_NOTE
