"""Cross-backend conformance: one battery, one tolerance policy, used by the tests and by ``bert parity/convert``.

Importing this package loads no deep-learning framework; adapters import theirs when first used.

    >>> from conformance import run_parity
    >>> report = run_parity()            # embedded default checkpoint, every installed backend, every head
    >>> report.passed, report.format_table()
    >>> run_parity("my/model", inputs="parity.jsonl", save_golden="my.golden.safetensors")  # the user's texts
    >>> run_parity("my/model", golden="my.golden.safetensors").passed                       # regression check

CI reports: :func:`conformance.reports.junit_xml` / :func:`conformance.reports.markdown`; the pytest plugin
(``bert_parity`` fixture, ``pytest --bert-parity CHECKPOINT``) is :mod:`conformance.pytest_plugin`.
"""

from .adapters import BackendUnavailable, get_adapter, resolve_backends
from .cases import GRAD_HEADS, Case, build_cases
from .convert import ConversionError, convert, read_source
from .default import Checkpoint, default_checkpoint, default_config
from .golden import GoldenError, GoldenMismatch, read_golden
from .inputs import InputsError, read_inputs
from .runner import Report, Row, head_weights, run_parity
from .tolerance import (
    DEFAULT_TOLERANCE,
    Comparison,
    Tolerance,
    TrainTolerance,
    compare,
    compare_exact,
    parse_tolerance,
)
from .training import TrainSettings, run_train_parity

__all__ = [
    "run_train_parity",
    "TrainSettings",
    "TrainTolerance",
    "DEFAULT_TOLERANCE",
    "Comparison",
    "Tolerance",
    "compare",
    "compare_exact",
    "parse_tolerance",
    "Checkpoint",
    "default_checkpoint",
    "default_config",
    "Case",
    "build_cases",
    "GRAD_HEADS",
    "BackendUnavailable",
    "get_adapter",
    "resolve_backends",
    "Report",
    "Row",
    "head_weights",
    "run_parity",
    "ConversionError",
    "convert",
    "read_source",
    "GoldenError",
    "GoldenMismatch",
    "read_golden",
    "InputsError",
    "read_inputs",
]
