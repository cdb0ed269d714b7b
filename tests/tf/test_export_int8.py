"""``bert export --backend tf --to tflite --quantize int8``: TFLite dynamic-range quantization. The artifact holds
int8 weights (per output channel) consumed by FullyConnected, runs in the LiteRT interpreter, stays close to the
float32 Keras model (judged like every int8 artifact: cosine and argmax, conformance/export.py), and the manifest
records what was quantized; formats that cannot carry int8 are refused with the format that can."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import bert_tf  # noqa: E402
from bert_core import init_weights, save_pretrained, tiny_config  # noqa: E402
from bert_core.export import ExportError, export, read_manifest, sample_inputs  # noqa: E402
from bert_tf import export as tf_export  # noqa: E402
from conformance.export import format_verify, verify_export  # noqa: E402

HEAD = "BertForSequenceClassification"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-cls")
    config = tiny_config(num_labels=5)
    save_pretrained(directory, config, init_weights(config, HEAD, seed=0), architecture=HEAD)
    return directory


@pytest.fixture(scope="module")
def int8_export(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite-int8") / "out"
    return export(model_dir, out, backend="tf", to="tflite", quantize="int8")


def test_manifest_records_the_quantization(int8_export):
    manifest = read_manifest(int8_export.out)
    assert manifest["quantize"] == "int8" and manifest["format"] == "tflite"
    q = manifest["quantization"]
    assert q["method"].startswith("tf.lite.Optimize.DEFAULT")
    # 2 layers x 6 projections + the pooler, per output channel; the converter keeps weights under 1024 entries
    # float32 (here the 32 x 5 classifier)
    assert q["quantized_ops"]["FULLY_CONNECTED"] == 13
    assert q["per_channel_weights"] >= 13
    assert manifest["dynamic_shapes"] is True


def test_int8_is_close_to_fp32(model_dir, int8_export):
    model = getattr(bert_tf, HEAD).from_pretrained(str(model_dir))
    runner = tf_export.load_artifact(int8_export.out, "tflite", threads=1)
    inputs = sample_inputs(HEAD, batch=16, seq=12, vocab_size=model.config.vocab_size, seed=3)
    ref = np.asarray(model(**{k: v.astype(np.int32) for k, v in inputs.items()}, training=False)["logits"])
    got = runner(inputs)["logits"]
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.max(np.abs(got - ref)) > 1e-4  # int8 kernels ran: the float32 file stays within 5e-7 of Keras
    assert np.max(np.abs(got - ref)) <= 0.05 * (1 + np.max(np.abs(ref)))
    assert np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.9


def test_verify_judges_int8_by_cosine_and_argmax(model_dir, int8_export):
    report = verify_export(model_dir, int8_export.out)
    assert report.passed, format_verify(report)
    assert {r.field for r in report.rows} == {"logits.cosine", "logits.argmax"}


def test_quantize_requests_that_cannot_be_carried(model_dir, tmp_path):
    model = getattr(bert_tf, HEAD).from_pretrained(str(model_dir))
    with pytest.raises(ExportError, match="--quantize int8 applies to --to tflite with backend 'tf', not 'savedmodel'"):
        tf_export.export_model(model, tmp_path, "savedmodel", quantize="int8")
    with pytest.raises(ExportError, match="--quantize 'int4' is not supported"):
        tf_export.export_model(model, tmp_path, "tflite", quantize="int4")
    with pytest.raises(ExportError, match="use --to tflite --quantize int8"):
        export(model_dir, tmp_path / "never", backend="tf", to="savedmodel", quantize="int8")
    assert not (tmp_path / "never").exists()
    with pytest.raises(ExportError, match="quantizes tflite only"):
        tf_export.quantization_record(tmp_path, "onnx")
