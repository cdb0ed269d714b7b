"""Reports CI systems read: JUnit XML (well-formed, counts that match, failures that carry the field and the delta),
the Markdown job summary, and the CLI flags that write them (next to --json)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conformance import run_parity
from conformance.cli import main
from conformance.reports import junit_xml, markdown

TEXTS = ["hello world", {"text": "what is the capital of france?", "text_pair": "paris"}, "the test"]


def _parse(data: bytes):
    root = ET.fromstring(data)  # well-formed, or this raises
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    for node in (root, suite):
        assert int(node.get("tests")) == len(cases)
        assert int(node.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(node.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
        assert float(node.get("time")) >= 0
    return suite, cases


@pytest.fixture(scope="module")
def broken_report(tiny_ckpt, backends):
    """Parity on user inputs where the last backend got one perturbed weight (and the classifier head raises)."""
    victim = backends[-1]

    def hook(backend, head, weights):
        if backend != victim:
            return weights
        if head == "BertForSequenceClassification":
            raise RuntimeError("cannot build this head")
        key = "bert.encoder.layer.1.output.dense.weight"
        weights[key] = weights[key] + np.float32(1e-2) * np.sign(weights[key])
        return weights

    heads = ["BertForMaskedLM", "BertForSequenceClassification"]
    return run_parity(str(tiny_ckpt), backends=backends, heads=heads, inputs=TEXTS, weight_hook=hook)


def test_junit_one_testcase_per_cell_and_failures_carry_the_field(broken_report, backends):
    report = broken_report
    suite, cases = _parse(junit_xml(report))
    assert len(cases) == len(report.summary())
    names = {c.get("name") for c in cases}
    victim = backends[-1]
    bad_pair = f"{backends[0]}~{victim}"
    assert f"BertForMaskedLM [{backends[0]}~{backends[1]}]" in names and f"BertForMaskedLM [{bad_pair}]" in names
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    failure = failed[f"BertForMaskedLM [{bad_pair}]"]
    assert failure.get("type") == "ParityMismatch"
    first = next(r for r in report.failures if r.pair == bad_pair and r.head == "BertForMaskedLM")
    assert f"first {first.path}: max|Δ| {first.max_abs:.3g} > {first.limit:.3g}" in failure.get("message")
    for name in ("input0", "input1", "input2"):
        assert f"{bad_pair} BertForMaskedLM/{name}/logits: max|Δ|" in failure.text
    assert 'input "what is the capital of france? | paris"' in failure.text
    # a backend that raised is an <error> naming it, not a mismatch
    errors = [c for c in cases if c.find("error") is not None]
    assert [c.get("name") for c in errors] == [f"BertForSequenceClassification [{victim}]"]
    assert "cannot build this head" in errors[0].find("error").get("message")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["backends"] == ",".join(backends) and props["tolerance.rtol"] == "1e-05"
    # passing cells say how close they were
    ok = next(c for c in cases if c.get("name") == f"BertForMaskedLM [{backends[0]}~{backends[1]}]")
    if victim != backends[1]:
        assert ok.find("failure") is None and float(ok.find("properties/property[@name='max_abs']").get("value")) < 1e-4


def test_markdown_summary(broken_report):
    text = markdown(broken_report)
    assert text.startswith("## bert parity: FAIL ❌")
    assert "| head / check |" in text and "| BertForMaskedLM |" in text and "❌" in text
    assert "failing field(s)" in text and "`BertForMaskedLM/input0/logits`" in text
    assert "max\\|Δ\\|" in text  # pipes inside cells are escaped: the table keeps its columns
    for line in text.splitlines():
        if line.startswith("| BertForMaskedLM |"):
            assert line.count(" | ") == len(broken_report.layout()[1])


def test_cli_writes_junit_markdown_and_json(tiny_ckpt, backends, tmp_path, capsys):
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("\n".join(json.dumps({"text": t} if isinstance(t, str) else t) for t in TEXTS) + "\n")
    junit, md, js = tmp_path / "r.xml", tmp_path / "r.md", tmp_path / "r.json"
    argv = ["parity", str(tiny_ckpt), "--inputs", str(inputs), "--backends", ",".join(backends[:2]), "-q"]
    code = main(argv + ["--junit", str(junit), "--markdown", str(md), "--json", str(js)])
    out = capsys.readouterr().out
    assert code == 0, out
    _, cases = _parse(junit.read_bytes())
    assert [c.get("name") for c in cases] == [f"BertForMaskedLM [{backends[0]}~{backends[1]}]"]
    assert md.read_text().startswith("## bert parity: PASS ✅")
    data = json.loads(js.read_text())
    assert data["passed"] and [i["name"] for i in data["inputs"]] == ["line1", "line2", "line3"]
    assert {r["case"] for r in data["rows"]} == {"line1", "line2", "line3"}
    assert not list(tmp_path.glob(".*tmp-*"))  # atomic writes leave no temporaries behind
    # a failing run still writes every report, and exits 1
    code = main(argv + ["--tolerance", "0", "--junit", str(junit)])
    assert code == 1
    suite, _ = _parse(junit.read_bytes())
    assert int(suite.get("failures")) == 1
