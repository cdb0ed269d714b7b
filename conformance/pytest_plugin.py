"""pytest plugin of multi-bert (entry point ``pytest11``: ``bert_parity``): parity checks from a team's own suite.

In a test::

    def test_our_model_agrees(bert_parity):
        bert_parity("models/ours", inputs="tests/parity.jsonl", golden="tests/ours.golden.safetensors")

``bert_parity`` is :func:`assert_parity` (also importable from here): it runs ``conformance.run_parity`` on the
installed backends and raises AssertionError listing the failing fields (head/input/field, pair, max|Δ|, limit).
With fewer than two installed backends and no golden file it skips, saying what to install: never a silent pass.

On the command line, ``pytest --bert-parity CHECKPOINT`` (``default``: the embedded default checkpoint) adds the
battery as test items, one per head x check x backend pair (the table's cells, the JUnit testcases of
``bert parity --junit``), e.g. ``bert-parity::BertForMaskedLM[torch~tf]``; ``--bert-parity-inputs``,
``--bert-parity-golden``, ``--bert-parity-backends``, ``--bert-parity-heads`` and ``--bert-parity-tolerance`` are
``bert parity``'s ``--inputs``, ``--golden``, ``--backends``, ``--heads`` and ``--tolerance``. The battery runs once,
when the first of its items runs.

Nothing here imports a framework (pytest loads this module in every session of an environment with multi-bert).
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import pytest

#: name of the collector that holds the ``--bert-parity`` items
COLLECTOR_NAME = "bert-parity"
#: a planned cell: (table label, pair, head or None)
Cell = Tuple[str, str, Optional[str]]


# ------------------------------------------------------------------------------------------------------ options


def _names(value: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(v).strip() for v in items if str(v).strip()]
    return items or None


def _heads(value: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    from .cli import parse_heads

    names = _names(value)
    return None if names is None else parse_heads(",".join(names))


def _tolerance(value: Any):
    from .tolerance import parse_tolerance

    return None if value is None else parse_tolerance(value)


def installed_selection(backends: Union[None, str, Sequence[str]] = None) -> Tuple[List[str], List[str]]:
    """(installed backends among ``backends`` (default all), install hints of the requested ones that are missing).

    Raises:
        BackendUnavailable: an unknown backend name (a typo is an error, not a skip).
    """
    from bert_core.backends import BACKEND_NAMES, BACKENDS, missing_modules, normalize_backend_name

    wanted = [normalize_backend_name(n) for n in (_names(backends) or BACKEND_NAMES)]
    have = [n for n in dict.fromkeys(wanted) if not missing_modules(n)]
    hints = [f"{n} ({BACKENDS[n].install_hint})" for n in dict.fromkeys(wanted) if missing_modules(n)]
    return have, hints


def skip_reason(
    backends: Sequence[str], hints: Sequence[str], golden: Any, selected: Optional[Sequence[str]] = None
) -> Optional[str]:
    """Why parity cannot run here (fewer than two backends and no golden file), or None."""
    if golden is not None and backends:
        return None
    if len(backends) >= 2:
        return None
    have = f"only {backends[0]} is" if backends else "no backend is"
    have += f" installed among the selected {', '.join(selected)}" if selected else " installed"
    missing = f"; missing: {', '.join(hints)}" if hints else ""
    return (
        f"bert parity needs two installed backends, or a golden file to compare one with: {have}{missing} "
        f"(pip install 'multi-bert[torch,tf]')"
    )


def failure_message(report, limit: int = 15) -> str:
    """A few readable lines: what failed, where, by how much."""
    failures = report.failures
    lines = [
        f"bert parity failed on {report.checkpoint} ({', '.join(report.backends)}): {len(failures)} of "
        f"{len(report.rows)} fields differ beyond max|Δ| <= {report.tolerance.rtol:g}*(1+max|ref|)"
    ]
    for row in failures[:limit]:
        note = f" ({row.note})" if row.note else ""
        lines.append(f"  {row.pair:<14} {row.path}: max|Δ| {row.max_abs:.3g} > {row.limit:.3g}{note}")
    if len(failures) > limit:
        lines.append(f"  ... and {len(failures) - limit} more")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ the fixture


def assert_parity(
    checkpoint: Any,
    inputs: Any = None,
    golden: Any = None,
    backends: Union[None, str, Sequence[str]] = None,
    heads: Union[None, str, Sequence[str]] = None,
    tolerance: Any = None,
):
    """Run ``bert parity`` on ``checkpoint`` and fail the test with a readable message if any field disagrees.

    Args:
        checkpoint: a directory or hub id; None for the embedded default.
        inputs: a JSONL file or a list of texts / ``{"text": ..., "text_pair": ...}`` / ``{"input_ids": [...]}``
            (None: the built-in battery: every head, gradients, one SGD step, the save/load chain).
        golden: a golden file (``bert parity --save-golden``) to compare every backend with (its inputs are used
            when ``inputs`` is None).
        backends: names or "torch,tf" (default every installed); requested but missing ones are left out.
        heads: names or aliases (default: the config's architectures for inputs, all heads for the battery).
        tolerance: rtol (float, str or Tolerance); default the library's, or the golden file's.

    Returns:
        the passing :class:`conformance.runner.Report`.

    Raises:
        AssertionError: the failing fields (pair, head/input/field, max|Δ|, limit).
        pytest.skip.Exception: fewer than two installed backends and no golden file.
    """
    __tracebackhide__ = True
    from .runner import run_parity

    have, hints = installed_selection(backends)
    reason = skip_reason(have, hints, golden, _names(backends))
    if reason:
        pytest.skip(reason)
    report = run_parity(
        checkpoint,
        backends=have,
        heads=_heads(heads),
        tolerance=_tolerance(tolerance),
        inputs=inputs,
        golden=golden,
    )
    if not report.passed:
        raise AssertionError(failure_message(report))
    return report


@pytest.fixture
def bert_parity():
    """:func:`assert_parity`: ``bert_parity(checkpoint, inputs=None, golden=None, backends=None, heads=None,
    tolerance=None)``."""
    return assert_parity


# ------------------------------------------------------------------------------------------------------ --bert-parity


def pytest_addoption(parser) -> None:
    group = parser.getgroup("bert-parity", "cross-framework BERT parity (multi-bert)")
    group.addoption(
        "--bert-parity",
        metavar="CHECKPOINT",
        help="add bert parity on CHECKPOINT (a directory, hub id, or 'default') as test items",
    )
    group.addoption("--bert-parity-inputs", metavar="FILE", help="JSONL inputs (as `bert parity --inputs`)")
    group.addoption("--bert-parity-golden", metavar="FILE", help="golden file to compare with (as `--golden`)")
    group.addoption("--bert-parity-backends", metavar="NAMES", help="e.g. torch,tf (default: installed)")
    group.addoption("--bert-parity-heads", metavar="NAMES", help="heads or aliases, comma-separated")
    group.addoption("--bert-parity-tolerance", metavar="RTOL", help="rtol (default 1e-5 or the golden file's)")


def plan_cells(
    config,
    backends: Sequence[str],
    heads: Optional[Sequence[str]] = None,
    *,
    user_inputs: bool = False,
    golden=None,
    grads: bool = True,
    chain: bool = True,
) -> List[Cell]:
    """The cells (table label, pair, head) a run will report, known before it runs: one test item each.

    Mirrors conformance.runner (battery) and conformance.input_runner (user inputs / golden); the tests hold the two
    to the same cells.
    """
    from bert_core.weights import HEADS

    from .cases import DECODER_HEADS, GRAD_HEADS
    from .input_runner import heads_from_config

    pairs = [f"{a}~{b}" for a, b in itertools.combinations(backends, 2)]
    cells: List[Cell] = []
    if user_inputs or golden is not None:
        if heads is None:
            heads = list(golden.heads) if golden is not None else heads_from_config(config)
        if golden is not None and golden.has_texts:
            cells.append(("golden tokenizer", "golden~tokenizer", None))
        for head in heads:
            cells += [(head, p, head) for p in pairs]
            if golden is not None:
                cells += [(f"golden {head}", f"golden~{b}", head) for b in backends]
        return cells
    for head in HEADS if heads is None else heads:
        cells += [(head, p, head) for p in pairs]
        if head in DECODER_HEADS:
            cells += [(f"{head} cache=full", b, head) for b in backends]
        if grads and head in GRAD_HEADS:
            cells += [(f"{kind} {head}", p, head) for kind in ("grads", "sgd_step") for p in pairs]
    if chain:
        cells.append(("save/load chain", "all", None))
    return cells


def _error_section(row) -> str:
    return row.field.split(":", 1)[0]


def cell_rows(report, cell: Cell) -> Tuple[list, list]:
    """(rows of ``cell``, rows of a backend of the cell that raised where the cell's rows come from)."""
    label, pair, head = cell
    own, raised = [], []
    members = set(pair.split("~")) if "~" in pair else {pair}
    for row in report.rows:
        if row.section == "error":
            section = _error_section(row)
            if section == "chain":
                hit = label == "save/load chain"
            elif section in ("grads", "sgd_step"):
                hit = label in (f"grads {row.head}", f"sgd_step {row.head}")
            else:  # outputs / build: every cell of the head on that backend
                hit = head == row.head and label in (row.head, f"{row.head} cache=full", f"golden {row.head}")
            if hit and (pair == "all" or row.pair in members or f"golden~{row.pair}" == pair):
                raised.append(row)
            continue
        if report.cell(row) == (label, pair):
            own.append(row)
    return own, raised


class ParityFailure(AssertionError):
    """A failing --bert-parity item; shown as its message, without a traceback."""


class _ParityRun:
    """The parity run behind the items: made lazily, once, by the first item that runs."""

    def __init__(self, checkpoint, kwargs: Dict[str, Any]) -> None:
        self.checkpoint = checkpoint
        self.kwargs = kwargs
        self._report = None
        self._error: Optional[BaseException] = None

    def report(self):
        if self._report is None and self._error is None:
            from .runner import run_parity

            try:
                self._report = run_parity(self.checkpoint, **self.kwargs)
            except Exception as err:  # every item reports the same error, instead of re-running the battery
                self._error = err
        if self._error is not None:
            raise ParityFailure(f"bert parity could not run: {type(self._error).__name__}: {self._error}")
        return self._report


class ParityItem(pytest.Item):
    """One cell of the parity table (head x check x pair)."""

    def __init__(self, *, run: _ParityRun, cell: Optional[Cell], skip: Optional[str] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run = run
        self.cell = cell
        self.skip = skip
        self.planned: List[Cell] = []

    def runtest(self) -> None:
        if self.skip:
            pytest.skip(self.skip)
        report = self.run.report()
        if self.cell is None:  # the coverage item: no failing row may fall outside the planned items
            covered = set()
            for cell in self.planned:
                own, raised = cell_rows(report, cell)
                covered.update(id(r) for r in own + raised)
            stray = [r for r in report.failures if id(r) not in covered]
            if stray:
                lines = [f"{len(stray)} failing field(s) outside the planned items:"]
                lines += [f"  {r.pair:<14} {r.path}: max|Δ| {r.max_abs:.3g} > {r.limit:.3g}" for r in stray[:15]]
                raise ParityFailure("\n".join(lines))
            return
        own, raised = cell_rows(report, self.cell)
        bad = [r for r in own + raised if not r.passed]
        if bad:
            lines = [f"{len(bad)} of {len(own) + len(raised)} field(s) fail in {self.cell[0]} [{self.cell[1]}]:"]
            for row in bad[:15]:
                note = f" ({row.note})" if row.note else ""
                lines.append(f"  {row.pair:<14} {row.path}: max|Δ| {row.max_abs:.3g} > {row.limit:.3g}{note}")
            if len(bad) > 15:
                lines.append(f"  ... and {len(bad) - 15} more")
            raise ParityFailure("\n".join(lines))
        if not own:
            raise ParityFailure(f"no field was compared for {self.cell[0]} [{self.cell[1]}]")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ParityFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return (str(self.run.checkpoint or "<embedded default>"), None, f"bert parity: {self.name}")


def _item_name(cell: Cell) -> str:
    return f"{cell[0].replace('save/load ', 'save-load_').replace(' ', '_')}[{cell[1]}]"


def _make_items(session, config) -> list:
    """The --bert-parity items (raises pytest.UsageError on a bad option: a clear message at collection)."""
    from bert_core.config import BertConfig

    from .default import default_config
    from .golden import read_golden
    from .inputs import as_records

    option = config.getoption("bert_parity")
    checkpoint = None if option == "default" and not os.path.exists(option) else option
    inputs = config.getoption("bert_parity_inputs")
    golden_path = config.getoption("bert_parity_golden")
    try:
        have, hints = installed_selection(config.getoption("bert_parity_backends"))
        heads = _heads(config.getoption("bert_parity_heads"))
        tolerance = _tolerance(config.getoption("bert_parity_tolerance"))
        golden = read_golden(golden_path) if golden_path else None
        if inputs is not None:
            as_records(inputs)  # a bad file is a usage error now, not N failing items later
        bert_config = default_config() if checkpoint is None else BertConfig.from_pretrained(checkpoint)
        user = inputs is not None or golden is not None
        cells = plan_cells(bert_config, have, heads, user_inputs=user, golden=golden)
    except (OSError, ValueError, RuntimeError) as err:
        raise pytest.UsageError(f"--bert-parity: {err}") from None
    kwargs: Dict[str, Any] = dict(backends=have, heads=heads, tolerance=tolerance)
    if user:
        kwargs.update(inputs=inputs, golden=golden)
    run = _ParityRun(checkpoint, kwargs)
    collector = ParityCollector.from_parent(session, name=COLLECTOR_NAME, nodeid=COLLECTOR_NAME)
    reason = skip_reason(have, hints, golden, _names(config.getoption("bert_parity_backends")))
    if reason:
        return [ParityItem.from_parent(collector, name="skipped", run=run, cell=None, skip=reason)]
    items = [ParityItem.from_parent(collector, name=_item_name(c), run=run, cell=c) for c in cells]
    coverage = ParityItem.from_parent(collector, name="coverage", run=run, cell=None)
    coverage.planned = cells
    return items + [coverage]


class ParityCollector(pytest.Collector):
    """Parent node of the --bert-parity items (their node ids read ``bert-parity::<cell>``)."""

    def collect(self):  # the items are made by _make_items, which knows the options
        return []


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    # tryfirst: the items exist before -k / -m deselection (pytest's own hook) looks at the list
    if config.getoption("bert_parity", default=None):
        items.extend(_make_items(session, config))
