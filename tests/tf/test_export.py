"""bert_tf.export: SavedModel, ONNX (tf2onnx) and TFLite (builtin ops) artifacts reload in their own runtime and
match the Keras model within the conformance tolerance, at two batch sizes and lengths with padding; bad arguments
raise ExportError. Conversions are slow, so each (format, head) artifact is exported once per module."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import bert_tf  # noqa: E402
from bert_core import tiny_config  # noqa: E402
from bert_core.export import OUTPUT_NAMES, ExportError, sample_inputs  # noqa: E402
from bert_tf import export as tf_export  # noqa: E402
from conformance.tolerance import DEFAULT_TOLERANCE, compare  # noqa: E402

ALL_HEADS = tuple(cls.head_name for cls in bert_tf.ALL_MODEL_CLASSES)
MAIN_HEADS = ("BertModel", "BertForSequenceClassification", "BertForQuestionAnswering", "BertForMultipleChoice")
#: (batch, seq, choices): padding in the last row, a sentence-pair split, two batch sizes and lengths
SHAPES = ((3, 7, 2), (1, 4, 3))


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(head):
        if head not in cache:
            config = tiny_config(is_decoder=head == "BertLMHeadModel")
            cache[head] = getattr(bert_tf, head)(config, seed=0)
        return cache[head]

    return get


@pytest.fixture(scope="module")
def artifacts(models, tmp_path_factory):
    cache = {}

    def get(fmt, head):
        if (fmt, head) not in cache:
            out = tmp_path_factory.mktemp(f"{fmt}-{head}")
            files = tf_export.export_model(models(head), out, fmt)
            assert files and all(f.is_file() and out in f.parents for f in files)
            cache[fmt, head] = out
        return cache[fmt, head]

    return get


def _runner(out, fmt):
    if fmt == "onnx":
        from bert_core.export.onnx import OnnxRunner

        return OnnxRunner(out / "model.onnx")
    return tf_export.load_artifact(out, fmt)


def _check(model, runner, head):
    for batch, seq, choices in SHAPES:
        inputs = sample_inputs(head, batch=batch, seq=seq, vocab_size=model.config.vocab_size, choices=choices)
        expected = model(**{k: v.astype(np.int32) for k, v in inputs.items()}, training=False)
        got = runner(inputs)
        assert list(got) == list(OUTPUT_NAMES[head])
        for name in got:
            result = compare(np.asarray(expected[name]), got[name], DEFAULT_TOLERANCE)
            assert result.passed, f"{head} {name} at {batch}x{seq}: max|d| {result.max_abs} > {result.limit}"


@pytest.mark.parametrize("head", ALL_HEADS)
def test_savedmodel_every_head(models, artifacts, head):
    out = artifacts("savedmodel", head)
    assert (out / "saved_model.pb").is_file() and (out / "variables").is_dir()
    runner = tf_export.load_artifact(out, "savedmodel")
    assert runner.input_dtypes == {"input_ids": "int32", "attention_mask": "int32", "token_type_ids": "int32"}
    _check(models(head), runner, head)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("head", MAIN_HEADS)
def test_onnx_and_tflite(models, artifacts, fmt, head):
    out = artifacts(fmt, head)
    assert sorted(p.name for p in out.iterdir()) == [f"model.{fmt}"]
    _check(models(head), _runner(out, fmt), head)


def test_onnx_inputs_are_int64_with_dynamic_dims(artifacts):
    import onnx

    graph = onnx.load(str(artifacts("onnx", "BertForQuestionAnswering") / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["start_logits", "end_logits"]
    for value in graph.input:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert all(d.dim_param and not d.dim_value for d in value.type.tensor_type.shape.dim)


def test_tflite_has_only_builtin_ops_and_dynamic_signature(artifacts):
    out = artifacts("tflite", "BertForSequenceClassification")
    runner = tf_export.load_artifact(out, "tflite")
    details = runner._run.get_input_details()
    assert all(list(d["shape_signature"]) == [-1, -1] for d in details.values())
    # the converter was restricted to TFLITE_BUILTINS: no Flex (Select TF) delegate op in the flatbuffer
    assert b"Flex" not in (out / "model.tflite").read_bytes()


def test_bad_arguments(models, tmp_path):
    model = models("BertForSequenceClassification")
    with pytest.raises(ExportError, match="format 'stablehlo' is not written by the tf backend"):
        tf_export.export_model(model, tmp_path, "stablehlo")
    with pytest.raises(ExportError, match="must be a bert_tf head"):
        tf_export.export_model(object(), tmp_path, "onnx")
    with pytest.raises(ExportError, match="--opset applies to --to onnx only"):
        tf_export.export_model(model, tmp_path, "tflite", opset=17)
    with pytest.raises(ExportError, match="does not exist"):
        tf_export.export_model(model, tmp_path / "missing", "onnx")
    (tmp_path / "junk").write_text("x")
    with pytest.raises(ExportError, match="is not empty"):
        tf_export.export_model(model, tmp_path, "onnx")
    with pytest.raises(ExportError, match="holds no model.tflite"):
        tf_export.load_artifact(tmp_path, "tflite")
    with pytest.raises(ExportError, match="holds no saved_model.pb"):
        tf_export.load_artifact(tmp_path, "savedmodel")
    with pytest.raises(ExportError, match="OnnxRunner"):
        tf_export.load_artifact(tmp_path, "onnx")


def test_runner_refuses_wrong_inputs(artifacts):
    runner = tf_export.load_artifact(artifacts("savedmodel", "BertModel"), "savedmodel")
    inputs = sample_inputs("BertModel", batch=1, seq=3)
    with pytest.raises(ExportError, match=r"missing \['token_type_ids'\]"):
        runner({k: v for k, v in inputs.items() if k != "token_type_ids"})
    with pytest.raises(ExportError, match=r"unexpected \['position_ids'\]"):
        runner({**inputs, "position_ids": inputs["input_ids"]})
