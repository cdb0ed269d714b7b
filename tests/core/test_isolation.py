"""Import isolation: bert_core loads no framework; each backend loads only its own. Checked in fresh subprocesses."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = {"torch": "torch", "tensorflow": "tensorflow", "keras": "keras", "jax": "jax", "flax": "flax"}


def loaded_after(statement: str) -> set:
    code = (
        f"import sys, json; {statement}; print(json.dumps(sorted(m for m in {list(FRAMEWORKS)!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_bert_core_loads_no_framework():
    modules = [p.stem for p in (ROOT / "bert_core").glob("*.py") if p.stem not in ("__init__", "__main__")]
    stmt = "; ".join(f"import bert_core.{m}" for m in modules)
    assert loaded_after("import bert_core; " + stmt) == set()
    assert loaded_after("from bert_core.cli import main; main(['env'])") == set()


@pytest.mark.parametrize(
    "package, own, framework",
    [
        ("bert_torch", {"torch"}, "torch"),
        ("bert_tf", {"tensorflow", "keras"}, "tensorflow"),
        ("bert_flax", {"jax", "flax"}, "flax"),
    ],
)
def test_backend_loads_only_its_framework(package, own, framework):
    if importlib.util.find_spec(framework) is None:
        # e.g. tox -e core: the backend must say which extra to install
        code = f"import {package}"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and "pip install 'multi-bert[" in out.stderr, out.stderr[-1000:]
        return
    loaded = loaded_after(f"import {package}")
    assert own <= loaded, f"{package} did not load {own}"
    assert not (loaded - own), f"{package} also loaded {loaded - own}"


def test_extras_keep_frameworks_apart():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda reqs: {r.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in reqs}
    core = names(meta["dependencies"])
    assert core == {
        "numpy",
        "safetensors",
        "huggingface_hub",
        "tokenizers",
        "scikit-learn",
        "scipy",
        "tqdm",
        "matplotlib",
    }
    extras = {k: names(v) for k, v in meta["optional-dependencies"].items()}
    assert "torch" in extras["torch"] and not extras["torch"] & {
        "tensorflow",
        "keras",
        "jax",
        "flax",
        "tensorflow-text",
    }
    assert "tensorflow" in extras["tf"] and not extras["tf"] & {"torch", "jax", "flax"}
    assert "flax" in extras["flax"] and not extras["flax"] & {"torch", "tensorflow", "keras"}
