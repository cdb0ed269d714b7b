"""``bert serve`` /embed on every installed backend gives what that backend's pipeline gives (in process, ASGI)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bert_core.backends import BACKEND_NAMES, installed_backends

pytest.importorskip("starlette")
pytest.importorskip("prometheus_client")

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines"
sys.path.insert(0, str(DATA))

from models import make_checkpoint  # noqa: E402

TEXTS = ["a cat", "the quick brown fox jumps over the lazy dog", "word " * 30]


@pytest.fixture(scope="module")
def embed_dir(tmp_path_factory, minilm_dir):
    return make_checkpoint(tmp_path_factory.mktemp("serve") / "base", "BertModel", minilm_dir, tiny=True, seed=5)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_embed_equals_the_pipeline(embed_dir, backend):
    if backend not in installed_backends():
        pytest.skip(f"{backend} is not installed")
    from starlette.testclient import TestClient

    from bert_core.pipelines import pipeline
    from bert_core.serve import create_app

    pipe = pipeline("sentence-embedding", embed_dir, backend=backend, progress=False)
    with TestClient(create_app(pipe)) as client:
        response = client.post("/embed", json={"inputs": TEXTS})
        info = client.get("/info").json()
    assert response.status_code == 200 and info["backend"] == backend
    np.testing.assert_allclose(response.json(), pipe(TEXTS, normalize=True), rtol=1e-5, atol=1e-6)
