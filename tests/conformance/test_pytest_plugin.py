"""The pytest plugin: a user's pytest (a subprocess, loading the plugin through its ``pytest11`` entry point) runs
``bert_parity`` tests and ``--bert-parity`` items that pass, fail and skip as they should; the items it plans are the
cells the runner reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import tomllib

from conformance import run_parity
from conformance.default import default_config
from conformance.golden import read_golden
from conformance.pytest_plugin import plan_cells

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "bert_parity"


def _declared_entry_point() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]["entry-points"]["pytest11"][PLUGIN]


def test_entry_point_is_declared():
    assert _declared_entry_point() == "conformance.pytest_plugin"


def _env(tmp_path) -> dict:
    """The user's environment: this source tree importable, and the plugin registered as pip registers it (an
    editable install made before the entry point existed gets the same entry_points.txt pip would write)."""
    paths = [str(ROOT)]
    if PLUGIN not in {ep.name for ep in entry_points(group="pytest11")}:
        dist = tmp_path / "site" / "multi_bert_plugin-0.0.dist-info"
        dist.mkdir(parents=True, exist_ok=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: multi-bert-plugin\nVersion: 0.0\n")
        (dist / "entry_points.txt").write_text(f"[pytest11]\n{PLUGIN} = {_declared_entry_point()}\n")
        paths.append(str(dist.parent))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _pytest(tmp_path, args, timeout=600):
    """Run pytest in ``tmp_path / 'user'`` (its own rootdir); returns (exit code, output, {test name: outcome})."""
    user = tmp_path / "user"
    user.mkdir(exist_ok=True)
    report = tmp_path / f"junit-{len(list(tmp_path.glob('junit-*')))}.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", f"--junitxml={report}"] + args
    proc = subprocess.run(cmd, cwd=user, env=_env(tmp_path), capture_output=True, text=True, timeout=timeout)
    outcomes = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
            outcomes[case.get("name")] = (kind, next((c.get("message") or "" for c in case if c.tag == kind), ""))
    return proc.returncode, proc.stdout + proc.stderr, outcomes


@pytest.fixture(scope="module")
def user_files(tiny_ckpt, backends, tmp_path_factory):
    """The user's inputs and a golden file of the tiny checkpoint made by the first backend."""
    tmp = tmp_path_factory.mktemp("plugin-files")
    inputs = tmp / "parity.jsonl"
    rows = [{"text": "hello world"}, {"id": "q", "text": "what is the capital?", "text_pair": "paris"}]
    inputs.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    golden = tmp / "tiny.golden.safetensors"
    assert run_parity(str(tiny_ckpt), backends=backends[:1], inputs=str(inputs), save_golden=str(golden)).passed
    return inputs, golden


USER_TESTS = """
from conformance.pytest_plugin import assert_parity

CKPT, INPUTS, GOLDEN, BACKENDS = {ckpt!r}, {inputs!r}, {golden!r}, {backends!r}


def test_parity_passes(bert_parity):
    report = bert_parity(CKPT, inputs=INPUTS, backends=BACKENDS)
    assert report.passed and bert_parity is assert_parity


def test_parity_fails_readably(bert_parity):
    bert_parity(CKPT, inputs=["hello world", "the test"], backends=BACKENDS, tolerance=0)


def test_golden_checks_a_single_backend(bert_parity):
    bert_parity(CKPT, golden=GOLDEN, backends=BACKENDS[:1])


def test_one_backend_without_golden_skips(bert_parity):
    bert_parity(CKPT, inputs=INPUTS, backends=BACKENDS[:1])
"""


def test_plugin_in_a_users_pytest(tiny_ckpt, backends, user_files, tmp_path):
    inputs, golden = user_files
    two = backends[:2]
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "test_ours.py").write_text(
        USER_TESTS.format(ckpt=str(tiny_ckpt), inputs=str(inputs), golden=str(golden), backends=two)
    )
    option = ["--bert-parity", str(tiny_ckpt), "--bert-parity-inputs", str(inputs)]
    option += ["--bert-parity-golden", str(golden), "--bert-parity-backends", ",".join(two)]
    code, out, got = _pytest(tmp_path, ["test_ours.py"] + option)
    assert code == 1, out[-4000:]  # one test fails on purpose
    pair = f"{two[0]}~{two[1]}"
    expected = {
        "test_parity_passes": "passed",
        "test_parity_fails_readably": "failure",
        "test_golden_checks_a_single_backend": "passed",
        "test_one_backend_without_golden_skips": "skipped",
        "golden_tokenizer[golden~tokenizer]": "passed",
        f"BertForMaskedLM[{pair}]": "passed",
        f"golden_BertForMaskedLM[golden~{two[0]}]": "passed",
        f"golden_BertForMaskedLM[golden~{two[1]}]": "passed",
        "coverage": "passed",
    }
    assert {k: v[0] for k, v in got.items()} == expected, out[-4000:]
    assert (
        "bert parity needs two installed backends, or a golden file" in got["test_one_backend_without_golden_skips"][1]
    )
    # the failure reads as the fields that differ, with pair, input and delta
    assert f"{pair}       BertForMaskedLM/input0/logits: max|Δ|" in out and '> 0 (input "hello world")' in out
    assert f"bert-parity::BertForMaskedLM[{pair}]" in out  # node ids read bert-parity::<cell>


def test_bert_parity_option_failing_skipping_and_usage_errors(tiny_ckpt, backends, user_files, tmp_path):
    inputs, _ = user_files
    two = backends[:2]
    pair = f"{two[0]}~{two[1]}"
    base = ["--bert-parity", str(tiny_ckpt), "--bert-parity-inputs", str(inputs)]
    # failing items: one per cell, each listing its failing fields; -k selects items like any test
    code, out, got = _pytest(
        tmp_path,
        base + ["--bert-parity-backends", ",".join(two), "--bert-parity-tolerance", "0", "-k", "BertForMaskedLM"],
    )
    assert code == 1 and {k: v[0] for k, v in got.items()} == {f"BertForMaskedLM[{pair}]": "failure"}, out[-3000:]
    assert f"2 of 2 field(s) fail in BertForMaskedLM [{pair}]" in out and "BertForMaskedLM/q/logits" in out
    # one backend and no golden file: one skipped item that says why, never a silent pass
    code, out, got = _pytest(tmp_path, base + ["--bert-parity-backends", two[0]])
    assert code == 0 and got == {"skipped": ("skipped", got["skipped"][1])}, out[-3000:]
    assert f"only {two[0]} is installed among the selected {two[0]}" in got["skipped"][1]
    # a bad option is a usage error at collection (exit 4), named like the CLI names it
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": \n')
    code, out, _ = _pytest(tmp_path, ["--bert-parity", str(tiny_ckpt), "--bert-parity-inputs", str(bad)])
    assert code == 4 and f"--bert-parity: {bad}:2: not valid JSON" in out, out[-3000:]
    code, out, _ = _pytest(tmp_path, base + ["--bert-parity-heads", "BertForEverything"])
    assert code == 4 and "unknown head 'BertForEverything'" in out, out[-3000:]


def test_planned_items_are_the_reported_cells(default_report, backends, tiny_ckpt, user_files):
    """The items exist before the run: plan_cells must name exactly the cells the runner reports."""
    planned = plan_cells(default_config(), backends)
    assert [(c[0], c[1]) for c in planned] == list(default_report.summary())
    inputs, golden = user_files
    report = run_parity(str(tiny_ckpt), backends=backends, inputs=str(inputs), golden=str(golden))
    from bert_core.config import BertConfig

    planned = plan_cells(BertConfig.from_pretrained(tiny_ckpt), backends, golden=read_golden(golden))
    assert sorted((c[0], c[1]) for c in planned) == sorted(report.summary())
    planned = plan_cells(BertConfig.from_pretrained(tiny_ckpt), backends, user_inputs=True)
    assert [(c[0], c[1]) for c in planned] == [k for k in report.summary() if not k[0].startswith("golden")]


def test_usage_text_lists_the_options(tmp_path):
    code, out, _ = _pytest(tmp_path, ["--help"], timeout=120)
    assert code == 0
    for option in ("--bert-parity=CHECKPOINT", "--bert-parity-inputs=FILE", "--bert-parity-golden=FILE"):
        assert option in out
    assert "cross-framework BERT parity (multi-bert)" in out


def test_plugin_and_new_modules_load_no_framework():
    """pytest loads the plugin in every session of an env with multi-bert: it must not import torch/tf/jax."""
    modules = ["pytest_plugin", "input_runner", "inputs", "golden", "reports"]
    code = (
        "import sys, json; "
        + "; ".join(f"import conformance.{m}" for m in modules)
        + "; print(json.dumps([m for m in ('torch', 'tensorflow', 'keras', 'jax', 'flax') if m in sys.modules]))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
