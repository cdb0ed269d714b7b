"""Task pipelines on every installed backend: each task runs, batch sizes agree, backends agree with each other,
ready model objects and bf16 work, the wrong head is refused or warned about, and ``bert predict`` runs end to end.

Tiny checkpoints (random body, hidden 32, MiniLM's tokenizer; tests/data/pipelines/models.py). Equality with HF's
pipelines: tests/oracle/test_pipelines_oracle.py.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines"
sys.path.insert(0, str(DATA))

from compare import assert_same  # noqa: E402
from models import make_all, make_checkpoint  # noqa: E402

from bert_core.pipelines import PipelineError, pipeline  # noqa: E402
from bert_core.pipelines import cli as predict_cli  # noqa: E402
from bert_core.tokenization_fast import BertTokenizerFast  # noqa: E402

TEXT = "Angela Merkel met Schwarzenegger in Zürich to discuss hyperparameterization."
CONTEXT = "My name is Wolfgang and I live in Berlin. Berlin is the capital of Germany. " * 4

#: task -> (inputs, options): several inputs of different lengths, so batching and bucketing matter
CALLS = {
    "fill-mask": ((["Paris is the [MASK] of France.", "I [MASK] you.", TEXT + " [MASK]"],), {"top_k": 3}),
    "text-classification": ((["good", {"text": TEXT, "text_pair": "a pair"}, "bad " * 30],), {"top_k": None}),
    "token-classification": (([TEXT, "Hugging Face is in New York"],), {"aggregation_strategy": "average"}),
    "question-answering": (
        ([{"question": "Where do I live?", "context": CONTEXT}, {"question": "Who?", "context": TEXT}],),
        {"max_seq_len": 40, "doc_stride": 12, "top_k": 2},
    ),
    "feature-extraction": ((["short", TEXT],), {"return_tensors": True}),
    "zero-shot-classification": (
        ([TEXT, "The election results."],),
        {"candidate_labels": ["sport", "politics", "food"]},
    ),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, minilm_dir):
    return make_all(tmp_path_factory.mktemp("pipelines"), minilm_dir, tiny=True)


_PIPES = {}


def get(checkpoints, backend, task):
    key = (backend, task)
    if key not in _PIPES:
        _PIPES[key] = pipeline(task, checkpoints[task], backend=backend, progress=False)
    return _PIPES[key]


@pytest.mark.parametrize("task", list(CALLS))
def test_task_runs_and_batch_sizes_agree(checkpoints, backend, task):
    pipe = get(checkpoints, backend.name, task)
    args, kwargs = CALLS[task]
    pipe.batch_size = 8
    eight = pipe(*args, **kwargs)
    pipe.batch_size = 1
    one = pipe(*args, **kwargs)
    assert_same(one, eight, where=f"{backend.name} {task}: batch 1 vs 8")
    if task == "text-classification":
        assert_same(list(pipe(iter(args[0]), **kwargs)), eight, where=f"{backend.name} {task}: streamed vs list")


@pytest.mark.parametrize("task", list(CALLS))
def test_backends_agree(checkpoints, all_backends, task):
    args, kwargs = CALLS[task]
    first = all_backends[0].name
    ref = get(checkpoints, first, task)(*args, **kwargs)
    for other in all_backends[1:]:
        assert_same(get(checkpoints, other.name, task)(*args, **kwargs), ref, where=f"{other.name} vs {first} {task}")


def test_sentence_embedding_of_minilm(minilm_dir, backend):
    pipe = pipeline("sentence-embedding", minilm_dir, backend=backend.name, progress=False)
    pairs = json.loads((DATA / "similarity_pairs.json").read_text())
    anchors = pipe([p["anchor"] for p in pairs])
    close = pipe([p["close"] for p in pairs])
    far = pipe([p["far"] for p in pairs])
    np.testing.assert_allclose(np.linalg.norm(anchors, axis=1), 1, rtol=1e-5)
    near, away = np.diag(pipe.similarity(anchors, close)), np.diag(pipe.similarity(anchors, far))
    assert np.all(near > away + 0.1), (near, away)


def test_ready_model_object_and_wrong_head(checkpoints, backend):
    tok = BertTokenizerFast.from_pretrained(checkpoints["question-answering"])
    model = backend.package.BertForQuestionAnswering.from_pretrained(checkpoints["question-answering"])
    from_object = pipeline("question-answering", model, tokenizer=tok, progress=False)
    assert from_object.backend == backend.name
    args, kwargs = CALLS["question-answering"]
    assert_same(from_object(*args, **kwargs), get(checkpoints, backend.name, "question-answering")(*args, **kwargs))
    with pytest.raises(
        PipelineError,
        match="text-classification needs a BertForSequenceClassification model; got a BertForQuestionAnswering",
    ):
        pipeline("text-classification", model, tokenizer=tok)
    with pytest.raises(PipelineError, match="tokenizer is required when model is a model object"):
        pipeline("question-answering", model)
    other = next(b for b in ("torch", "tf", "flax") if b != backend.name)
    with pytest.raises(PipelineError, match=f"backend='{other}' but the model is a {backend.name} model"):
        pipeline("question-answering", model, tokenizer=tok, backend=other)


def test_checkpoint_without_the_head_warns_like_hf(checkpoints, backend):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = pipeline("text-classification", checkpoints["feature-extraction"], backend=backend.name, progress=False)
    assert any("newly initialised" in str(w.message) and "classifier.weight" in str(w.message) for w in caught)
    assert pipe("works anyway")[0]["label"] in ("LABEL_0", "LABEL_1")


def test_bf16_is_close_to_fp32(checkpoints, backend):
    fp32 = get(checkpoints, backend.name, "feature-extraction")([TEXT], return_tensors=True)[0][0]
    pipe = pipeline("feature-extraction", checkpoints["feature-extraction"], backend=backend.name, bf16=True)
    bf16 = pipe([TEXT], return_tensors=True)[0][0]
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    cosine = (bf16 * fp32).sum(-1) / np.linalg.norm(bf16, axis=-1) / np.linalg.norm(fp32, axis=-1)
    assert cosine.min() > 0.99, cosine.min()


def test_predict_cli_end_to_end(checkpoints, backend, tmp_path, capsys):
    source = tmp_path / "qa.jsonl"
    source.write_text(
        json.dumps({"id": "a", "question": "Where do I live?", "context": CONTEXT}) + "\n" + '{"question": "?"}\n'
    )
    target = tmp_path / "answers.jsonl"
    argv = ["question-answering", "--model", str(checkpoints["question-answering"]), "--backend", backend.name]
    code = predict_cli.main(argv + ["--input", str(source), "--output", str(target), "--top-k", "2", "--quiet"])
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert code == 1 and records[0]["id"] == "a" and len(records[0]["output"]) == 2
    assert records[1] == {"line": 2, "error": records[1]["error"]} and "missing ['context']" in records[1]["error"]
    ref = get(checkpoints, backend.name, "question-answering")(question="Where do I live?", context=CONTEXT, top_k=2)
    assert_same(records[0]["output"], ref)
    assert "1 line(s) failed: 2" in capsys.readouterr().err


def test_bad_model_directory(tmp_path, backend, minilm_dir):
    broken = make_checkpoint(tmp_path / "broken", "BertModel", minilm_dir, tiny=True)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Exception, match="model.safetensors"):
        pipeline("feature-extraction", broken, backend=backend.name)
