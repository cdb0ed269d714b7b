"""bert_flax.export: StableHLO (jax.export, parameters as arguments) and ONNX (jax2onnx) artifacts reload in their own
runtime and match the Flax model within the conformance tolerance, at two batch sizes and lengths with padding; bad
arguments raise ExportError. Each (format, head) artifact is exported once per module."""

import numpy as np
import pytest
from safetensors.numpy import load_file

import bert_flax
from bert_core import tiny_config
from bert_core.export import OUTPUT_NAMES, ExportError, sample_inputs
from bert_flax import export as flax_export
from conformance.tolerance import DEFAULT_TOLERANCE, compare

ALL_HEADS = tuple(cls.head_name for cls in bert_flax.ALL_MODEL_CLASSES)
MAIN_HEADS = ("BertModel", "BertForSequenceClassification", "BertForQuestionAnswering", "BertForMultipleChoice")
#: (batch, seq, choices): padding in the last row, a sentence-pair split, two batch sizes and lengths
SHAPES = ((3, 7, 2), (1, 4, 3))


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(head):
        if head not in cache:
            cache[head] = getattr(bert_flax, head)(tiny_config(is_decoder=head == "BertLMHeadModel"), seed=0)
        return cache[head]

    return get


@pytest.fixture(scope="module")
def artifacts(models, tmp_path_factory):
    cache = {}

    def get(fmt, head):
        if (fmt, head) not in cache:
            out = tmp_path_factory.mktemp(f"{fmt}-{head}")
            files = flax_export.export_model(models(head), out, fmt)
            assert files and all(f.is_file() and f.parent == out for f in files)
            cache[fmt, head] = out
        return cache[fmt, head]

    return get


def _runner(out, fmt):
    if fmt == "onnx":
        from bert_core.export.onnx import OnnxRunner

        return OnnxRunner(out / "model.onnx")
    return flax_export.load_artifact(out, fmt)


def _check(model, runner, head, shapes=SHAPES):
    for batch, seq, choices in shapes:
        inputs = sample_inputs(head, batch=batch, seq=seq, vocab_size=model.config.vocab_size, choices=choices)
        expected = model(**inputs)
        got = runner(inputs)
        assert list(got) == list(OUTPUT_NAMES[head])
        for name in got:
            result = compare(np.asarray(expected[name]), got[name], DEFAULT_TOLERANCE)
            assert result.passed, f"{head} {name} at {batch}x{seq}: max|d| {result.max_abs} > {result.limit}"


@pytest.mark.parametrize("head", ALL_HEADS)
def test_stablehlo_every_head(models, artifacts, head):
    out = artifacts("stablehlo", head)
    assert sorted(p.name for p in out.iterdir()) == ["model.stablehlo", "params.safetensors"]
    model = models(head)
    # the weights are arguments, not constants: the program is small, the params are the canonical checkpoint
    params = load_file(out / "params.safetensors")
    expected = model.canonical_weights()
    assert sorted(params) == sorted(expected)
    assert all(np.array_equal(params[k], expected[k]) for k in expected)
    assert (out / "model.stablehlo").stat().st_size < sum(v.nbytes for v in expected.values())
    # every head at one shape (each new shape compiles), the main heads at both
    _check(model, _runner(out, "stablehlo"), head, SHAPES if head in MAIN_HEADS else SHAPES[:1])


def test_stablehlo_symbolic_dims_and_length_limit(artifacts, models):
    import jax

    out = artifacts("stablehlo", "BertForSequenceClassification")
    exported = jax.export.deserialize(bytearray((out / "model.stablehlo").read_bytes()))
    assert [str(d) for d in exported.in_avals[-1].shape] == ["b", "s"]
    runner = flax_export.load_artifact(out, "stablehlo")
    limit = models("BertForSequenceClassification").config.max_position_embeddings
    with pytest.raises(ExportError, match="cannot run on inputs of shape"):
        runner(sample_inputs("BertForSequenceClassification", batch=1, seq=limit + 1))


@pytest.mark.parametrize("head", MAIN_HEADS)
def test_onnx(models, artifacts, head):
    out = artifacts("onnx", head)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]
    runner = _runner(out, "onnx")
    assert set(runner.input_dtypes.values()) == {"int64"}
    _check(models(head), runner, head)


def test_bad_arguments(models, tmp_path):
    model = models("BertForSequenceClassification")
    with pytest.raises(ExportError, match="format 'tflite' is not written by the flax backend"):
        flax_export.export_model(model, tmp_path, "tflite")
    with pytest.raises(ExportError, match="must be a bert_flax head"):
        flax_export.export_model(object(), tmp_path, "stablehlo")
    with pytest.raises(ExportError, match="--opset applies to --to onnx only"):
        flax_export.export_model(model, tmp_path, "stablehlo", opset=17)
    with pytest.raises(ExportError, match="does not exist"):
        flax_export.export_model(model, tmp_path / "missing", "stablehlo")
    (tmp_path / "junk").write_text("x")
    with pytest.raises(ExportError, match="is not empty"):
        flax_export.export_model(model, tmp_path, "stablehlo")
    with pytest.raises(ExportError, match="holds no model.stablehlo"):
        flax_export.load_artifact(tmp_path, "stablehlo")
    with pytest.raises(ExportError, match="OnnxRunner"):
        flax_export.load_artifact(tmp_path, "onnx")


def test_runner_refuses_wrong_inputs(artifacts):
    runner = flax_export.load_artifact(artifacts("stablehlo", "BertModel"), "stablehlo")
    inputs = sample_inputs("BertModel", batch=1, seq=3)
    with pytest.raises(ExportError, match=r"missing \['token_type_ids'\]"):
        runner({k: v for k, v in inputs.items() if k != "token_type_ids"})
    with pytest.raises(ExportError, match=r"unexpected \['position_ids'\]"):
        runner({**inputs, "position_ids": inputs["input_ids"]})
