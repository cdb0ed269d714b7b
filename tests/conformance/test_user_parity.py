"""``bert parity --inputs`` and golden files on the real MiniLM: a team's own texts pass on every backend, a broken
backend fails naming the input, a golden file from torch passes everywhere and catches a changed checkpoint.

Golden refusals (another model, tokenizer or inputs) use the tiny checkpoint: they stop before any model runs.
"""

from __future__ import annotations

import itertools
import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from bert_core.checkpoint import read_safetensors
from conformance import run_parity
from conformance.cli import main
from conformance.golden import GoldenMismatch, read_golden

ROOT = Path(__file__).resolve().parents[2]
#: a few inputs of every kind: plain, a pair, a text far beyond 512 tokens, unicode, raw ids
MINILM_INPUTS = [
    {"text": "The quick brown fox jumps over the lazy dog."},
    {"id": "qa", "text": "Where do zebras live?", "text_pair": "Zebras live in the grasslands of Africa."},
    {"id": "long", "text": " ".join(["a long document about parity between frameworks"] * 90)},
    {"id": "unicode", "text": "Café naïve Ünïcödé — 東京タワー 😀 ¿qué?"},
    {"id": "zebra", "text": "A zebra."},
    {"input_ids": [101, 7592, 2088, 102]},
]
#: last LayerNorm bias of MiniLM: a change there moves last_hidden_state by exactly that much
BIAS = "encoder.layer.5.output.LayerNorm.bias"


def _jsonl(path, records):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def _failures(report):
    return "\n".join(f"{r.pair} {r.path}: {r.max_abs:.3g} > {r.limit:.3g} {r.note}" for r in report.failures[:20])


@pytest.fixture(scope="module")
def minilm_golden(minilm_dir, backends, tmp_path_factory):
    """(report, inputs file, golden file): the inputs on every backend, torch's outputs saved as the golden file."""
    tmp = tmp_path_factory.mktemp("minilm-golden")
    inputs = _jsonl(tmp / "inputs.jsonl", MINILM_INPUTS)
    golden = tmp / "minilm.golden.safetensors"
    report = run_parity(str(minilm_dir), backends=backends, inputs=str(inputs), save_golden=str(golden))
    return report, inputs, golden


def _changed_minilm(minilm_dir, directory, change):
    """A copy of MiniLM (tokenizer included) whose BIAS went through ``change``."""
    shutil.copytree(minilm_dir, directory, ignore=shutil.ignore_patterns("model.safetensors", "1_Pooling"))
    state = read_safetensors(minilm_dir / "model.safetensors")
    state[BIAS] = change(state[BIAS]).astype(np.float32)
    from safetensors.numpy import save_file

    save_file(dict(state), str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


def test_user_inputs_pass_on_minilm(minilm_golden, backends):
    report, _, golden = minilm_golden
    assert report.passed, _failures(report)
    assert report.heads == ["BertModel"]  # MiniLM's config.json: architectures ["BertModel"]
    names = ["line1", "qa", "long", "unicode", "zebra", "line6"]
    assert [i["name"] for i in report.extra["inputs"]] == names
    long = next(i for i in report.extra["inputs"] if i["name"] == "long")
    assert long["truncated"] and long["tokens"] == 512 and report.extra["max_length"] == 512
    pairs = {f"{a}~{b}" for a, b in itertools.combinations(backends, 2)}
    for name in names:
        rows = [r for r in report.rows if r.case == name and r.section == "outputs"]
        assert {r.pair for r in rows} == pairs and {r.field for r in rows} == {"last_hidden_state", "pooler_output"}
    assert golden.is_file() and report.extra["golden_written"] == str(golden)
    assert any(r.section == "rerun" for r in report.rows)


def test_perturbed_backend_fails_naming_the_input(minilm_dir, backends, minilm_golden, capsys):
    _, inputs, _ = minilm_golden
    victim = backends[-1]
    zebra = 29145  # "zebra" in MiniLM's vocabulary: only the inputs "qa" and "zebra" contain it

    # not a constant shift: the embeddings' LayerNorm would subtract it again
    noise = np.random.default_rng(0).normal(0.0, 1e-2, size=384).astype(np.float32)

    def perturb(backend, head, weights):
        if backend == victim:
            weights["embeddings.word_embeddings.weight"][zebra] += noise
        return weights

    report = run_parity(str(minilm_dir), backends=backends, inputs=str(inputs), weight_hook=perturb)
    assert not report.passed
    assert {r.case for r in report.failures} == {"qa", "zebra"}, _failures(report)
    assert all(victim in r.pair for r in report.failures)
    table = report.format_table()
    assert "BertModel/zebra/last_hidden_state" in table and 'input "A zebra."' in table


def test_golden_from_torch_passes_on_every_backend(minilm_dir, backends, minilm_golden):
    _, _, golden = minilm_golden
    stored = read_golden(golden)
    assert stored.backend == backends[0] and stored.heads == ["BertModel"] and len(stored.records) == 6
    assert stored.versions["multi-bert"] and stored.tokenizer_sha256 and stored.tolerance.rtol == 1e-5
    assert stored.outputs[("BertModel", 2)]["last_hidden_state"].shape == (512, 384)  # trimmed to the input
    report = run_parity(str(minilm_dir), backends=backends, golden=str(golden))  # the inputs come from the file
    assert report.passed, _failures(report)
    golden_pairs = {r.pair for r in report.rows if r.section == "golden" and r.head == "BertModel"}
    assert golden_pairs == {f"golden~{b}" for b in backends}
    assert {r.pair for r in report.rows if r.head == "tokenizer"} == {"golden~tokenizer"}


def test_golden_catches_a_changed_checkpoint(minilm_dir, backends, minilm_golden, tmp_path, capsys):
    _, _, golden = minilm_golden
    one = backends[:1]  # a golden file is enough to check a single backend
    # one ulp on every element of one tensor: within tolerance, the check is not flaky under bit noise
    ulp = _changed_minilm(minilm_dir, tmp_path / "ulp", lambda b: np.nextafter(b, np.float32(np.inf)))
    code = main(["parity", str(ulp), "--golden", str(golden), "--backends", ",".join(one), "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "weights are not bit-identical to those the golden file was made from" in out
    # a change a little above tolerance: every token's hidden state moves by 3e-4 (limit ~1e-5 * (1 + max|h|))
    moved = _changed_minilm(minilm_dir, tmp_path / "moved", lambda b: b + np.float32(3e-4))
    report = run_parity(str(moved), backends=one, golden=str(golden))
    bad = {(r.case, r.field) for r in report.failures}
    assert {(n, "last_hidden_state") for n in ("line1", "qa", "long", "unicode", "zebra", "line6")} <= bad
    row = next(r for r in report.failures if r.case == "qa" and r.field == "last_hidden_state")
    assert row.pair == f"golden~{one[0]}" and 2.5e-4 < row.max_abs < 3.5e-4 and row.limit < 1.5e-4
    code = main(["parity", str(moved), "--golden", str(golden), "--backends", ",".join(one), "-q"])
    out = capsys.readouterr().out
    assert code == 1
    assert "BertModel/qa/last_hidden_state: max|Δ| 0.0003" in out and 'input "Where do zebras live? | Zebras' in out


def test_readme_ci_commands_as_written(minilm_dir, tmp_path, capsys):
    """README "Parity in your CI": its inputs file and its `bert parity` lines (paths substituted) pass on MiniLM."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Parity in your CI") :]
    section = section[: section.index("\n## ")]
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "parity.jsonl").write_text(section.split("```json\n", 1)[1].split("```", 1)[0])
    lines = [line.split("bert parity ", 1)[1] for line in section.splitlines() if "bert parity models/ours" in line]
    assert len(lines) >= 2 and "--save-golden" in lines[0] and "--golden" in lines[1]
    where = {
        "models/ours": str(minilm_dir),
        "ci/": f"{tmp_path}/ci/",
        '"$GITHUB_STEP_SUMMARY"': str(tmp_path / "summary.md"),
        "parity.xml": str(tmp_path / "parity.xml"),
    }
    for line in lines[:2]:
        command = line.split("  #")[0]
        for name, path in where.items():
            command = command.replace(name, path)
        code = main(["parity"] + shlex.split(command) + ["-q"])
        assert code == 0, capsys.readouterr().out[-3000:]
    assert (tmp_path / "ci" / "ours.golden.safetensors").is_file()
    assert "golden BertModel" in (tmp_path / "summary.md").read_text()
    assert b'failures="0"' in (tmp_path / "parity.xml").read_bytes()


# ------------------------------------------------------------------------------------------ refusals (tiny model)


@pytest.fixture(scope="module")
def tiny_golden(tiny_ckpt, backends, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny-golden")
    inputs = _jsonl(tmp / "inputs.jsonl", [{"text": "hello world"}, {"text": "what is", "text_pair": "paris"}])
    golden = tmp / "tiny.golden.safetensors"
    report = run_parity(str(tiny_ckpt), backends=backends[:1], inputs=str(inputs), save_golden=str(golden))
    assert report.passed and golden.is_file(), report.format_table()
    return inputs, golden


def test_golden_file_for_another_model_tokenizer_or_inputs_is_refused(
    tiny_ckpt, tiny_golden, make_tiny, backends, tmp_path, capsys
):
    inputs, golden = tiny_golden
    other_model = make_tiny(tmp_path / "other-model", intermediate_size=40)
    other_tok = tmp_path / "other-tokenizer"
    shutil.copytree(tiny_ckpt, other_tok)
    vocab = (other_tok / "vocab.txt").read_text().replace("\nparis\n", "\nrome\n")
    (other_tok / "vocab.txt").write_text(vocab)
    other_inputs = _jsonl(tmp_path / "other.jsonl", [{"text": "hello world"}, {"text": "what is", "text_pair": "rome"}])
    cases = [
        ([str(other_model)], "was made for another model (config differs: intermediate_size: 37 in the golden "),
        ([str(other_tok)], "was made with another tokenizer"),
        (
            [str(tiny_ckpt), "--inputs", str(other_inputs)],
            'was made from other inputs (line2 "what is | rome" vs line2 ',
        ),
        ([str(tiny_ckpt), "--heads", "qa"], "has no outputs for BertForQuestionAnswering (it has BertForMaskedLM)"),
        ([str(tiny_ckpt), "--golden", str(tiny_ckpt / "model.safetensors")], "not a bert parity golden file"),
    ]
    for args, message in cases:
        argv = ["parity"] + args + ([] if "--golden" in args else ["--golden", str(golden)]) + ["-q"]
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    assert main(["parity", str(tiny_ckpt), "--golden", str(garbage), "-q"]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    with pytest.raises(GoldenMismatch):  # the same refusal through the Python API
        run_parity(str(other_model), golden=str(golden))
    # the same inputs in the golden file's own order and content are accepted
    assert run_parity(str(tiny_ckpt), inputs=str(inputs), golden=str(golden), backends=backends[:1]).passed
