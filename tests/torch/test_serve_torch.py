"""``bert serve`` on a real torch model: a real uvicorn process on a free local port answering concurrent clients
with what the in-process pipeline gives, and the command's exit status on user errors.

Tiny checkpoints (random body, hidden 32, MiniLM's tokenizer; tests/data/pipelines/models.py).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines"
ROOT = DATA.parents[2]
sys.path.insert(0, str(DATA))

from models import SST_LABELS, make_checkpoint  # noqa: E402

from bert_core.pipelines import pipeline  # noqa: E402
from bert_core.serve import cli as serve_cli  # noqa: E402

TEXTS = [f"sentence number {i} " + "word " * (i * 7 % 50) for i in range(24)]


@pytest.fixture(scope="module")
def embed_dir(tmp_path_factory, minilm_dir):
    return make_checkpoint(tmp_path_factory.mktemp("serve") / "base", "BertModel", minilm_dir, tiny=True, seed=5)


def start_server(model_dir: Path, *args: str, timeout: float = 120.0):
    """A ``bert serve`` process on a free port of 127.0.0.1; (process, base url) once /health answers 200."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "bert_core.cli", "serve", str(model_dir), "--port", "0", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        line = ""
        while "at http://" not in line:  # the banner carries the port the kernel chose
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"bert serve did not start: {line}{process.stderr.read() if process.poll() is not None else ''}"
                )
            line = process.stderr.readline()
        url = re.search(r"at (http://\S+)", line).group(1)
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("bert serve did not become healthy in time")
    except BaseException:
        stop_server(process)
        raise


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def test_real_server_answers_concurrent_clients_like_the_pipeline(embed_dir):
    pipe = pipeline("sentence-embedding", embed_dir, backend="torch", progress=False)
    want = pipe(TEXTS, normalize=True)
    process, url = start_server(embed_dir, "--task", "sentence-embedding", "--backend", "torch", "--max-wait-ms", "20")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:

            def embed(i):
                return client.post("/embed", json={"inputs": TEXTS[i]})

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                responses = list(pool.map(embed, range(len(TEXTS))))
            assert [r.status_code for r in responses] == [200] * len(TEXTS)
            got = np.array([r.json()[0] for r in responses])
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
            # a bad request on the real server: a JSON error, and the worker lives on
            bad = client.post("/embed", content=b"{oops")
            assert bad.status_code == 400 and bad.json()["error_type"] == "InvalidJSON"
            assert client.post("/embed", json={"inputs": ["a", "b"]}).status_code == 200
            metrics = client.get("/metrics").text
            calls = float(re.search(r"^bert_serve_batch_size_count (\S+)$", metrics, re.M).group(1))
            rows = float(re.search(r"^bert_serve_batch_size_sum (\S+)$", metrics, re.M).group(1))
            assert rows == len(TEXTS) + 2 and calls < rows  # concurrent requests shared model calls
            assert client.get("/info").json()["backend"] == "torch"
    finally:
        stop_server(process)
    assert process.returncode in (0, -signal.SIGTERM)  # a graceful stop (uvicorn re-raises the signal it caught)


def test_user_errors_exit_2_in_one_line(embed_dir, tmp_path, capsys):
    def run(*argv):
        code = serve_cli.main(list(argv))
        return code, capsys.readouterr().err.strip()

    code, err = run(str(embed_dir), "--task", "summarization")
    assert code == 2 and err.startswith("bert serve: error: unknown task 'summarization'") and "\n" not in err
    code, err = run(str(tmp_path / "missing"), "--task", "sentence-embedding", "--port", "0")
    assert code == 2 and "does not exist" in err and "\n" not in err
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = str(taken.getsockname()[1])
        code, err = run(str(embed_dir), "--task", "sentence-embedding", "--port", port)
        assert code == 2 and err == f"bert serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    finally:
        taken.close()
    code, err = run(str(embed_dir), "--task", "sentence-embedding", "--max-batch-tokens", "0", "--port", "0")
    assert code == 2 and err == "bert serve: error: max_batch_tokens must be an int >= 1; got 0"
    code, err = run(str(embed_dir), "--task", "sentence-embedding", "--max-batch-tokens", "100", "--port", "0")
    assert code == 2 and "max_batch_tokens must hold one input of the longest length: >= 512" in err


def test_rerank_on_a_cross_encoder(tmp_path, minilm_dir):
    from starlette.testclient import TestClient

    from bert_core.serve import create_app

    directory = make_checkpoint(
        tmp_path / "ce", "BertForSequenceClassification", minilm_dir, tiny=True, seed=2, id2label=SST_LABELS
    )
    pipe = pipeline("text-classification", directory, backend="torch", progress=False)
    texts = ["a cat sat", "dogs bark loudly at night", "the weather"]
    with TestClient(create_app(pipe)) as client:
        out = client.post("/rerank", json={"query": "pets", "texts": texts}).json()
        predicted = client.post("/predict", json={"inputs": [["pets", t] for t in texts]}).json()
    positive = [next(p["score"] for p in preds if p["label"] == "POSITIVE") for preds in predicted]
    assert [r["index"] for r in out] == list(np.argsort(positive)[::-1])
    assert [r["score"] for r in out] == pytest.approx(sorted(positive, reverse=True), rel=1e-6)
