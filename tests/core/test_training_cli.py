"""`bert train` / `bert evaluate`: flags -> TrainingArguments, --set typing, run.train/evaluate wiring (a recording
backend module stands in for torch/tf/flax), exit codes (2 user error in one line, 130 Ctrl-C, 3 bug)."""

from __future__ import annotations

import argparse
import json
import types
from pathlib import Path

import pytest

from bert_core.checkpoint import save_pretrained
from bert_core.config import tiny_config
from bert_core.init import init_weights
from bert_core.training import cli, run
from bert_core.training.args import TrainingArguments

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "film", "plot", "very", "the", "a"]


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A tiny canonical checkpoint with tokenizer files."""
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = tiny_config()
    save_pretrained(directory, config, init_weights(config, "BertModel"), architecture="BertModel")
    return directory


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "train.csv"
    rows = ["text,label", "good movie,pos", "bad film,neg", "very good plot,pos", "the bad movie,neg"]
    path.write_text("\n".join(rows) + "\n")
    return path


class Recorder:
    """A backend package + training module: heads record how they were built, Trainer records what it got."""

    def __init__(self, raise_in_train=None):
        self.calls = {}
        recorder = self

        class Head:
            def __init__(self, config, seed=None):
                recorder.calls["init"] = (config, seed)

            @classmethod
            def from_pretrained(cls, path, seed=0, **overrides):
                recorder.calls["from_pretrained"] = (path, seed, overrides)
                return cls.__new__(cls)

        class Trainer:
            def __init__(self, model, args, task, train_features, eval_features, eval_examples, tokenizer):
                recorder.calls["trainer"] = dict(
                    model=model,
                    args=args,
                    task=task,
                    train_features=train_features,
                    eval_features=eval_features,
                    eval_examples=eval_examples,
                    tokenizer=tokenizer,
                )

            def train(self):
                if raise_in_train is not None:
                    raise raise_in_train
                return {"train_loss": 0.5, "global_step": 3}

            def evaluate(self):
                return {"eval_loss": 0.25, "eval_accuracy": 1.0}

        self.package = types.SimpleNamespace(
            BertForSequenceClassification=Head, BertForMaskedLM=Head, BertForPreTraining=Head
        )
        self.training = types.SimpleNamespace(Trainer=Trainer)


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(run, "check_installed", lambda name: "torch")
    monkeypatch.setattr(run, "_backend_modules", lambda name: (rec.package, rec.training))
    return rec


def _train_argv(model_dir, data, out, *extra):
    return ["train", "text-classification", "--backend", "torch", "--model", str(model_dir), "--train", str(data)] + [
        "--output",
        str(out),
        *extra,
    ]


# ------------------------------------------------------------------------------------------------ flags


def test_flags_map_to_training_arguments(tmp_path):
    ns = cli.build_parser().parse_args(
        _train_argv("m", "t.csv", tmp_path, "--eval", "e.csv", "--max-steps", "7", "--batch-size", "4")
        + ["--grad-accum", "2", "--lr", "1e-4", "--schedule", "cosine", "--warmup-steps", "3", "--weight-decay", "0.1"]
        + ["--max-grad-norm", "0", "--max-length", "64", "--doc-stride", "32", "--bf16", "--seed", "7", "--no-shuffle"]
        + ["--set", "hidden_dropout_prob=0", "--set", "attention_probs_dropout_prob=0", "--eval-every", "5"]
        + ["--save-every", "10", "--resume", "r", "-q"]
    )
    args = cli.training_arguments(ns)
    expected = TrainingArguments(
        output_dir=str(tmp_path),
        task="text-classification",
        backend="torch",
        model="m",
        train_file="t.csv",
        eval_file="e.csv",
        max_steps=7,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        learning_rate=1e-4,
        lr_scheduler_type="cosine",
        warmup_steps=3,
        weight_decay=0.1,
        max_grad_norm=0.0,
        max_length=64,
        doc_stride=32,
        bf16=True,
        seed=7,
        shuffle=False,
        config_overrides={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        eval_steps=5,
        save_steps=10,
        resume_from="r",
        quiet=True,
    )
    assert args == expected


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "2", "--max-steps", "3"], "not allowed with argument"),
        (["--warmup-ratio", "0.1", "--warmup-steps", "3"], "not allowed with argument"),
        (["--schedule", "poly"], "invalid choice"),
        (["--max-steps", "0"], "expected an integer >= 1"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, extra, message):
    assert cli.main(_train_argv("m", "t.csv", tmp_path, *extra)) == 2
    assert message in capsys.readouterr().err


def test_add_parsers_on_another_parser(capsys):
    parser = argparse.ArgumentParser(prog="bert")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env")
    cli.add_parsers(sub)
    ns = parser.parse_args(["evaluate", "mlm", "--backend", "flax", "--model", "m", "--eval", "e.txt"])
    assert ns.func is cli.cmd_evaluate
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--grad-accum",
        "--warmup-ratio",
        "--no-shuffle",
        "--set CONFIG_KEY=VALUE",
        "--resume",
        "--eval-every",
    ):
        assert flag in out


def test_set_values_are_typed():
    parsed = run.parse_config_overrides(
        [
            "hidden_dropout_prob=0",
            "num_hidden_layers=2",
            "tie_word_embeddings=false",
            "classifier_dropout=none",
            "hidden_act=gelu_new",
            "classifier_dropout=0.2",
        ]
    )
    assert parsed == {
        "hidden_dropout_prob": 0.0,
        "num_hidden_layers": 2,
        "tie_word_embeddings": False,
        "classifier_dropout": 0.2,
        "hidden_act": "gelu_new",
    }
    assert type(parsed["hidden_dropout_prob"]) is float
    with pytest.raises(ValueError, match="unknown config field 'dropout'"):
        run.parse_config_overrides(["dropout=0"])
    with pytest.raises(ValueError, match="expected an integer"):
        run.parse_config_overrides(["num_hidden_layers=2.5"])
    with pytest.raises(ValueError, match="expected true or false"):
        run.parse_config_overrides(["is_decoder=maybe"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        run.parse_config_overrides(["hidden_dropout_prob"])
    with pytest.raises(ValueError, match="id2label"):
        run.parse_config_overrides(["id2label={}"])


# ------------------------------------------------------------------------------------------------ wiring


def test_train_wires_task_model_and_trainer(recorder, model_dir, data, tmp_path, capsys):
    code = cli.main(
        _train_argv(model_dir, data, tmp_path / "out", "--eval", str(data), "--set", "hidden_dropout_prob=0")
    )
    assert code == 0, capsys.readouterr().err
    path, seed, overrides = recorder.calls["from_pretrained"]
    assert path == str(model_dir) and seed == 42
    assert overrides["num_labels"] == 2 and overrides["id2label"] == {0: "neg", 1: "pos"}
    assert overrides["hidden_dropout_prob"] == 0.0
    got = recorder.calls["trainer"]
    assert got["task"].name == "text-classification" and len(got["train_features"]) == 4
    assert len(got["eval_features"]) == 4 and len(got["eval_examples"]) == 4
    assert got["tokenizer"].convert_tokens_to_ids("movie") == VOCAB.index("movie")
    assert got["args"].config_overrides == {"hidden_dropout_prob": 0.0} and got["args"].backend == "torch"
    assert got["train_features"][0]["input_ids"][0] == VOCAB.index("[CLS]")
    assert "bert train: done" in capsys.readouterr().err


def test_evaluate_uses_the_trained_label_set(recorder, model_dir, data, tmp_path, capsys):
    config = json.loads((model_dir / "config.json").read_text())
    config.update(id2label={"0": "pos", "1": "neg"}, label2id={"pos": 0, "neg": 1})
    (model_dir / "config.json").write_text(json.dumps(config))
    argv = ["evaluate", "text-classification", "--backend", "torch", "--model", str(model_dir), "--eval", str(data)]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"eval_loss": 0.25, "eval_accuracy": 1.0}
    got = recorder.calls["trainer"]
    assert got["train_features"] == [] and [f["labels"] for f in got["eval_features"]] == [0, 1, 0, 1]
    assert cli.main(argv + ["--output", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["eval_accuracy"] == 1.0


def test_mlm_from_a_config_without_weights(recorder, model_dir, data, tmp_path, capsys):
    (model_dir / "model.safetensors").unlink()
    text = tmp_path / "text.txt"
    text.write_text("good movie\nbad film plot\n")
    argv = ["train", "mlm", "--backend", "torch", "--model", str(model_dir), "--train", str(text)]
    assert cli.main(argv + ["--output", str(tmp_path / "o"), "--seed", "5"]) == 0
    config, seed = recorder.calls["init"]
    assert seed == 5 and config.hidden_size == tiny_config().hidden_size
    assert "starts from a random initialisation (seed 5)" in capsys.readouterr().err
    # a fine-tuning task needs weights
    assert cli.main(_train_argv(model_dir, data, tmp_path / "o2")) == 2
    assert "no weights in" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ exit codes


def _one_error_line(err: str, command: str = "train") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"bert {command}: error: "), err
    return lines[0]


def test_user_errors_exit_2_in_one_line(recorder, model_dir, data, tmp_path, capsys):
    assert cli.main(_train_argv(model_dir, tmp_path / "missing.csv", tmp_path / "o")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--train" in line and "missing.csv: no such file" in line.replace("'", "")
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood movie,pos\nbad movie,\n")
    assert cli.main(_train_argv(model_dir, bad, tmp_path / "o")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "bad.csv" in line and "line 3" in line and "'label'" in line
    assert cli.main(_train_argv(model_dir, data, tmp_path / "o", "--batch-size", "0")) == 2
    assert "per_device_train_batch_size=0" in _one_error_line(capsys.readouterr().err)
    assert cli.main(_train_argv(model_dir, data, tmp_path / "o", "--set", "nope=1")) == 2
    assert "unknown config field 'nope'" in _one_error_line(capsys.readouterr().err)
    assert cli.main(_train_argv(tmp_path / "no-model", data, tmp_path / "o")) == 2
    assert "no-model" in _one_error_line(capsys.readouterr().err)


def test_backend_not_installed_exit_2(model_dir, data, tmp_path, capsys, monkeypatch):
    from bert_core import backends

    monkeypatch.setattr(backends, "missing_modules", lambda name: ["jax"])
    assert (
        cli.main(
            _train_argv(model_dir, data, tmp_path / "o")[:3]
            + ["flax"]
            + _train_argv(model_dir, data, tmp_path / "o")[4:]
        )
        == 2
    )
    assert "pip install 'multi-bert[flax]'" in _one_error_line(capsys.readouterr().err)


def test_interrupt_exits_130_and_bugs_exit_3(model_dir, data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run, "check_installed", lambda name: "torch")
    for error, code in ((KeyboardInterrupt(), 130), (ZeroDivisionError("oops"), 3)):
        rec = Recorder(raise_in_train=error)
        monkeypatch.setattr(run, "_backend_modules", lambda name, rec=rec: (rec.package, rec.training))
        assert cli.main(_train_argv(model_dir, data, tmp_path / "o")) == code
        err = capsys.readouterr().err
        assert ("interrupted" in err) if code == 130 else ("Traceback" in err and "internal error" in err)
