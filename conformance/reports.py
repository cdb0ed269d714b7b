"""Reports for CI systems: JUnit XML (``--junit``) and a Markdown job summary (``--markdown``).

Both are views of :meth:`conformance.runner.Report.summary`: one cell per table line and column, i.e. per head x check
x backend pair (``BertForMaskedLM [torch~tf]``, ``grads BertForMaskedLM [torch~flax]``, ``golden BertModel
[golden~tf]``, ``save/load chain [all]``). In JUnit a cell is a ``<testcase>``: a ``<failure>`` names every failing
field of the cell with its max|Δ| and limit; a backend that raised is an ``<error>``. Written atomically.
"""

from __future__ import annotations

import math
import os
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Dict, List, Tuple, Union

from bert_core.io_utils import atomic_write_bytes, atomic_write_text

PathLike = Union[str, os.PathLike]
#: failing fields listed in one JUnit failure / the Markdown summary
MAX_LISTED = 50


def _delta(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


def _row_line(row) -> str:
    note = f" ({row.note})" if row.note else ""
    return f"{row.pair} {row.path}: max|Δ| {_delta(row.max_abs)} > {_delta(row.limit)}{note}"


def cells(report) -> "Dict[Tuple[str, str], List]":
    """(label, pair) -> the rows of that cell, in table order."""
    out: Dict[Tuple[str, str], List] = {key: [] for key in report.summary()}
    for row in report.rows:
        out[report.cell(row)].append(row)
    return out


def junit_xml(report, suite_name: str = "bert parity") -> bytes:
    """The report as JUnit XML bytes: one ``<testsuite>``, one ``<testcase>`` per (head / check, pair) cell."""
    groups = cells(report)
    failures = errors = 0
    cases = []
    for (label, pair), rows in groups.items():
        case = ET.Element(
            "testcase",
            classname=f"bert_parity.{label.replace(' ', '_')}",
            name=f"{label} [{pair}]",
            time="0.000",
        )
        worst = max((r.max_abs for r in rows), default=0.0)
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="max_abs", value=_delta(worst))
        ET.SubElement(props, "property", name="fields", value=str(len(rows)))
        bad = [r for r in rows if not r.passed]
        if bad:
            raised = all(r.section == "error" for r in bad)
            first = bad[0]
            if raised:
                errors += 1
                message = f"{first.pair} raised in {first.path}: {first.note}"
            else:
                failures += 1
                message = (
                    f"{len(bad)} field(s) differ; first {first.path}: max|Δ| {_delta(first.max_abs)} > "
                    f"{_delta(first.limit)}"
                )
            node = ET.SubElement(
                case,
                "error" if raised else "failure",
                message=message,
                type="BackendError" if raised else "ParityMismatch",
            )
            lines = [_row_line(r) for r in bad[:MAX_LISTED]]
            if len(bad) > MAX_LISTED:
                lines.append(f"... and {len(bad) - MAX_LISTED} more (see --json)")
            node.text = "\n".join(lines)
        cases.append(case)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    totals = dict(
        tests=str(len(cases)), failures=str(failures), errors=str(errors), skipped="0", time=f"{report.seconds:.3f}"
    )
    root = ET.Element("testsuites", name=suite_name, **totals)
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"{suite_name}: {report.checkpoint}",
        timestamp=stamp,
        hostname=socket.gethostname(),
        **totals,
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("checkpoint", report.checkpoint),
        ("backends", ",".join(report.backends)),
        ("heads", ",".join(report.heads)),
        ("tolerance.rtol", f"{report.tolerance.rtol:g}"),
        ("tolerance.rule", "max|a-b| <= rtol*(1+max|a|)"),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    train = getattr(report, "train_tolerance", None)
    if train is not None:  # training parity ran (bert parity --train-steps)
        for key, value in train.as_dict().items():
            ET.SubElement(
                props,
                "property",
                name=f"train_tolerance.{key}",
                value=f"{value:g}" if isinstance(value, float) else str(value),
            )
    suite.extend(cases)
    if report.notes:
        ET.SubElement(suite, "system-out").text = "\n".join(report.notes)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(report, path: PathLike) -> None:
    atomic_write_bytes(path, junit_xml(report))


def _md(text: str) -> str:
    """A Markdown table cell: pipes escaped, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report) -> str:
    """A job summary (GitHub ``$GITHUB_STEP_SUMMARY``, GitLab, ...): verdict, the table, the failing fields."""
    summary = report.summary()
    labels, cols = report.layout()
    failures = report.failures
    verdict = "PASS" if report.passed else "FAIL"
    lines = [
        f"## bert parity: {verdict} {'✅' if report.passed else '❌'}",
        "",
        report.title() + f" · {len(report.rows) - len(failures)}/{len(report.rows)} "
        f"fields agree · {report.seconds:.1f} s",
        "",
    ]
    lines += [f"- {n}" for n in report.notes]
    if report.notes:
        lines.append("")
    lines.append("| head / check | " + " | ".join(_md(c) for c in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for label in labels:
        row = []
        for c in cols:
            if (label, c) in summary:
                worst, ok, _ = summary[(label, c)]
                row.append(f"{_delta(worst)} {'✅' if ok else '❌'}")
            else:
                row.append("–")
        lines.append(f"| {_md(label)} | " + " | ".join(row) + " |")
    for (label, pair), (worst, ok, _) in summary.items():
        if pair == "all":
            lines.append(
                f"\n{label} {' > '.join(report.backends + report.backends[:1])}: weights bit-identical + "
                f"outputs {_delta(worst)} {'✅' if ok else '❌'}"
            )
    if failures:
        lines += [
            "",
            f"### {len(failures)} failing field(s)",
            "",
            "| pair | field | max\\|Δ\\| | limit | note |",
            "|---|---|---|---|---|",
        ]
        for r in failures[:MAX_LISTED]:
            lines.append(
                f"| {_md(r.pair)} | `{_md(r.path)}` | {_delta(r.max_abs)} | {_delta(r.limit)} | {_md(r.note)} |"
            )
        if len(failures) > MAX_LISTED:
            lines.append(f"\n... and {len(failures) - MAX_LISTED} more (see the JSON report)")
    return "\n".join(lines) + "\n"


def write_markdown(report, path: PathLike) -> None:
    atomic_write_text(path, markdown(report))
