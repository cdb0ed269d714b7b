"""``bert predict`` without a framework: JSONL in/out, error records naming the line, exit codes, one-line usage
errors. The backend is the numpy stand-in of tests/data/pipelines/fake.py (the real backends: tests/contract)."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines"
sys.path.insert(0, str(DATA))

from fake import FakeRunner  # noqa: E402

import bert_core.pipelines as pipelines  # noqa: E402
from bert_core.config import BertConfig  # noqa: E402
from bert_core.pipelines import cli  # noqa: E402

NER = {0: "O", 1: "B-PER", 2: "I-PER"}


@pytest.fixture
def model_dir(tmp_path, minilm_dir, monkeypatch):
    """A directory with MiniLM's tokenizer and a config; the runner is the fake one."""
    directory = tmp_path / "model"
    directory.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, directory / name)
    BertConfig(vocab_size=30522, id2label=NER).save_pretrained(directory)
    monkeypatch.setattr(pipelines, "resolve_backend", lambda model, backend: "fake")
    monkeypatch.setattr(
        pipelines,
        "load_runner",
        lambda name, head, model, **kw: FakeRunner(head, BertConfig.from_pretrained(model)),
    )
    return directory


def predict(tmp_path, args, lines):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    target = tmp_path / "out.jsonl"
    code = cli.main(args + ["--input", str(source), "--output", str(target), "--quiet"])
    records = [json.loads(x) for x in target.read_text(encoding="utf-8").splitlines()] if target.exists() else None
    return code, records


def test_records_in_order_with_errors_naming_lines(tmp_path, model_dir, capsys):
    lines = [
        '"Paris is the [MASK] of France."',
        '{"text": "no mask", "id": "b"}',
        "{not json",
        "",
        '{"text": "a [MASK] b", "id": 7}',
        '{"txt": "typo [MASK]"}',
        "42",
    ]
    code, records = predict(tmp_path, ["fill-mask", "--model", str(model_dir), "--top-k", "2"], lines)
    assert code == 1
    assert [r["line"] for r in records] == list(range(1, 8))
    assert [r.get("id") for r in records] == [None, "b", None, None, 7, None, None]
    assert len(records[0]["output"]) == 2 and set(records[0]["output"][0]) == {
        "score",
        "token",
        "token_str",
        "sequence",
    }
    assert "no mask token ([MASK]) found" in records[1]["error"]
    assert records[2]["error"].startswith("invalid JSON")
    assert records[3]["error"] == "empty line"
    assert "output" in records[4]
    assert "unknown ['txt']" in records[5]["error"]
    assert "got int" in records[6]["error"]
    assert "5 line(s) failed: 2, 3, 4, 6, 7" in capsys.readouterr().err


def test_every_task_through_the_cli(tmp_path, model_dir):
    cases = {
        "text-classification": (['{"text": "a", "text_pair": "b"}', '"good"'], ["--top-k", "all"]),
        "ner": (['"Angela Merkel"'], ["--aggregation-strategy", "simple", "--ignore-labels", ""]),
        "question-answering": (['{"question": "Who?", "context": "Angela Merkel visited Paris."}'], ["--top-k", "2"]),
        "feature-extraction": (['"hello"'], []),
        "sentence-embedding": (['"hello"'], ["--no-normalize"]),
        "zero-shot-classification": (
            ['{"text": "I like football", "candidate_labels": "sport, food"}', '"no labels on this line"'],
            ["--hypothesis-template", "About {}."],
        ),
    }
    for task, (lines, options) in cases.items():
        code, records = predict(tmp_path, [task, "--model", str(model_dir)] + options, lines)
        errors = [r for r in records if "error" in r]
        if task == "zero-shot-classification":
            assert code == 1 and [r["line"] for r in errors] == [2] and "candidate label" in errors[0]["error"]
        else:
            assert code == 0 and not errors, (task, records)
    code, records = predict(tmp_path, ["sentence-embedding", "--model", str(model_dir)], ['"x"'])
    assert len(records[0]["output"]) == 16 and isinstance(records[0]["output"][0], float)


def test_stdin_to_stdout(model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO('"a [MASK]"\n"b [MASK]"\n'))
    assert cli.main(["fill-mask", "--model", str(model_dir), "--top-k", "1", "--quiet"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in out] == [1, 2] and all(len(r["output"]) == 1 for r in out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["summarize", "--model", "M"], "unknown task 'summarize'; expected one of fill-mask"),
        (
            ["fill-mask", "--model", "M", "--doc-stride", "8"],
            "--doc-stride does not apply to fill-mask (its options: --top-k, --targets)",
        ),
        (["fill-mask", "--model", "M", "--top-k", "x"], "argument --top-k: expected an int or 'all', got 'x'"),
        (["fill-mask"], "the following arguments are required: --model"),
        (["fill-mask", "--model", "M", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["fill-mask", "--model", "M", "--input", "/no/such/file.jsonl"], "cannot read --input '/no/such/file.jsonl'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(model_dir, capsys, args, message):
    args = [str(model_dir) if a == "M" else a for a in args]
    try:
        code = cli.main(args)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("bert predict: error: ") and message in err, err
    assert "Traceback" not in err


def test_missing_model_is_a_usage_error(tmp_path, model_dir, capsys):
    code = cli.main(["fill-mask", "--model", str(tmp_path / "nowhere"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


def test_output_file_all_or_nothing(tmp_path, model_dir, monkeypatch):
    target = tmp_path / "out.jsonl"
    target.write_text("previous\n")
    (tmp_path / "in.jsonl").write_text('"a [MASK]"\n')

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_predict", boom)
    with pytest.raises(KeyboardInterrupt):
        cli.main(
            ["fill-mask", "--model", str(model_dir), "--input", str(tmp_path / "in.jsonl"), "--output", str(target)]
        )
    assert (
        target.read_text() == "previous\n" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    )


def test_registration_on_the_bert_parser():
    import argparse

    parser = argparse.ArgumentParser(prog="bert")
    cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["predict", "ner", "--model", "m", "--stride", "16", "--backend", "flax"])
    assert args.func is cli.run and args.task == "ner" and args.stride == 16 and args.backend == "flax"
    assert cli.task_params("token-classification", args) == {"stride": 16}
