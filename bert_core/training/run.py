"""``bert train`` / ``bert evaluate`` as Python functions: data, tokenizer and model head in, the backend's Trainer run.

Framework-free: the backend (``bert_torch``, ``bert_tf``, ``bert_flax``) is imported by name only when a run starts,
and its ``training.Trainer`` does the work (see docs/training.md).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..backends import BACKENDS, check_installed
from ..checkpoint import find_weights_file
from ..config import BertConfig
from ..hub import resolve_model_dir
from ..io_utils import atomic_write_text
from .args import TrainingArguments

#: tasks that may start from a config alone (random initialisation), as HF ``run_mlm --config_name`` does
FROM_SCRATCH_TASKS = ("mlm", "pretraining")

#: config fields whose type cannot be read off their default (``None``): the types they take
_OPTIONAL_FIELD_TYPES = {"classifier_dropout": float, "problem_type": str}
#: label maps are set from the data (or the trained model's config), not from the command line
_NOT_SETTABLE = ("id2label", "label2id", "model_type")


def config_fields() -> Dict[str, Any]:
    """The config fields ``--set`` accepts, with their defaults (which give their types)."""
    defaults = {k: v for k, v in BertConfig().to_dict().items() if k not in _NOT_SETTABLE}
    return {**defaults, "num_labels": 2}


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


# ------------------------------------------------------------------------------------------------ --set KEY=VALUE


def parse_config_value(key: str, text: str) -> Any:
    """Read ``text`` as the type of config field ``key`` (from ``BertConfig``'s defaults).

    Raises:
        ValueError: an unknown field (listing the known ones) or a value of the wrong type.
    """
    fields = config_fields()
    if key not in fields:
        raise ValueError(f"--set {key}=...: unknown config field {key!r}; known fields: {', '.join(fields)}")
    default = fields[key]
    kind = _OPTIONAL_FIELD_TYPES.get(key, type(default))
    value = text.strip()
    if default is None and value.lower() in ("none", "null"):
        return None
    if kind is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"--set {key}={text}: expected true or false")
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"--set {key}={text}: expected {'an integer' if kind is int else 'a number'}") from None
    return value


def parse_config_overrides(items: Optional[List[str]]) -> Dict[str, Any]:
    """``["hidden_dropout_prob=0", ...]`` -> ``{"hidden_dropout_prob": 0.0, ...}`` (typed, later items win)."""
    out: Dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set hidden_dropout_prob=0")
        out[key.strip()] = parse_config_value(key.strip(), value)
    return out


# ------------------------------------------------------------------------------------------------ loading


def _require(args: TrainingArguments, *names: str) -> None:
    for name in names:
        if getattr(args, name) is None:
            flag = {"train_file": "--train", "eval_file": "--eval", "output_dir": "--output"}.get(name, f"--{name}")
            raise ValueError(f"{flag} is required (training argument {name})")


def _backend_modules(name: str) -> Tuple[Any, Any]:
    """(the backend package, its ``training`` module), imported by name."""
    package = importlib.import_module(BACKENDS[name].package)
    return package, importlib.import_module(f"{BACKENDS[name].package}.training")


def _check_file(path: str, flag: str) -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{flag} {path!r}: no such file")


def load_model(
    package: Any, head: str, model_dir: Path, overrides: Mapping[str, Any], args: TrainingArguments, task: str
) -> Any:
    """``package.<head>.from_pretrained(model_dir, seed=, **overrides)``; a directory with a config but no weights
    gives a randomly initialised head for the tasks that train from scratch (:data:`FROM_SCRATCH_TASKS`)."""
    head_class = getattr(package, head)
    try:
        find_weights_file(model_dir)
    except FileNotFoundError:
        if task not in FROM_SCRATCH_TASKS or not (model_dir / "config.json").is_file():
            raise
        config = BertConfig.from_pretrained(model_dir, **dict(overrides))
        if not args.quiet:
            print(
                f"bert train: {os.fspath(model_dir)} has a config and no weights: {head} starts from a random "
                f"initialisation (seed {args.seed})",
                file=sys.stderr,
            )
        return head_class(config, seed=args.seed)
    with warnings.catch_warnings():
        # the new head's "newly initialised" warning is expected when fine-tuning
        warnings.filterwarnings("ignore", message="Some weights of")
        return head_class.from_pretrained(os.fspath(model_dir), seed=args.seed, **dict(overrides))


def _prepare(args: TrainingArguments, data_file: str, flag: str):
    from ..tasks import TASKS
    from ..tokenization_fast import BertTokenizerFast

    args.validate()
    _require(args, "task", "backend", "model")
    backend = check_installed(args.backend)
    args.backend = backend
    _check_file(data_file, flag)
    model_dir = resolve_model_dir(args.model)
    tokenizer = BertTokenizerFast.from_pretrained(os.fspath(model_dir))
    return TASKS[args.task], backend, model_dir, tokenizer


def train(args: TrainingArguments) -> Dict[str, Any]:
    """Fine-tune (or pre-train) ``args.model`` on ``args.train_file`` in ``args.backend``.

    Reads the data with the task, takes the label set from the training examples (``num_labels``, ``id2label``,
    ``label2id``, ``problem_type`` into the config), applies ``args.config_overrides``, loads the head, builds the
    features and runs the backend's ``Trainer``, which writes everything into ``args.output_dir`` (and resumes from
    ``args.resume_from`` when set).

    Returns:
        The final metrics (also in ``metrics.json``).

    Raises:
        ValueError / OSError / ImportError: user errors (bad arguments, files, data rows, missing backend), each
        naming its cause.
    """
    _require(args, "train_file", "output_dir")
    task, backend, model_dir, tokenizer = _prepare(args, args.train_file, "--train")
    if args.eval_file is not None:
        _check_file(args.eval_file, "--eval")
    train_examples = task.read(args.train_file)
    eval_examples = task.read(args.eval_file) if args.eval_file else None
    overrides = {**task.label_config(train_examples), **args.config_overrides}
    package, training = _backend_modules(backend)
    setup = getattr(training, "setup_distributed", None)
    if setup is not None and args.strategy != "none":
        setup(args)  # before the model exists: devices and strategies (tf) must be set up before the first op
    model = load_model(package, task.head, model_dir, overrides, args, args.task)
    train_features = task.features(train_examples, tokenizer, args, training=True)
    eval_features = task.features(eval_examples, tokenizer, args, training=False) if eval_examples else None
    trainer = training.Trainer(model, args, task, train_features, eval_features, eval_examples, tokenizer)
    return trainer.train()


def evaluate(args: TrainingArguments, metrics_path: Optional[os.PathLike] = None) -> Dict[str, Any]:
    """Evaluate ``args.model`` (a trained checkpoint: its config's label set is used) on ``args.eval_file``.

    Returns:
        ``eval_``-prefixed metrics; written as JSON to ``metrics_path`` (atomically) when given.
    """
    _require(args, "eval_file")
    task, backend, model_dir, tokenizer = _prepare(args, args.eval_file, "--eval")
    config = BertConfig.from_pretrained(model_dir, **args.config_overrides)
    task.set_label_config(config)
    eval_examples = task.read(args.eval_file)
    package, training = _backend_modules(backend)
    model = load_model(package, task.head, model_dir, args.config_overrides, args, "")
    eval_features = task.features(eval_examples, tokenizer, args, training=False)
    trainer = training.Trainer(model, args, task, [], eval_features, eval_examples, tokenizer)
    metrics = trainer.evaluate()
    if metrics_path is not None:
        atomic_write_text(Path(metrics_path), json.dumps(metrics, indent=2) + "\n")
    return metrics
