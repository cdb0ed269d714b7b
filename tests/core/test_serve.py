"""``bert serve`` without a framework: the dynamic batcher as a unit, and every route and bad request through the
ASGI app in process, on the numpy stand-in for a backend (tests/data/pipelines/fake.py) and MiniLM's tokenizer.

The same app on real models (and a real uvicorn process): tests/torch/test_serve_torch.py; all three backends:
tests/conformance/test_serve_backends.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines"
sys.path.insert(0, str(DATA))

from fake import FakeRunner  # noqa: E402

from bert_core.config import BertConfig  # noqa: E402
from bert_core.pipelines import (  # noqa: E402
    FeatureExtractionPipeline,
    FillMaskPipeline,
    PoolingConfig,
    QuestionAnsweringPipeline,
    SentenceEmbeddingPipeline,
    TextClassificationPipeline,
    TokenClassificationPipeline,
    ZeroShotClassificationPipeline,
)
from bert_core.serve import BackendFailure, Batcher, ServeConfig, Server  # noqa: E402
from bert_core.tokenization_fast import BertTokenizerFast  # noqa: E402

NER = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
NLI = {0: "contradiction", 1: "neutral", 2: "entailment"}
TEXTS = ["a cat", "the quick brown fox jumps over the lazy dog", "hello", "a much longer sentence " * 4]
CONTEXT = "My name is Wolfgang and I live in Berlin. " * 3
MAX_POSITIONS = 64  # the fake models' limit, so too-long inputs are cheap


@pytest.fixture(scope="module")
def tok(minilm_dir):
    return BertTokenizerFast.from_pretrained(minilm_dir)


class PoisonRunner(FakeRunner):
    """FakeRunner that fails any batch holding the token ``poison`` (a model error tied to one input)."""

    poison_id = -1

    def __call__(self, batch):
        if (batch["input_ids"] == self.poison_id).any():
            raise RuntimeError("poisoned batch")
        return super().__call__(batch)


def make(cls, tok, head=None, runner_cls=FakeRunner, **config):
    config.setdefault("vocab_size", 30522)
    config.setdefault("max_position_embeddings", MAX_POSITIONS)
    runner = runner_cls(head or cls.head, BertConfig(**config))
    runner.poison_id = tok.convert_tokens_to_ids("poison")
    extra = {"pooling": PoolingConfig(("mean",), True, 32)} if cls is SentenceEmbeddingPipeline else {}
    return cls(runner, tok, progress=False, **extra)


def features(pipe, texts):
    params = pipe.resolve_options({})
    return [pipe.preprocess(t, params) for t in texts]


# ------------------------------------------------------------------------------------------------ batcher


def run_batcher(pipe, requests, **kwargs):
    """Submit every request at once; (results or exceptions, the runner's batches)."""

    async def main():
        batcher = Batcher(pipe, **kwargs)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
        finally:
            await batcher.stop()

    pipe.runner.batches.clear()
    return asyncio.run(main()), list(pipe.runner.batches)


def test_concurrent_requests_share_one_model_call(tok):
    pipe = make(FeatureExtractionPipeline, tok)
    requests = features(pipe, TEXTS)
    out, batches = run_batcher(pipe, requests, max_wait_ms=50)
    assert len(batches) == 1 and batches[0].shape[0] == len(TEXTS)
    for request, result in zip(requests, out):
        alone = Batcher(pipe).run_alone(request)
        assert len(result) == 1 and result[0].shape == (len(request[0]["input_ids"]), 16)
        np.testing.assert_allclose(result[0], alone[0], rtol=1e-6)


def test_batches_stay_under_the_token_budget_grouped_by_length(tok):
    pipe = make(FeatureExtractionPipeline, tok)
    requests = features(pipe, TEXTS * 4)
    out, batches = run_batcher(pipe, requests, max_wait_ms=50, max_batch_tokens=64)
    assert len(batches) > 1 and all(b.size <= 64 for b in batches)
    assert sum(b.shape[0] for b in batches) == len(requests)
    widths = [b.shape[1] for b in batches]
    assert widths == sorted(widths, reverse=True) or len(set(widths)) < len(widths)  # longest rows together
    assert [len(r[0]) for r in out] == [len(r[0]["input_ids"]) for r in requests]


def test_max_batch_requests_one_turns_batching_off(tok):
    pipe = make(FeatureExtractionPipeline, tok)
    _, batches = run_batcher(pipe, features(pipe, TEXTS), max_wait_ms=50, max_batch_requests=1)
    assert [b.shape[0] for b in batches] == [1] * len(TEXTS)


def test_a_failing_request_does_not_fail_its_batch(tok):
    pipe = make(FeatureExtractionPipeline, tok, runner_cls=PoisonRunner)
    texts = ["a cat", "this is poison", "hello there"]
    out, batches = run_batcher(pipe, features(pipe, texts), max_wait_ms=50)
    assert isinstance(out[1], BackendFailure) and "RuntimeError: poisoned batch" in str(out[1])
    for i in (0, 2):
        np.testing.assert_allclose(out[i][0], pipe(texts[i], return_tensors=True)[0], rtol=1e-6)
    # the joint call failed, then each request ran alone (the failed one raising again)
    assert [b.shape[0] for b in batches] == [1, 1]


def test_cancelled_request_leaves_the_batcher_running(tok):
    pipe = make(FeatureExtractionPipeline, tok)
    request = features(pipe, ["a cat"])[0]

    async def main():
        batcher = Batcher(pipe, max_wait_ms=20)
        await batcher.start()
        try:
            gone = asyncio.ensure_future(batcher.submit(request))
            await asyncio.sleep(0)
            gone.cancel()
            result = await asyncio.wait_for(batcher.submit(request), 10)
            return batcher.alive, result
        finally:
            await batcher.stop()

    alive, result = asyncio.run(main())
    assert alive and result[0].shape == (len(request[0]["input_ids"]), 16)


def test_settings_are_checked(tok):
    pipe = make(FeatureExtractionPipeline, tok)
    with pytest.raises(ValueError, match=r"max_batch_tokens must hold one input of the longest length: >= 64"):
        Server(pipe, ServeConfig(max_batch_tokens=32))
    with pytest.raises(ValueError, match=r"max_client_batch_size must be an int >= 1; got 0"):
        Server(pipe, ServeConfig(max_client_batch_size=0))
    with pytest.raises(ValueError, match=r"max_wait_ms must be a number in \[0, 10000\]; got -1"):
        Server(pipe, ServeConfig(max_wait_ms=-1))


# ------------------------------------------------------------------------------------------------ the app

starlette = pytest.importorskip("starlette")
pytest.importorskip("prometheus_client")
from starlette.testclient import TestClient  # noqa: E402

from bert_core.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def pipes(tok):
    return {
        "sentence-embedding": make(SentenceEmbeddingPipeline, tok, hidden_size=16, num_attention_heads=4),
        "feature-extraction": make(FeatureExtractionPipeline, tok, runner_cls=PoisonRunner),
        "text-classification": make(TextClassificationPipeline, tok, id2label={0: "NEG", 1: "POS"}),
        "cross-encoder": make(TextClassificationPipeline, tok, num_labels=1),
        "token-classification": make(TokenClassificationPipeline, tok, id2label=NER),
        "question-answering": make(QuestionAnsweringPipeline, tok),
        "fill-mask": make(FillMaskPipeline, tok),
        "zero-shot-classification": make(ZeroShotClassificationPipeline, tok, id2label=NLI),
        "nli": make(TextClassificationPipeline, tok, id2label=NLI),
    }


@pytest.fixture(scope="module")
def clients(pipes):
    config = ServeConfig(max_client_batch_size=4, max_body_bytes=4096, max_wait_ms=1, model_id="fake")
    opened = {name: TestClient(create_app(pipe, config)) for name, pipe in pipes.items()}
    for client in opened.values():
        client.__enter__()
    yield opened
    for client in opened.values():
        client.__exit__(None, None, None)


def post(client, route, body):
    response = client.post(route, content=json.dumps(body))
    return response.status_code, response.json()


def test_embed_sentence_embedding(clients, pipes):
    client, pipe = clients["sentence-embedding"], pipes["sentence-embedding"]
    status, out = post(client, "/embed", {"inputs": TEXTS})
    assert status == 200
    np.testing.assert_allclose(out, pipe(TEXTS, normalize=True), rtol=1e-6, atol=1e-7)
    status, one = post(client, "/embed", {"inputs": "a cat", "normalize": False})
    assert status == 200 and len(one) == 1
    np.testing.assert_allclose(one[0], pipe("a cat", normalize=False), rtol=1e-6)
    long = "word " * 40  # 42 tokens > max_seq_length 32
    status, out = post(client, "/embed", {"inputs": [long]})
    assert status == 413 and out["error"] == (
        "input 0 is 42 tokens long; the model takes at most 32; send truncate=true to cut it to that length"
    )
    status, out = post(client, "/embed", {"inputs": [long], "truncate": True})
    assert status == 200
    np.testing.assert_allclose(out[0], pipe(long), rtol=1e-6)


def test_embed_and_embed_all_on_feature_extraction(clients, pipes):
    client, pipe = clients["feature-extraction"], pipes["feature-extraction"]
    tokens = pipe(TEXTS[:2], return_tensors=True)
    status, out = post(client, "/embed_all", {"inputs": TEXTS[:2]})
    assert status == 200 and [np.shape(x) for x in out] == [t.shape[1:] for t in tokens]
    for got, want in zip(out, tokens):
        np.testing.assert_allclose(got, want[0], rtol=1e-6)
    status, out = post(client, "/embed", {"inputs": TEXTS[:2], "normalize": False})
    np.testing.assert_allclose(out, [t[0].mean(0) for t in tokens], rtol=1e-5)
    status, out = post(client, "/embed", {"inputs": "word " * 80, "truncate": True})
    assert status == 200 and len(out[0]) == 16
    status, out = post(client, "/embed_all", {"inputs": "word " * 80})
    assert status == 413 and "82 tokens long; the model takes at most 64" in out["error"]


def test_predict_text_classification_tei_shape(clients, pipes):
    client, pipe = clients["text-classification"], pipes["text-classification"]
    status, out = post(client, "/predict", {"inputs": "a cat"})
    assert status == 200 and out == pipe.to_json(pipe("a cat", top_k=None))
    assert [p["label"] for p in out] == sorted(
        ["NEG", "POS"], key=lambda x: -next(p["score"] for p in out if p["label"] == x)
    )
    status, out = post(client, "/predict", {"inputs": ["a cat", ["a cat", "a dog"]], "raw_scores": True, "top_k": 1})
    want = pipe(["a cat", {"text": "a cat", "text_pair": "a dog"}], top_k=1, function_to_apply="none")
    assert status == 200 and out == pipe.to_json(want)


@pytest.mark.parametrize(
    "task, body, call",
    [
        (
            "token-classification",
            {"inputs": ["Angela Merkel lives in Berlin", "hello"], "aggregation_strategy": "simple"},
            lambda p: p(["Angela Merkel lives in Berlin", "hello"], aggregation_strategy="simple"),
        ),
        (
            "question-answering",
            {"inputs": {"question": "Where do I live?", "context": CONTEXT}, "top_k": 2, "max_seq_len": 32},
            lambda p: p(question="Where do I live?", context=CONTEXT, top_k=2, max_seq_len=32),
        ),
        (
            "fill-mask",
            {"inputs": ["Paris is the [MASK] of France.", "I [MASK] you."], "top_k": 2},
            lambda p: p(["Paris is the [MASK] of France.", "I [MASK] you."], top_k=2),
        ),
        (
            "zero-shot-classification",
            {"inputs": "The election results.", "candidate_labels": ["sport", "politics"]},
            lambda p: p("The election results.", candidate_labels=["sport", "politics"]),
        ),
    ],
)
def test_predict_other_tasks_give_the_pipeline_result(clients, pipes, task, body, call):
    status, out = post(clients[task], "/predict", body)
    assert status == 200 and out == pipes[task].to_json(call(pipes[task]))


def pair_scores(pipe, query, texts, **options):
    """Each (query, text)'s label -> score from the text-classification pipeline itself."""
    results = pipe([{"text": query, "text_pair": t} for t in texts], top_k=None, **options)
    return [{p["label"]: p["score"] for p in result} for result in results]


def test_rerank(clients, pipes):
    texts = ["a cat", "a dog", "the weather is nice"]
    for name, label in (("cross-encoder", "LABEL_0"), ("text-classification", "POS")):
        client, pipe = clients[name], pipes[name]
        status, out = post(client, "/rerank", {"query": "pets", "texts": texts, "return_text": True})
        assert status == 200 and sorted(r["index"] for r in out) == [0, 1, 2]
        assert [r["score"] for r in out] == sorted((r["score"] for r in out), reverse=True)
        assert all(r["text"] == texts[r["index"]] for r in out)
        # one logit: its sigmoid; two: the probability of label 1 -- what the pipeline's own scores say
        want = [s[label] for s in pair_scores(pipe, "pets", texts)]
        assert [r["score"] for r in out] == pytest.approx([want[r["index"]] for r in out], rel=1e-6)
        status, raw = post(client, "/rerank", {"query": "pets", "texts": texts, "raw_scores": True})
        logits = [s[label] for s in pair_scores(pipe, "pets", texts, function_to_apply="none")]
        assert [r["score"] for r in raw] == pytest.approx([logits[r["index"]] for r in raw], rel=1e-6)
        if name == "cross-encoder":
            assert [r["score"] for r in out] == pytest.approx([1 / (1 + math.exp(-r["score"])) for r in raw])
    status, out = post(clients["nli"], "/rerank", {"query": "q", "texts": ["a"]})
    assert status == 400 and out["error_type"] == "Unsupported" and "this model has 3 labels" in out["error"]


def test_health_info_metrics(clients):
    client = clients["sentence-embedding"]
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["task"] == "sentence-embedding" and info["backend"] == "fake" and info["model_id"] == "fake"
    assert info["max_input_length"] == 32 and info["max_client_batch_size"] == 4 and info["max_wait_ms"] == 1
    assert info["routes"] == ["/embed"] and info["pooling"] == ["mean"] and info["version"]
    post(client, "/embed", {"inputs": ["a", "b"]})
    post(client, "/embed", {"inputs": []})
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'bert_serve_requests_total{route="/embed",status="200"}' in text
    assert 'bert_serve_requests_total{route="/embed",status="400"}' in text
    assert 'bert_serve_requests_total{route="other",status="404"}' in text
    assert 'bert_serve_request_duration_seconds_bucket{le="+Inf",route="/embed"}' in text
    assert "bert_serve_batch_size_count" in text and "bert_serve_batch_tokens_sum" in text
    assert "bert_serve_queue_depth 0.0" in text


BAD = [
    # (route, raw body, status, error_type, message part)
    ("/embed", b"{not json", 400, "InvalidJSON", "the body is not valid JSON: Expecting property name"),
    ("/embed", b"", 400, "InvalidJSON", "the body is empty; send a JSON object"),
    ("/embed", b'["a"]', 422, "Validation", "/embed: the body must be a JSON object; got a list"),
    ("/embed", b"{}", 422, "Validation", "the body has the fields inputs, normalize (optional)"),
    ("/embed", b'{"inputs": "a", "normalise": true}', 422, "Validation", "unknown ['normalise']"),
    ("/embed", b'{"inputs": 3}', 422, "Validation", "inputs must be a string or a list of strings; got a number"),
    ("/embed", b'{"inputs": ["a", 3]}', 422, "Validation", "inputs[1] must be a string; got a number"),
    ("/embed", b'{"inputs": []}', 400, "Empty", "inputs is an empty list; send at least one input"),
    ("/embed", b'{"inputs": "a", "normalize": "yes"}', 422, "Validation", "normalize must be true or false"),
    ("/embed", b'{"inputs": ["a","b","c","d","e"]}', 413, "Validation", "inputs holds 5 inputs; this server takes"),
    ("/embed", b'{"inputs": "a", "truncation_direction": "left"}', 422, "Validation", "truncation_direction must"),
    ("/predict", b'{"inputs": "a"}', 400, "Unsupported", "/predict serves text-classification"),
]


@pytest.mark.parametrize("route, body, status, error_type, message", BAD)
def test_bad_requests_get_a_clear_4xx(clients, route, body, status, error_type, message):
    response = clients["sentence-embedding"].post(route, content=body)
    assert response.status_code == status
    assert response.json()["error_type"] == error_type and message in response.json()["error"]


@pytest.mark.parametrize(
    "task, body, status, message",
    [
        ("text-classification", {"inputs": [["a", "b", "c"]]}, 422, "inputs[0] must be a string or a pair"),
        ("text-classification", {"inputs": "a", "top_k": 0}, 422, "top_k must be an int >= 1; got 0"),
        ("text-classification", {"inputs": "a", "raw_scores": 1}, 422, "raw_scores must be true or false"),
        ("fill-mask", {"inputs": "no mask"}, 422, "no mask token ([MASK]) found in the input 'no mask'"),
        ("fill-mask", {"inputs": "a [MASK]", "tokenizer_kwargs": {}}, 422, "unknown ['tokenizer_kwargs']"),
        ("question-answering", {"inputs": {"question": "q"}}, 422, "missing ['context']"),
        ("question-answering", {"inputs": {"question": "", "context": "c"}}, 422, "`question` cannot be empty"),
        (
            "question-answering",
            {"inputs": {"question": "q", "context": CONTEXT * 3}, "max_seq_len": 100},
            413,
            "at most 64",
        ),
        ("zero-shot-classification", {"inputs": "a"}, 422, "needs at least one candidate label"),
        ("token-classification", {"inputs": "a", "aggregation_strategy": "best"}, 422, "aggregation_strategy must"),
        ("cross-encoder", {"query": "q", "texts": "a"}, 422, "texts must be a list; got a string"),
        ("cross-encoder", {"query": 1, "texts": ["a"]}, 422, "query must be a string; got a number"),
        ("cross-encoder", {"query": "q", "texts": []}, 400, "texts is an empty list"),
    ],
)
def test_bad_task_requests(clients, task, body, status, message):
    route = "/rerank" if "query" in body else "/predict"
    got, out = post(clients[task], route, body)
    assert got == status and message in out["error"], out


def test_huge_bodies_are_refused_before_they_are_read(clients):
    client = clients["sentence-embedding"]
    big = json.dumps({"inputs": "a" * 5000}).encode()
    response = client.post("/embed", content=big)
    assert response.status_code == 413 and "the body is 5014 bytes; this server takes at most 4096" in response.text

    def chunks():  # no Content-Length: counted while reading
        for _ in range(10):
            yield b" " * 1000

    response = client.post("/embed", content=chunks())
    assert response.status_code == 413 and response.json()["error"] == "the body exceeds 4096 bytes (--max-body-bytes)"


def test_unknown_route_and_method(clients):
    client = clients["sentence-embedding"]
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.json()["error_type"] == "NotFound"
    assert "routes: /embed, /embed_all, /health" in response.json()["error"]
    response = client.get("/embed")
    assert response.status_code == 405 and response.json() == {
        "error": "/embed does not take GET",
        "error_type": "MethodNotAllowed",
    }


def test_model_error_is_424_for_that_request_only(clients):
    client = clients["feature-extraction"]
    status, out = post(client, "/embed", {"inputs": ["fine", "this is poison"]})
    assert status == 424 and out["error_type"] == "Backend" and "poisoned batch" in out["error"]
    assert post(client, "/embed", {"inputs": ["fine"]})[0] == 200
    assert client.get("/health").status_code == 200


def test_non_finite_output_is_424(tok):
    pipe = make(FeatureExtractionPipeline, tok)
    pipe.runner.table[:] = np.nan
    with TestClient(create_app(pipe)) as client:
        status, out = post(client, "/embed", {"inputs": "a"})
    assert status == 424 and out["error"] == "the model gave a non-finite score (NaN or infinity)"


def test_serve_imports_no_web_framework():
    import subprocess

    code = (
        "import sys, bert_core.serve, bert_core.serve.cli; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'prometheus_client', 'fastapi', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=DATA.parents[2])
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-1000:]
