"""Training parity (conformance.training): N steps of the recipe agree across backends, and the harness fails on the
optimizer bugs it exists to catch (each injected into torch and compared with the clean runs of the others)."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest

from conformance.default import default_checkpoint
from conformance.runner import Report
from conformance.tolerance import (
    DEFAULT_TOLERANCE,
    Tolerance,
    TrainTolerance,
    compare_steps,
    compare_update,
)
from conformance.training import (
    DEFAULT_TASKS,
    TRAIN_TASKS,
    TrainSettings,
    compare_runs,
    prepare_head,
    resolve_tasks,
    run_train,
    synthetic_tokenizer,
    train_backend,
)

TOL = TrainTolerance()


# ------------------------------------------------------------------------------------------------ the rule (numpy)


def _moving(rng, shape, lr_sum=1e-2):
    """A tensor that moved at about half of Adam's full speed: w0 and w0 + Δ."""
    w0 = rng.normal(0, 0.2, shape)
    return w0, w0 + rng.choice([-0.5, 0.5], shape) * lr_sum


def test_update_rule_relative_and_elementwise():
    rng = np.random.default_rng(0)
    lr_sum = 1e-2
    w0, wa = _moving(rng, (512, 512), lr_sum)
    da = wa - w0
    relative, elementwise = compare_update(w0, wa, w0 + da * (1 + 1e-4), lr_sum, TOL)
    assert relative.passed and relative.max_abs == pytest.approx(1e-4, rel=1e-3) and elementwise.passed
    relative, _ = compare_update(w0, wa, w0 + da * (1 + 2e-3), lr_sum, TOL)
    assert not relative.passed  # 2e-3 of the update: a real difference
    one = da.copy()
    one[3, 7] += 0.2 * lr_sum  # one element 20% of a full-speed move off: hidden in the norm, not elementwise
    relative, elementwise = compare_update(w0, wa, w0 + one, lr_sum, TOL)
    assert relative.passed and not elementwise.passed and elementwise.max_abs == pytest.approx(0.2, rel=1e-3)


def test_still_tensors_are_bounded_elementwise_only():
    rng = np.random.default_rng(1)
    lr_sum = 1e-2
    w0 = rng.normal(0, 0.1, 64)
    # noise-driven updates (the key biases): independent, elements within 1% of a full-speed move, 100% apart
    wa, wb = w0 + rng.normal(0, 2e-3 * lr_sum, 64), w0 + rng.normal(0, 2e-3 * lr_sum, 64)
    relative, elementwise = compare_update(w0, wa, wb, lr_sum, TOL)
    assert relative is None and elementwise.passed and "still" in elementwise.note
    # a sparsely used tensor (few embedding rows with gradients) is not still: those rows move at full speed
    sparse = np.zeros((1000, 8))
    sparse[:3] = lr_sum
    relative, _ = compare_update(np.zeros((1000, 8)), sparse, sparse * (1 + 1e-5), lr_sum, TOL)
    assert relative is not None and relative.passed
    # one backend moves it at full speed: no longer still, compared relatively, fails
    relative, _ = compare_update(w0, wa, w0 + lr_sum * np.sign(rng.normal(size=64)), lr_sum, TOL)
    assert relative is not None and not relative.passed


def test_update_rule_refuses_shapes_and_nan():
    w0 = np.zeros((2, 3))
    for bad in (np.zeros((3, 2)), np.full((2, 3), np.nan)):
        relative, elementwise = compare_update(w0, np.ones((2, 3)) * 1e-3, bad, 1e-2, TOL)
        assert not relative.passed and not elementwise.passed and math.isinf(elementwise.max_abs)


def test_step_series():
    a = np.array([2.0, 1.0, 0.01])
    ok, step = compare_steps(a, a * (1 + 1e-4), 1e-3, floor=1.0)
    assert ok.passed and step in (1, 2, 3)
    bad, step = compare_steps(a, a + np.array([0, 0.01, 0]), 1e-3, floor=1.0)
    assert not bad.passed and step == 2 and bad.note == "worst at step 2" and bad.max_abs == pytest.approx(0.005)
    assert not compare_steps(a, a[:2], 1e-3)[0].passed
    assert not compare_steps(a, np.array([2.0, np.nan, 0.01]), 1e-3)[0].passed


def test_tolerance_follows_the_output_policy():
    assert TOL.rtol == pytest.approx(DEFAULT_TOLERANCE.rtol * DEFAULT_TOLERANCE.grad_factor * 10)
    assert TrainTolerance.from_tolerance(Tolerance(rtol=1e-4)).rtol == pytest.approx(1e-2)
    assert TOL.element == pytest.approx(0.1)
    with pytest.raises(ValueError, match="still_reach"):
        TrainTolerance(still_reach=-1)


# ------------------------------------------------------------------------------------------------ data (numpy)


def test_tasks_and_settings_validation():
    assert resolve_tasks() == list(DEFAULT_TASKS)
    assert resolve_tasks(heads=["BertForPreTraining", "BertModel"]) == ["pretraining"]
    with pytest.raises(ValueError, match="include none of them"):
        resolve_tasks(heads=["BertModel"])
    with pytest.raises(ValueError, match="choose some of"):
        resolve_tasks(["question-answering"])
    with pytest.raises(ValueError, match="steps=1 is invalid; expected an integer >= 2"):
        TrainSettings(steps=1)


@pytest.mark.parametrize("task", list(TRAIN_TASKS))
def test_synthetic_data_goes_through_the_task(task, tmp_path):
    ckpt = default_checkpoint()
    settings = TrainSettings()
    tokenizer = synthetic_tokenizer(ckpt.config.vocab_size)
    assert len(tokenizer) == ckpt.config.vocab_size and tokenizer.pad_token_id == ckpt.config.pad_token_id
    run = prepare_head(task, ckpt, tokenizer, settings, tmp_path)
    assert run.head == TRAIN_TASKS[task] and len(run.features) == settings.num_features
    assert run.config.hidden_dropout_prob == 0.0 and run.config.attention_probs_dropout_prob == 0.0
    assert len({len(f["input_ids"]) for f in run.features}) >= 2  # batches get padding
    batch = run.task.collate(run.features[:4], rng=np.random.default_rng(0))
    assert batch["input_ids"].max() < ckpt.config.vocab_size and (batch["attention_mask"] == 0).any()
    if task == "text-classification":
        assert run.config.num_labels == 3 and set(run.config.id2label.values()) == {"neg", "neu", "pos"}
        assert "classifier.weight" in run.weights
    else:
        assert (batch["labels"] != -100).any()


# ------------------------------------------------------------------------------------------------ the real thing


@pytest.fixture(scope="module")
def trained(backends):
    """The default training parity run (20 steps, sequence classification + MLM) on every usable backend."""
    from conformance.adapters import get_adapter

    ckpt = default_checkpoint()
    report = Report(ckpt.name, list(backends), [TRAIN_TASKS[t] for t in DEFAULT_TASKS], DEFAULT_TOLERANCE)
    adapters = {n: get_adapter(n) for n in backends}
    runs = run_train(report, ckpt, adapters, DEFAULT_TASKS, TrainSettings(), TOL)
    return report, runs


def test_default_run_agrees_on_every_check(trained, backends):
    report, runs = trained
    assert report.passed, report.format_table()
    labels = {Report.cell(r) for r in report.rows}
    for head in ("BertForSequenceClassification", "BertForMaskedLM"):
        for a, b in [(a, b) for i, a in enumerate(backends) for b in backends[i + 1 :]]:
            for what in ("loss", "grad_norm", "update", "update_max"):
                assert (f"train {head} {what}", f"{a}~{b}") in labels
        for name in backends:
            assert (f"train {head} recipe", name) in labels
        run, results = runs[head]
        assert set(results) == set(backends)
        # clipping engaged (on the first step at least: the threshold is 0.75 of its norm) and not on every step
        clipped = {n: int(np.sum(r.grad_norms > run.max_grad_norm)) for n, r in results.items()}
        assert all(1 <= c < 20 for c in clipped.values()), clipped
        # something was learned: the weights moved and the loss fell
        first = results[backends[0]]
        assert first.losses[-5:].mean() < first.losses[:5].mean()
    still = {r.field for r in report.rows if "still tensor" in r.note}
    assert still and all(f.endswith("attention.self.key.bias") for f in still)  # exact gradient 0: noise only
    assert not any(r.field.endswith("key.bias") for r in report.rows if r.field.startswith("update."))
    data = json.loads(json.dumps(report.as_dict()))
    assert data["train_tolerance"]["rtol"] == pytest.approx(1e-3)
    assert data["train"]["heads"]["BertForMaskedLM"]["backends"][backends[0]]["clipped_steps"] >= 1
    table = report.format_table()
    assert "train BertForMaskedLM update" in table and "training: 20 steps" in table
    from conformance.reports import junit_xml, markdown

    xml = junit_xml(report).decode()
    assert 'name="train BertForMaskedLM loss [' in xml and 'name="train_tolerance.rtol" value="0.001"' in xml
    assert "| train BertForSequenceClassification update |" in markdown(report)


def _bug_schedule_ahead(monkeypatch):
    import bert_torch.training as tt
    from bert_core.training import schedules

    shifted = types.SimpleNamespace(
        warmup_steps=schedules.warmup_steps,
        multiplier=lambda kind, step, warmup, total: schedules.multiplier(kind, step + 1, warmup, total),
    )
    monkeypatch.setattr(tt, "schedules", shifted)


def _bug_eps_on_sqrt_v(monkeypatch):
    """Keras' own AdamW: eps added to sqrt(v), i.e. torch's formula with eps / sqrt(1 - beta2^t)."""
    import torch

    class KerasEps(torch.optim.AdamW):
        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                group.setdefault("eps0", group["eps"])
                done = [int(self.state[p]["step"]) for p in group["params"] if "step" in self.state.get(p, {})]
                group["eps"] = group["eps0"] / math.sqrt(1 - group["betas"][1] ** (max(done, default=0) + 1))
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", KerasEps)


def _bug_decay_everything(monkeypatch):
    import bert_torch.training as tt

    monkeypatch.setattr(tt, "decay", types.SimpleNamespace(decay_mask=lambda names: {n: True for n in names}))


def _bug_short_step_over_k(monkeypatch):
    """An epoch's short last step (1 micro-batch of K=2) averaged over K: loss and gradient halved."""
    import bert_torch.training as tt

    train_step, optimizer_step = tt.LoopBackend.train_step, tt.optimizer_step

    def scaled_train_step(self, micro_batches):
        scale = len(micro_batches) / self.args.gradient_accumulation_steps

        def scaled_optimizer_step(model, optimizer, scheduler):
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.mul_(scale)
            return optimizer_step(model, optimizer, scheduler)

        monkeypatch.setattr(tt, "optimizer_step", scaled_optimizer_step)
        try:
            loss, norm = train_step(self, micro_batches)
        finally:
            monkeypatch.setattr(tt, "optimizer_step", optimizer_step)
        return loss * scale, norm

    monkeypatch.setattr(tt.LoopBackend, "train_step", scaled_train_step)


def _bug_no_clipping(monkeypatch):
    import bert_torch.training as tt

    create = tt.create_optimizer
    monkeypatch.setattr(tt, "create_optimizer", lambda *a, **k: create(*a, **{**k, "max_grad_norm": 0.0}))


#: bug -> (injection, the checks that must fail); measured on MLM, the bug's update differs by (relative):
#: schedule 0.29, eps 1.9e-2, decay 0.36, short step 0.12, clipping 0.17 (the bound is 1e-3)
BUGS = {
    "schedule_one_step_ahead": (_bug_schedule_ahead, {"update", "update_max", "loss", "grad_norm"}),
    "eps_on_sqrt_v": (_bug_eps_on_sqrt_v, {"update"}),  # spread over every tensor: the relative check's
    "decay_on_biases_and_layernorm": (_bug_decay_everything, {"update"}),
    "short_step_averaged_over_k": (_bug_short_step_over_k, {"loss", "grad_norm", "update", "update_max"}),
    "clipping_skipped": (_bug_no_clipping, {"update", "update_max", "loss", "grad_norm"}),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_an_optimizer_bug_in_one_backend_fails(bug, trained, backends, monkeypatch, tmp_path):
    if "torch" not in backends:
        pytest.skip("the bugs are injected into the torch backend")
    from conformance.adapters import get_adapter

    _, runs = trained
    run, results = runs["BertForMaskedLM"]
    others = {n: r for n, r in results.items() if n != "torch"}
    inject, expected = BUGS[bug]
    inject(monkeypatch)
    buggy = train_backend(get_adapter("torch"), run, TrainSettings(), str(tmp_path / "torch"))
    monkeypatch.undo()
    report = Report("bug", list(others) + ["torch"], [run.head], DEFAULT_TOLERANCE)
    compare_runs(report, run, {**others, "torch": buggy}, TrainSettings(), TOL)
    failing = {Report.cell(r)[0].split()[-1] for r in report.failures}
    assert expected <= failing, (bug, failing, report.format_table())
    # the clean pair, if any, still agrees: the failure is the bug's, not the bound's
    assert all("torch" in r.pair for r in report.failures)
    worst_update = max(r.max_abs for r in report.rows if r.field.startswith("update.") and "torch" in r.pair)
    assert worst_update > 10 * TOL.rtol  # not a near miss


def test_run_train_parity_api_and_cli_flag(backends, tmp_path, capsys):
    from conformance.cli import main
    from conformance.training import run_train_parity

    pair = backends[:2]
    report = run_train_parity(None, pair, steps=2, tasks=["pretraining"])  # MLM + NSP, the third task
    assert report.passed and report.heads == ["BertForPreTraining"], report.format_table()
    assert {r.section for r in report.rows} == {"train"}

    out = tmp_path / "r.json"
    argv = ["parity", "--backends", ",".join(pair), "--heads", "mlm", "--no-grads", "--no-chain", "-q"]
    code = main(argv + ["--train-steps", "3", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.out[-3000:]
    assert "train BertForMaskedLM update" in captured.out and "BertForMaskedLM  " in captured.out
    data = json.loads(out.read_text())
    assert {r["section"] for r in data["rows"]} >= {"outputs", "train"} and data["train"]["settings"]["steps"] == 3

    assert main(["parity", "--train-steps", "0"]) == 2
    assert "expected an integer >= 1" in capsys.readouterr().err
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "a b"}\n')
    assert main(["parity", "--inputs", str(inputs), "--train-steps", "2"]) == 2
    assert "--train-steps" in capsys.readouterr().err
    assert main(["parity", "--backends", ",".join(pair), "--heads", "BertModel", "--train-steps", "2"]) == 2
    assert "include none of them" in capsys.readouterr().err
