"""Cross-backend conformance on the embedded default and on the real MiniLM checkpoint; the suite must be able to fail."""

from __future__ import annotations

import itertools

import pytest

from bert_core.weights import HEADS
from conformance import GRAD_HEADS, run_parity


def test_every_installed_backend_is_usable(backend_status):
    usable, broken = backend_status
    assert not broken, f"installed backends that do not implement the contract: {broken}"


def _failures(report):
    return "\n".join(f"{r.pair} {r.path}: {r.max_abs:.3g} > {r.limit:.3g} {r.note}" for r in report.failures[:20])


def test_default_checkpoint_all_heads_all_backends(default_report, backends):
    report = default_report
    assert report.passed, _failures(report)
    pairs = {f"{a}~{b}" for a, b in itertools.combinations(backends, 2)}
    for head in HEADS:
        assert {r.pair for r in report.rows if r.head == head and r.section == "outputs"} == pairs, head


def test_default_battery_covers_every_feature(default_report):
    paths = {r.path for r in default_report.rows if r.section == "outputs"}
    expected = [
        "BertModel/padded_pair/pooler_output",
        "BertModel/padded_pair/hidden_states.2",
        "BertModel/padded_pair/attentions.1",
        "BertModel/inputs_embeds/last_hidden_state",
        "BertModel/cross_attention/cross_attentions.0",
        "BertModel/cross_attention/past_key_values.1.3",
        "BertModel/cross_attention/step.last_hidden_state",
        "BertLMHeadModel/cross_attention/loss",
        "BertLMHeadModel/cross_attention/step.logits",
        "BertForPreTraining/padded_pair/loss",
        "BertForPreTraining/padded_pair/seq_relationship_logits",
        "BertForMultipleChoice/inputs_embeds/loss",
        "BertForQuestionAnswering/padded_pair/end_logits",
        "BertForTokenClassification/padded_pair/loss",
        "BertForNextSentencePrediction/padded_pair/loss",
        "BertForSequenceClassification/padded_pair/loss",
        "BertForMaskedLM/padded_pair/loss",
    ]
    missing = [p for p in expected if p not in paths]
    assert not missing, missing
    sections = {(r.section, r.head) for r in default_report.rows}
    for head in GRAD_HEADS:
        assert ("grads", head) in sections and ("sgd_step", head) in sections, head
    assert ("cache", "BertLMHeadModel") in sections
    chain = [r for r in default_report.rows if r.section == "chain"]
    assert chain and any(r.field.startswith("weights.loaded_by") for r in chain)
    assert any(r.field == "bert.embeddings.word_embeddings.weight" for r in default_report.rows if r.section == "grads")


def test_report_renders_table_and_json(default_report):
    table = default_report.format_table()
    assert "BertForQuestionAnswering" in table and "PASS" in table and "save/load chain" in table
    data = default_report.as_dict()
    assert data["passed"] is True and data["rows"] and data["summary"]
    assert all({"path", "max_abs", "limit", "passed", "pair"} <= set(r) for r in data["rows"])


def test_perturbed_weight_fails_with_the_right_field(backends):
    """Perturb the MLM transform in one backend: logits must fail, the encoder's hidden states must not."""
    victim = backends[-1]

    def hook(backend, head, weights):
        if backend == victim:
            weights["cls.predictions.transform.dense.weight"] = weights["cls.predictions.transform.dense.weight"] + 1e-2
        return weights

    report = run_parity(None, backends=backends, heads=["BertForMaskedLM"], grads=False, chain=False, weight_hook=hook)
    assert not report.passed
    failing = {r.path for r in report.failures}
    assert "BertForMaskedLM/padded_pair/logits" in failing
    assert "BertForMaskedLM/padded_pair/loss" in failing
    assert not any("hidden_states" in p for p in failing)
    assert all(victim in r.pair for r in report.failures)


def test_perturbed_layer_names_the_hidden_state(backends):
    """A change in encoder layer 1 shows up in hidden_states.2 (its output), not in hidden_states.1."""

    def hook(backend, head, weights):
        if backend == backends[0]:
            # one element: a uniform shift would be removed by the LayerNorm that follows
            weights["encoder.layer.1.output.dense.bias"][3] += 1e-2
        return weights

    report = run_parity(None, backends=backends[:2], heads=["BertModel"], grads=False, chain=False, weight_hook=hook)
    failing = {r.path for r in report.failures}
    assert "BertModel/padded_pair/hidden_states.2" in failing
    assert "BertModel/padded_pair/hidden_states.1" not in failing


def test_minilm_all_heads(minilm_dir, backends):
    # lean: one case per head (padding, pairs, all outputs, loss); the full battery runs on the default checkpoint
    report = run_parity(minilm_dir, backends=backends, grads=False, chain=False, cases=["padded_pair"])
    assert report.passed, _failures(report)
    assert {r.head for r in report.rows} == set(HEADS)


def test_missing_checkpoint_and_bad_backend_errors(tmp_path):
    from conformance import BackendUnavailable

    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_parity(str(tmp_path / "nope"))
    with pytest.raises(BackendUnavailable, match="unknown backend 'mxnet'"):
        run_parity(None, backends=["mxnet"])
    with pytest.raises(ValueError, match="unknown head"):
        run_parity(None, heads=["BertForEverything"])
