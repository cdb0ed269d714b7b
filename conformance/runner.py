"""Run the battery on every backend from the same weights and compare: outputs, cache, gradients, SGD step, chain.

Every comparison becomes a :class:`Row` whose ``path`` names the field (``BertForMaskedLM/padded_pair/hidden_states.2``);
a :class:`Report` holds the rows plus errors (a backend that raised) and renders the CLI table and the JSON report.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bert_core.config import BertConfig
from bert_core.init import complete_weights
from bert_core.weights import HEADS, match_state_dict, stored_weights

from .adapters import Adapter, get_adapter, resolve_backends
from .cases import GRAD_HEADS, Case, build_cases, config_for, grad_case, split_incremental
from .default import Checkpoint, load_checkpoint_any
from .tolerance import (
    DEFAULT_TOLERANCE,
    Comparison,
    Tolerance,
    TrainTolerance,
    compare,
    compare_exact,
    relative_gradient_error,
    sgd_learning_rate,
    step_allowance,
)

#: seed of bert_core.init.complete_weights for head weights a checkpoint lacks (same arrays for every backend)
INIT_SEED = 0
#: hook (backend, head, weights) -> weights, applied before a backend loads them (tests use it to break parity)
WeightHook = Callable[[str, str, "OrderedDict[str, np.ndarray]"], Mapping[str, np.ndarray]]


@dataclass
class Row:
    """One compared field. ``pair``: "torch~tf" (a vs b, a is the reference) or "torch" (self-consistency)."""

    section: str  # outputs | cache | grads | sgd_step | chain | error
    head: str
    case: str
    field: str
    pair: str
    max_abs: float
    limit: float
    passed: bool
    note: str = ""

    @property
    def path(self) -> str:
        return f"{self.head}/{self.case}/{self.field}"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["path"] = self.path
        d["max_abs"] = None if math.isinf(self.max_abs) else self.max_abs
        return d


@dataclass
class Report:
    checkpoint: str
    backends: List[str]
    heads: List[str]
    tolerance: Tolerance
    rows: List[Row] = field(default_factory=list)
    seconds: float = 0.0
    #: lines printed under the table's title (user inputs, golden file provenance, ...)
    notes: List[str] = field(default_factory=list)
    #: JSON-ready extras of the report (``inputs``, ``golden`` for runs on user inputs, ``train``)
    extra: Dict[str, Any] = field(default_factory=dict)
    #: the bounds of the ``train`` rows, when training parity ran (:mod:`conformance.training`)
    train_tolerance: Optional[TrainTolerance] = None

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def failures(self) -> List[Row]:
        return [r for r in self.rows if not r.passed]

    def add(self, section: str, head: str, case: str, fld: str, pair: str, cmp: Comparison) -> Row:
        row = Row(section, head, case, fld, pair, cmp.max_abs, cmp.limit, cmp.passed, cmp.note)
        self.rows.append(row)
        return row

    def error(self, section: str, head: str, case: str, backend: str, err: BaseException) -> None:
        msg = f"{type(err).__name__}: {err}".strip()
        self.rows.append(Row("error", head, case, f"{section}:raised", backend, math.inf, 0.0, False, msg[:2000]))

    # ------------------------------------------------------------------ summaries
    def summary(self) -> "OrderedDict[Tuple[str, str], Tuple[float, bool, Optional[Row]]]":
        """(line label, pair) -> (worst max|Δ|, all passed, worst failing row or None)."""
        out: "OrderedDict[Tuple[str, str], Tuple[float, bool, Optional[Row]]]" = OrderedDict()
        for row in self.rows:
            key = self.cell(row)
            worst, ok, bad = out.get(key, (0.0, True, None))
            if not row.passed and bad is None:
                bad = row
            out[key] = (max(worst, row.max_abs), ok and row.passed, bad)
        return out

    @classmethod
    def cell(cls, row: Row) -> Tuple[str, str]:
        """(table line label, column) of ``row``: the cell it counts in (a JUnit testcase, a --bert-parity item)."""
        return cls._label(row), "all" if row.section == "chain" else row.pair

    @staticmethod
    def _label(row: Row) -> str:
        if row.section == "outputs" or row.section == "error":
            return row.head
        if row.section == "cache":
            return f"{row.head} cache=full"
        if row.section == "chain":
            return "save/load chain"
        if row.section == "train":  # one line per quantity: loss, grad_norm, update, update_max, recipe
            return f"train {row.head} {row.field.split('.')[0]}"
        return f"{row.section} {row.head}"

    def layout(self) -> Tuple[List[str], List[str]]:
        """(row labels, columns) of the table: every line label, and the backend pairs (always, a missing one shows
        as "-") followed by the self-checks and any other pair present."""
        summary = self.summary()
        pairs = [f"{a}~{b}" for a, b in itertools.combinations(self.backends, 2)]
        singles = list(self.backends)
        labels = list(OrderedDict.fromkeys(k[0] for k in summary if k[1] != "all"))
        present = list(OrderedDict.fromkeys(k[1] for k in summary if k[1] != "all"))
        # other pairs: ``bert convert --verify`` compares "torch:source~torch:result", "tf~savedmodel" ..., user
        # inputs "golden~torch"
        cols = pairs + [c for c in singles + present if c in present and c not in pairs]
        return labels, list(OrderedDict.fromkeys(cols)) or singles

    def title(self) -> str:
        text = (
            f"parity of {self.checkpoint} on {', '.join(self.backends)}; tolerance max|Δ| <= "
            f"{self.tolerance.rtol:g}*(1+max|ref|) (gradients x{self.tolerance.grad_factor:g})"
        )
        if self.train_tolerance is not None:
            text += f"; training rtol {self.train_tolerance.rtol:g}"
        return text

    def format_table(self) -> str:
        summary = self.summary()
        labels, cols = self.layout()
        lw = max([len(label) for label in labels] + [24])
        lines = [self.title()]
        lines.extend(self.notes)
        lines.append(f"{'head / check':<{lw}}  " + "  ".join(f"{c:<16}" for c in cols))
        for label in labels:
            cells = []
            for c in cols:
                if (label, c) in summary:
                    worst, ok, _ = summary[(label, c)]
                    w = "inf" if math.isinf(worst) else f"{worst:.1e}"
                    cells.append(f"{w} {'pass' if ok else 'FAIL'}".ljust(16))
                else:
                    cells.append("-".ljust(16))
            lines.append(f"{label:<{lw}}  " + "  ".join(cells))
        for (label, pair), (worst, ok, _) in summary.items():
            if pair == "all":
                hops = " > ".join(self.backends + self.backends[:1])
                lines.append(
                    f"{label + ' ' + hops:<{lw}}  weights bit-identical + outputs: "
                    f"{'inf' if math.isinf(worst) else f'{worst:.1e}'} {'pass' if ok else 'FAIL'}"
                )
        failures = self.failures
        if failures:
            lines.append(f"\n{len(failures)} failing field(s):")
            for row in failures[:25]:
                extra = f" ({row.note})" if row.note else ""
                lines.append(f"  {row.pair:<12} {row.path}: max|Δ| {row.max_abs:.3g} > {row.limit:.3g}{extra}")
            if len(failures) > 25:
                lines.append(f"  ... and {len(failures) - 25} more (see --json)")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"\n{verdict}: {len(self.rows) - len(failures)}/{len(self.rows)} fields agree ({self.seconds:.1f} s)"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        summary = [
            {
                "check": label,
                "pair": pair,
                "max_abs": None if math.isinf(w) else w,
                "passed": ok,
                "first_failure": bad.path if bad else None,
            }
            for (label, pair), (w, ok, bad) in self.summary().items()
        ]
        return {
            "checkpoint": self.checkpoint,
            "backends": self.backends,
            "heads": self.heads,
            "tolerance": self.tolerance.as_dict(),
            **({"train_tolerance": self.train_tolerance.as_dict()} if self.train_tolerance is not None else {}),
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "summary": summary,
            "notes": list(self.notes),
            **self.extra,
            "rows": [r.as_dict() for r in self.rows],
        }


# ---------------------------------------------------------------------------------------------------- weights


def head_weights(
    checkpoint: Checkpoint, config: BertConfig, head: str, seed: int = INIT_SEED
) -> "OrderedDict[str, np.ndarray]":
    """Canonical float32 weights of ``head`` under ``config``: the checkpoint's, plus bert_core's seeded init for the
    tensors it lacks (a classifier, cross-attention, ...), so every backend gets the same arrays."""
    present, _info = match_state_dict(checkpoint.state, config, head, ignore_mismatched_sizes=True)
    full = complete_weights(present, config, head, seed=seed)
    return OrderedDict((k, np.asarray(v, dtype=np.float32)) for k, v in full.items())


def _compare_flat(
    report: Report,
    section: str,
    head: str,
    case: str,
    pair: str,
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray],
    tol: Tolerance,
    extra: Optional[Mapping[str, float]] = None,
) -> None:
    """Compare every field of ``a`` and ``b`` (a field on one side only fails); ``extra``: per-field additions to
    the bound (the SGD step's propagated gradient disagreement)."""
    names = list(a) + [k for k in b if k not in a]
    for name in names:
        if name not in a or name not in b:
            side = pair.split("~")[1] if name not in b else pair.split("~")[0]
            report.add(section, head, case, name, pair, Comparison(math.inf, 0.0, False, f"missing in {side}"))
            continue
        report.add(section, head, case, name, pair, compare(a[name], b[name], tol, (extra or {}).get(name, 0.0)))


def _pairs(names: Sequence[str]) -> List[Tuple[str, str]]:
    return list(itertools.combinations(names, 2))


def _run_case(
    adapter: Adapter, model: Any, case: Case, report: Report, tol: Tolerance
) -> "OrderedDict[str, np.ndarray]":
    """Forward outputs of ``case`` (incremental: ``full.*``, ``step.*``), plus self-consistency rows."""
    if case.kind != "incremental":
        return adapter.forward(model, case.inputs)
    prefix, step, full_inputs = split_incremental(case)
    full = adapter.forward(model, full_inputs)
    raw = adapter.forward_raw(model, prefix)
    past = raw["past_key_values"]
    step_out = adapter.forward(model, dict(step, past_key_values=past))
    main = "logits" if "logits" in full else "last_hidden_state"
    p = case.prefix
    # the cached step must reproduce the last positions of full decoding, and end with the full cache
    report.add(
        "cache",
        case.head,
        case.name,
        main,
        adapter.name,
        compare(full[main][:, p:], step_out.get(main, np.zeros(0)), tol),
    )
    for key, value in full.items():
        if key.startswith("past_key_values."):
            report.add(
                "cache", case.head, case.name, key, adapter.name, compare(value, step_out.get(key, np.zeros(0)), tol)
            )
    out: "OrderedDict[str, np.ndarray]" = OrderedDict(full)
    for k, v in step_out.items():
        out["step." + k] = v
    return out


def run_parity(
    checkpoint: Any = None,
    backends: Optional[Sequence[str]] = None,
    heads: Optional[Sequence[str]] = None,
    tolerance: Optional[Tolerance] = None,
    *,
    grads: bool = True,
    chain: bool = True,
    progress: Optional[Callable[[str], None]] = None,
    weight_hook: Optional[WeightHook] = None,
    seed: int = 0,
    cases: Optional[Sequence[str]] = None,
    inputs: Any = None,
    golden: Any = None,
    save_golden: Optional[str] = None,
    golden_backend: Optional[str] = None,
    max_length: Optional[int] = None,
    train_steps: int = 0,
    train_tasks: Optional[Sequence[str]] = None,
) -> Report:
    """Run every head on every backend from the same weights and compare every output field pairwise.

    Args:
        checkpoint: None (embedded default), a :class:`Checkpoint`, a directory or a hub id.
        backends: names (default: every installed backend). Unknown / missing -> BackendUnavailable.
        heads: subset of bert_core.weights.HEADS (default all).
        grads: also gradient parity + one SGD step on :data:`conformance.cases.GRAD_HEADS` (those selected).
        chain: also the save/load chain through every backend and back.
        weight_hook: (backend, head, weights) -> weights given to that backend (tests perturb one tensor).
        cases: only these case names of the battery (default all; big checkpoints may keep ``["padded_pair"]``).
        inputs, golden, save_golden, golden_backend, max_length: parity on the user's inputs instead of the battery
            (forward outputs only; ``grads``, ``chain``, ``seed`` and ``cases`` do not apply), compared with /
            written to a golden file: see :func:`conformance.input_runner.run_inputs`.
        train_steps: also training parity (:mod:`conformance.training`): this many optimizer steps of the recipe
            in every backend, compared pairwise (``train`` rows, bounds from :meth:`TrainTolerance.from_tolerance`).
        train_tasks: the tasks trained (default: those of ``heads`` that train, or sequence classification + MLM).
    """
    if not isinstance(train_steps, int) or isinstance(train_steps, bool) or train_steps < 0:
        raise ValueError(f"train_steps={train_steps!r} is invalid; expected an integer >= 0 (0: no training parity)")
    if inputs is not None or golden is not None or save_golden is not None:
        if train_steps or train_tasks is not None:
            raise ValueError("training parity (--train-steps) runs on synthetic data, not with --inputs/--golden")
        from .input_runner import run_inputs

        return run_inputs(
            checkpoint,
            inputs,
            backends,
            heads,
            tolerance,
            golden=golden,
            save_golden=save_golden,
            golden_backend=golden_backend,
            max_length=max_length,
            weight_hook=weight_hook,
            progress=progress,
        )
    if golden_backend is not None or max_length is not None:
        raise ValueError("golden_backend and max_length apply to runs on user inputs (inputs=/golden=) only")
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    start = time.perf_counter()
    say = progress or (lambda msg: None)
    head_list = list(HEADS) if heads is None else list(heads)
    for h in head_list:
        if h not in HEADS:
            raise ValueError(f"unknown head {h!r}; expected one of {', '.join(HEADS)}")
    if train_steps:
        from .training import resolve_tasks

        train_tasks = resolve_tasks(train_tasks, heads)
    ckpt = load_checkpoint_any(checkpoint)
    adapters = load_adapters(backends, say)
    names = list(adapters)
    report = Report(ckpt.name, names, head_list, tolerance)

    for index, head in enumerate(head_list, 1):
        t0 = time.perf_counter()
        _run_head(report, ckpt, head, adapters, tolerance, weight_hook, seed, grads and head in GRAD_HEADS, cases)
        bad = sum(1 for r in report.rows if r.head == head and not r.passed)
        say(
            f"[{index}/{len(head_list)}] {head}: {'ok' if not bad else f'{bad} failing'} ({time.perf_counter() - t0:.1f} s)"
        )
    if chain:
        t0 = time.perf_counter()
        chain_head = "BertForPreTraining" if "BertForPreTraining" in head_list else head_list[0]
        run_chain(report, ckpt, chain_head, adapters, tolerance, seed)
        say(f"save/load chain {' > '.join(names + names[:1])} ({time.perf_counter() - t0:.1f} s)")
    if train_steps:
        from dataclasses import replace

        from .training import TrainSettings, checkpoint_tokenizer, run_train

        run_train(
            report,
            ckpt,
            adapters,
            train_tasks,
            replace(TrainSettings(), steps=train_steps),
            TrainTolerance.from_tolerance(tolerance),
            tokenizer=checkpoint_tokenizer(ckpt, checkpoint),
            progress=say,
        )
    report.seconds = time.perf_counter() - start
    return report


def load_adapters(
    backends: Optional[Sequence[str]], progress: Optional[Callable[[str], None]] = None
) -> Dict[str, Adapter]:
    """The adapters of ``backends`` (default: every installed backend), in order.

    Raises:
        BackendUnavailable: an unknown or unusable backend, or fewer than two (parity compares backends).
    """
    say = progress or (lambda msg: None)
    names = resolve_backends(backends)
    if len(names) < 2:
        from .adapters import BackendUnavailable

        have = f"only {names[0]!r} is" if names else "none is"
        raise BackendUnavailable(
            f"parity compares backends and needs at least two; {have} selected/installed "
            f"(pip install 'multi-bert[torch]', 'multi-bert[tf]', 'multi-bert[flax]' or 'multi-bert[all]')"
        )
    adapters: Dict[str, Adapter] = {}
    for n in names:
        t0 = time.perf_counter()
        adapters[n] = get_adapter(n)
        say(f"loaded backend {n} ({time.perf_counter() - t0:.1f} s)")
    return adapters


def _weights_for(ckpt, cfg, head, backend, weight_hook, cache):
    key = (cfg.is_decoder, cfg.add_cross_attention)
    if key not in cache:
        cache[key] = head_weights(ckpt, cfg, head)
    w = cache[key]
    if weight_hook is not None:
        w = OrderedDict(weight_hook(backend, head, OrderedDict((k, v.copy()) for k, v in w.items())))
    return w


def _run_head(report, ckpt, head, adapters, tol, weight_hook, seed, do_grads, only=None) -> None:
    cases = [c for c in build_cases(head, ckpt.config, seed) if only is None or c.name in only]
    models: Dict[Tuple[str, bool], Any] = {}
    weight_cache: Dict[Any, Any] = {}

    def model_for(name: str, case: Case):
        key = (name, case.decoder)
        if key not in models:
            cfg = config_for(ckpt.config, case)
            models[key] = adapters[name].build(
                head, cfg, _weights_for(ckpt, cfg, head, name, weight_hook, weight_cache)
            )
        return models[key]

    for case in cases:
        outputs: Dict[str, Mapping[str, np.ndarray]] = {}
        for name, adapter in adapters.items():
            try:
                outputs[name] = _run_case(adapter, model_for(name, case), case, report, tol)
            except Exception as err:  # a backend that raises fails its cells, the others still run
                report.error("outputs", head, case.name, name, err)
        for a, b in _pairs(list(outputs)):
            _compare_flat(report, "outputs", head, case.name, f"{a}~{b}", outputs[a], outputs[b], tol)
    if do_grads:
        run_grads(report, ckpt, head, adapters, tol, weight_hook, seed, model_for, weight_cache)


def run_grads(report, ckpt, head, adapters, tol, weight_hook, seed, model_for, weight_cache) -> None:
    """Gradient parity for ``head`` (every stored tensor, by canonical name), then one SGD step w - lr*g per backend
    from its own gradients, loaded back, and the outputs compared again."""
    case = grad_case(head, ckpt.config, seed)
    cfg = config_for(ckpt.config, case)
    gtol = tol.for_grads()
    table = list(stored_weights(cfg, head))
    losses: Dict[str, Dict[str, np.ndarray]] = {}
    grads: Dict[str, Mapping[str, np.ndarray]] = {}
    for name, adapter in adapters.items():
        try:
            model = model_for(name, case)
            loss, g = adapter.grads(model, case.inputs)
            losses[name] = {"loss": np.asarray(loss, np.float64)}
            grads[name] = g
        except Exception as err:
            report.error("grads", head, case.name, name, err)
    for name, g in grads.items():
        missing = [n for n in table if n not in g]
        if missing:
            report.add(
                "grads",
                head,
                case.name,
                "names",
                name,
                Comparison(math.inf, 0.0, False, f"no gradient for {missing[:3]}{'...' if len(missing) > 3 else ''}"),
            )
    for a, b in _pairs(list(grads)):
        _compare_flat(report, "grads", head, case.name, f"{a}~{b}", losses[a], losses[b], tol)
        ga = OrderedDict((n, grads[a][n]) for n in table if n in grads[a] and n in grads[b])
        gb = OrderedDict((n, grads[b][n]) for n in ga)
        _compare_flat(report, "grads", head, case.name, f"{a}~{b}", ga, gb, gtol)

    # one identical SGD step (learning rate from the reference backend), each backend from its own gradients
    if not grads:
        return
    reference = next(iter(grads))
    base = _weights_for(ckpt, cfg, head, reference, weight_hook, weight_cache)
    lr = sgd_learning_rate(base, grads[reference])
    before, after = {}, {}
    for name, adapter in adapters.items():
        if name not in grads:
            continue
        try:
            w = _weights_for(ckpt, cfg, head, name, weight_hook, weight_cache)
            stepped = OrderedDict(
                (n, (v - lr * np.asarray(grads[name].get(n, 0.0), np.float32)).astype(np.float32)) for n, v in w.items()
            )
            model = model_for(name, case)
            before[name] = adapter.forward(model, case.inputs)
            adapter.load_weights(model, stepped)
            try:
                after[name] = adapter.forward(model, case.inputs)
            finally:
                adapter.load_weights(model, w)  # later users of the cached model see the original weights
        except Exception as err:
            report.error("sgd_step", head, case.name, name, err)
    for a, b in _pairs(list(after)):
        error = relative_gradient_error(grads[a], grads[b])
        extra = {k: step_allowance(before[a].get(k, np.zeros(0)), v, error) for k, v in after[a].items()}
        _compare_flat(report, "sgd_step", head, case.name, f"{a}~{b}", after[a], after[b], tol, extra)


def run_chain(report, ckpt, head, adapters, tol, seed, workdir: Optional[str] = None) -> None:
    """``first > save > second > save > ... > first``: weights bit-identical at every hop, outputs equal."""
    order = list(adapters)
    hops = order + order[:1]
    case = build_cases(head, ckpt.config, seed)[0]  # padded_pair
    cfg = config_for(ckpt.config, case)
    ref_w = head_weights(ckpt, cfg, head)
    with tempfile.TemporaryDirectory(prefix="bert-chain-", dir=workdir) as tmp:
        try:
            model = adapters[hops[0]].build(head, cfg, ref_w)
            ref_out = adapters[hops[0]].forward(model, case.inputs)
        except Exception as err:
            report.error("chain", head, "build", hops[0], err)
            return
        for i in range(1, len(hops)):
            src, dst = hops[i - 1], hops[i]
            hop = f"{i}:{src}>{dst}"
            directory = str(Path(tmp) / f"hop{i}-{src}")
            try:
                adapters[src].save(model, directory)
                from bert_core.checkpoint import read_state_dict
                from bert_core.weights import normalize_state_dict

                saved = normalize_state_dict(read_state_dict(directory)[0], head)
                _exact_rows(report, head, hop, f"saved_by_{src}", dst, ref_w, saved)
                model = adapters[dst].load(head, directory)
                _exact_rows(report, head, hop, f"loaded_by_{dst}", dst, ref_w, adapters[dst].weights(model))
                out = adapters[dst].forward(model, case.inputs)
                # back on the first backend with bit-identical weights, the outputs must be bit-identical too
                hop_tol = Tolerance(rtol=0.0) if i == len(hops) - 1 else tol
                _compare_flat(report, "chain", head, hop, f"{hops[0]}~{dst}", ref_out, out, hop_tol)
            except Exception as err:
                report.error("chain", head, hop, dst, err)
                return


def _exact_rows(report, head, hop, what, pair, ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> None:
    worst = Comparison(0.0, 0.0, True)
    for name, value in ref.items():
        if name not in got:
            worst = Comparison(math.inf, 0.0, False, f"{name} missing")
            break
        c = compare_exact(value, got[name])
        if not c.passed:
            worst = Comparison(c.max_abs, 0.0, False, f"{name}: {c.note}")
            break
    extra = [n for n in got if n not in ref]
    if worst.passed and extra:
        worst = Comparison(math.inf, 0.0, False, f"unexpected tensors {extra[:3]}")
    report.add("chain", head, hop, f"weights.{what}", f"{pair}", worst)
