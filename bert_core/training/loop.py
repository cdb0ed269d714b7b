"""The training loop shared by the torch and flax trainers, and the pieces tf's ``fit`` callbacks reuse.

:class:`TrainLoop` drives a backend object (``bert_<backend>.training.LoopBackend``) through the recipe of
docs/training.md: the batch order of :mod:`~bert_core.training.order`, one ``train_step`` per optimizer step, logging,
evaluation, checkpoints (with resume) and the final outputs. The backend only does the math:

- ``train_step(micro_batches: list[dict[str, np.ndarray]]) -> (loss: float, grad_norm: float)``
- ``eval_step(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]`` (``loss`` and the head's outputs, float32)
- ``optimizer_state() -> dict[str, np.ndarray]`` / ``load_optimizer_state(state)`` (layout of
  :mod:`~bert_core.training.state`), ``rng_state()`` / ``load_rng_state(state)`` (integer arrays)
- ``model``: the head, with ``save_pretrained(dir)``, ``load_canonical_weights(weights)`` and ``head_name``.

The pieces: :class:`LogWriter` (``log.jsonl`` + the tqdm progress bar), :class:`Evaluator` (batches, gathers outputs,
the task's post-processing and metrics), :class:`Checkpointer` (save, best tracking, rotation) and :func:`finish`
(final model, ``metrics.json``, ``args.json``, ``training.png``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..io_utils import atomic_write_text
from . import order, schedules
from .args import TrainingArguments
from .distributed import World, shard_step
from .order import Position
from .state import (
    CHECKPOINTS_DIR,
    STEP_PREFIX,
    TrainerState,
    check_resume,
    load_checkpoint,
    load_model_weights,
    resolve_resume,
    rotate_checkpoints,
    save_checkpoint,
)

LOG_NAME = "log.jsonl"
METRICS_NAME = "metrics.json"
ARGS_NAME = "args.json"
PLOT_NAME = "training.png"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def read_log(path: os.PathLike) -> List[Dict[str, Any]]:
    """The records of a ``log.jsonl`` (a line cut short by a kill is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


# ------------------------------------------------------------------------------------------------ logging


class LogWriter:
    """``log.jsonl`` (one JSON object per line, appended as training goes) and the progress bar.

    Args:
        output_dir: the run's output directory.
        quiet: no progress bar.
        enabled: False on the workers other than rank 0 of a distributed run: they write nothing.
    """

    def __init__(self, output_dir: os.PathLike, quiet: bool = False, enabled: bool = True) -> None:
        self.path = Path(output_dir) / LOG_NAME
        self.quiet = quiet or not enabled
        self.enabled = enabled
        self._bar = None

    def start(self, total_steps: int, initial_step: int = 0, resume: bool = False) -> None:
        """Open the log: a fresh run starts it empty; a resumed one keeps the records up to ``initial_step`` (those
        written after the checkpoint are dropped: the resumed run writes them again). Opens the progress bar."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_log(self.path) if r.get("step", 0) <= initial_step] if resume else []
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total_steps, initial=initial_step, disable=self.quiet, unit="step", dynamic_ncols=True, leave=True
        )

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one record (numpy scalars converted)."""
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(_jsonable(dict(record))) + "\n")

    def progress(self, steps: int = 1, **postfix: float) -> None:
        """Advance the bar by ``steps`` and show ``postfix`` (loss, lr, examples/s)."""
        if self._bar is None:
            return
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(steps)

    def write(self, message: str) -> None:
        """A line above the bar (eval results); silent with ``quiet``."""
        if not self.quiet:
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def records(self) -> List[Dict[str, Any]]:
        return read_log(self.path)


# ------------------------------------------------------------------------------------------------ evaluation


class Evaluator:
    """Runs ``predict`` over the eval features and scores the result with the task.

    Features go in file order, in batches of ``per_device_eval_batch_size``, collated by ``task.collate(rows, rng)``
    with a fixed generator per batch (``order.eval_rng``) so MLM eval masks are the same every time and in every
    backend. Each batch's scalar ``loss`` is repeated once per row, and the outputs named by ``task.eval_outputs``
    (all of them when the task has no such attribute: an MLM task keeps none of its vocabulary-sized logits) are
    gathered with ``bert_core.tasks.stack_outputs`` (concatenated, later axes padded with -100, as HF ``Trainer``
    does). Then ``predictions = task.postprocess(outputs, features, examples, args)``, scored by
    ``task.metrics(predictions, examples)``; ``eval_loss`` is the mean of the per-row loss (HF's).

    Args:
        task: a ``bert_core.tasks`` task object.
        eval_features, eval_examples: what ``task.features(..., training=False)`` and ``task.read`` gave.
        args: the run's arguments (batch size, seed, QA decoding options).
        predict: ``batch -> {"loss": (), name: array}`` (a backend's ``eval_step``).
    """

    def __init__(
        self,
        task: Any,
        eval_features: Sequence[Mapping[str, Any]],
        eval_examples: Optional[Sequence[Mapping[str, Any]]],
        args: TrainingArguments,
        predict: Callable[[Dict[str, np.ndarray]], Mapping[str, np.ndarray]],
    ) -> None:
        if not eval_features:
            raise ValueError("evaluation needs at least one eval feature; the eval file gave none")
        self.task, self.features, self.examples = task, list(eval_features), eval_examples
        self.args, self.predict = args, predict
        self.predictions: Any = None

    def batches(self) -> Iterator[Tuple[List[Mapping[str, Any]], Dict[str, np.ndarray]]]:
        """``(rows, collated batch)`` in order."""
        size = self.args.per_device_eval_batch_size
        for index, start in enumerate(range(0, len(self.features), size)):
            rows = self.features[start : start + size]
            yield rows, self.task.collate(rows, rng=order.eval_rng(self.args.seed, index))

    def __call__(self) -> Dict[str, float]:
        """Evaluate. Returns ``{"eval_loss": float, "eval_<metric>": float, ...}``; sets ``self.predictions``."""
        from ..tasks import stack_outputs

        keep = getattr(self.task, "eval_outputs", None)
        batches: List[Dict[str, np.ndarray]] = []
        for rows, batch in self.batches():
            kept: Dict[str, np.ndarray] = {}
            for name, value in self.predict(batch).items():
                if value is None:
                    continue
                if name == "loss":
                    kept[name] = np.full(len(rows), float(np.asarray(value)), np.float32)
                elif keep is None or name in keep:
                    kept[name] = np.asarray(value)
            batches.append(kept)
        outputs = stack_outputs(batches)
        metrics: Dict[str, float] = {}
        if "loss" in outputs:
            metrics["eval_loss"] = float(np.mean(outputs["loss"], dtype=np.float64))
        self.predictions = self.task.postprocess(outputs, self.features, self.examples, self.args)
        for name, value in self.task.metrics(self.predictions, self.examples).items():
            metrics[name if name.startswith("eval_") else f"eval_{name}"] = float(value)
        return metrics

    evaluate = __call__


def best_metric_name(args: TrainingArguments, task: Any) -> Tuple[str, bool]:
    """The eval metric that picks the best checkpoint (``eval_`` prefixed) and whether greater is better.

    ``args.metric_for_best_model`` or the task's ``default_metric`` (``loss`` when it has none); the direction is
    ``args.greater_is_better``, else the task's for its default metric, else HF's rule (a ``loss`` is minimised).
    """
    default = getattr(task, "default_metric", None)
    name = args.metric_for_best_model or default or "loss"
    bare = name[len("eval_") :] if name.startswith("eval_") else name
    if args.greater_is_better is not None:
        greater = args.greater_is_better
    elif default is not None and bare == default and getattr(task, "greater_is_better", None) is not None:
        greater = bool(task.greater_is_better)
    else:
        greater = not bare.endswith("loss")
    return f"eval_{bare}", greater


# ------------------------------------------------------------------------------------------------ checkpoints


def clear_leftovers(output_dir: os.PathLike) -> None:
    """Remove what killed saves left in ``checkpoints/`` (hidden staging and deletion directories)."""
    import shutil

    root = Path(output_dir) / CHECKPOINTS_DIR
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith(f".{STEP_PREFIX}") and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


class Checkpointer:
    """Saves ``checkpoints/step-N/``, tracks the best checkpoint by the eval metric, and rotates old ones.

    Args:
        output_dir: the run's output directory.
        args: the run's arguments (``save_total_limit``; the resume fields stored in every checkpoint).
        metric_name: the ``eval_`` metric that decides "best" (see :func:`best_metric_name`); None: no best.
        greater_is_better: its direction.
    """

    def __init__(
        self,
        output_dir: os.PathLike,
        args: TrainingArguments,
        metric_name: Optional[str] = None,
        greater_is_better: bool = True,
        writes: bool = True,
    ) -> None:
        self.output_dir, self.args = Path(output_dir), args
        self.metric_name, self.greater_is_better = metric_name, greater_is_better
        self.best_metric: Optional[float] = None
        self.best_step: Optional[int] = None
        if writes:  # only the writing worker: another's cleanup could remove a stage being written
            clear_leftovers(self.output_dir)

    def is_better(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best_metric is None:
            return True
        return value > self.best_metric if self.greater_is_better else value < self.best_metric

    def restore(self, state: TrainerState) -> None:
        """Take the best checkpoint so far from a resumed checkpoint's state."""
        self.best_metric, self.best_step = state.best_metric, state.best_step

    def _best_after(self, step: int, metrics: Optional[Mapping[str, float]]) -> Tuple[Optional[float], Optional[int]]:
        value = None if metrics is None or self.metric_name is None else metrics.get(self.metric_name)
        if value is not None and self.is_better(float(value)):
            return float(value), int(step)
        return self.best_metric, self.best_step

    def track(self, step: int, metrics: Optional[Mapping[str, float]] = None) -> None:
        """Update the best checkpoint as :meth:`save` would, without writing (the workers that do not write)."""
        self.best_metric, self.best_step = self._best_after(step, metrics)

    def save(
        self,
        step: int,
        position: Position,
        model_writer: Callable[[Path], Any],
        optimizer_state: Mapping[str, np.ndarray],
        rng_state: Mapping[str, np.ndarray],
        metrics: Optional[Mapping[str, float]] = None,
        loop_state: Optional[Mapping[str, Any]] = None,
    ) -> Path:
        """Write checkpoint ``step`` (the data position of the next micro-batch, the eval ``metrics`` of this step if
        any), update the best, and delete checkpoints beyond ``save_total_limit`` (never the best)."""
        best_metric, best_step = self._best_after(step, metrics)
        state = TrainerState(
            global_step=int(step),
            epoch=int(position.epoch),
            micro_index=int(position.micro_index),
            best_metric=best_metric,
            best_step=best_step,
            metric_name=self.metric_name,
            greater_is_better=self.greater_is_better,
            args=self.args.resume_fields(),
            loop=dict(loop_state or {}),
        )
        path = save_checkpoint(self.output_dir, step, model_writer, optimizer_state, rng_state, state)
        self.best_metric, self.best_step = best_metric, best_step
        rotate_checkpoints(self.output_dir, self.args.save_total_limit, self.best_step)
        return path


# ------------------------------------------------------------------------------------------------ final outputs


def model_writer(model: Any, tokenizer: Any = None) -> Callable[[Path], None]:
    """``directory -> None`` writing the model (``save_pretrained``) and, when given, the tokenizer files."""

    def write(directory: Path) -> None:
        model.save_pretrained(directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)

    return write


def finish(
    args: TrainingArguments,
    model: Any,
    metrics: Mapping[str, Any],
    tokenizer: Any = None,
    metric_name: Optional[str] = None,
    writer: Optional[Callable[[Path], Any]] = None,
) -> Dict[str, Any]:
    """Write the run's final outputs into ``args.output_dir``: the model (+ tokenizer) as a canonical checkpoint,
    ``metrics.json``, ``args.json`` and ``training.png`` (loss and ``metric_name`` over steps, from ``log.jsonl``).
    ``writer`` (``directory -> None``) replaces ``model_writer(model, tokenizer)``, e.g. for gathered shards.

    Returns:
        ``metrics`` as written (plain JSON types).
    """
    from .plot import plot_training

    out = Path(args.output_dir)
    (writer or model_writer(model, tokenizer))(out)
    metrics = _jsonable(dict(metrics))
    atomic_write_text(out / METRICS_NAME, json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out / ARGS_NAME, args.to_json())
    plot_training(read_log(out / LOG_NAME), out / PLOT_NAME, metric_name)
    return metrics


# ------------------------------------------------------------------------------------------------ the loop


def _due(step: int, every: int, end_of_epoch: bool) -> bool:
    """Whether an every-``every``-steps event is due (``every == 0``: at the end of each epoch)."""
    return step % every == 0 if every else end_of_epoch


class _Interrupt:
    """Defers Ctrl-C to the end of the current step: a step is never cut in half, so the checkpoint saved on
    interruption is a consistent one. A second Ctrl-C raises at once (no checkpoint)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_Interrupt":
        # only the main thread may set handlers; a custom handler the user installed is left alone
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class TrainLoop:
    """The recipe's driver (torch and flax ``Trainer``\\ s are this loop over their ``LoopBackend``).

    Args:
        backend: the ``LoopBackend`` (see the module docstring).
        task: a ``bert_core.tasks`` task object (``collate``, and for evaluation ``postprocess``/``metrics``).
        args: the run's arguments (validated here).
        train_features: the training features (``task.features(..., training=True)``); empty for a loop that only
            evaluates.
        eval_features, eval_examples: evaluation data, or None for no evaluation.
        tokenizer: saved with every checkpoint and with the final model when given.

    ``train()`` runs from the start, or from ``args.resume_from`` (model weights, optimizer, RNG and data position
    restored, so the remaining steps log exactly what the uninterrupted run logs), and returns the final metrics.
    """

    def __init__(
        self,
        backend: Any,
        task: Any,
        args: TrainingArguments,
        train_features: Sequence[Mapping[str, Any]],
        eval_features: Optional[Sequence[Mapping[str, Any]]] = None,
        eval_examples: Optional[Sequence[Mapping[str, Any]]] = None,
        tokenizer: Any = None,
    ) -> None:
        self.backend, self.task, self.args = backend, task, args.validate()
        self.world: World = getattr(backend, "world", None) or World()
        # backend.global_batches: every worker's train_step takes the whole global micro-batches (a JAX program over
        # one sharded global array takes its rows itself and needs no loss scales)
        # The data order is the one of a single process whose micro-batch is the global one (see distributed).
        data_parallel = int(getattr(backend, "data_parallel_size", None) or self.world.size)
        self.order_args = dataclasses.replace(
            args, per_device_train_batch_size=args.per_device_train_batch_size * data_parallel
        )
        self.train_features = list(train_features or [])
        self.eval_features = list(eval_features) if eval_features else None
        self.eval_examples = eval_examples
        self.tokenizer = tokenizer
        self.total_steps = order.total_steps(self.order_args, len(self.train_features))
        self.steps_per_epoch = order.steps_per_epoch(
            len(self.train_features), self.order_args.per_device_train_batch_size, args.gradient_accumulation_steps
        )
        self.metric_name, self.greater_is_better = best_metric_name(args, task)
        self.log = LogWriter(args.output_dir, args.quiet, enabled=self.world.is_main)
        self.global_step = 0
        self.position = Position(0, 0)
        self._loop: Dict[str, float] = {"log_loss_sum": 0.0, "log_steps": 0, "total_loss_sum": 0.0}
        self._last_eval: Dict[str, float] = {}
        self._last_eval_step: Optional[int] = None

    # pieces

    def _lengths(self) -> Optional[List[int]]:
        if not self.args.group_by_length:
            return None
        return [len(f["input_ids"]) for f in self.train_features]

    def collate_step(self, position: Position, micro_batches: Sequence[np.ndarray]) -> List[Dict[str, np.ndarray]]:
        """The collated (global) micro-batches of one optimizer step (MLM masks from ``order.batch_rng``)."""
        return [
            self.task.collate(
                [self.train_features[i] for i in indices],
                rng=order.batch_rng(self.args.seed, position.epoch, position.micro_index + j),
            )
            for j, indices in enumerate(micro_batches)
        ]

    def evaluate(self) -> Dict[str, float]:
        """Evaluate the current model on the eval features. Returns ``eval_``-prefixed metrics."""
        if self.eval_features is None:
            raise ValueError("no eval data: pass eval_features (bert train/evaluate --eval FILE)")
        return Evaluator(self.task, self.eval_features, self.eval_examples, self.args, self.backend.eval_step)()

    def _writer(self, step: int) -> Callable[[Path], Any]:
        # Called on every worker: a sharded backend gathers (or writes its shards) here, collectively.
        hook = getattr(self.backend, "checkpoint_writer", None)
        if hook is not None:
            return hook(self.tokenizer, Path(self.args.output_dir), step)
        return model_writer(self.backend.model, self.tokenizer)

    def _barrier(self) -> None:
        if self.world.size > 1:
            self.backend.barrier()

    def save_checkpoint(self, metrics: Optional[Mapping[str, float]] = None) -> Optional[Path]:
        """Checkpoint the state after the last completed step (written by rank 0; every worker takes part)."""
        writer = self._writer(self.global_step)
        optimizer_state, rng_state = self.backend.optimizer_state(), self.backend.rng_state()
        path = None
        if self.world.is_main:
            path = self.checkpointer.save(
                self.global_step, self.position, writer, optimizer_state, rng_state, metrics, self._loop
            )
        else:  # the best-checkpoint bookkeeping stays the same on every worker
            self.checkpointer.track(self.global_step, metrics)
        self._barrier()
        return path

    def _resume(self) -> None:
        where = resolve_resume(self.args.resume_from)
        optimizer_state, rng_state, state = load_checkpoint(where)
        check_resume(state, self.order_args, where)
        restore = getattr(self.backend, "restore_checkpoint", None)
        if restore is not None:
            restore(where)
        else:
            load_model_weights(where, self.backend.model)
            self.backend.load_optimizer_state(optimizer_state)
        self.backend.load_rng_state(rng_state)
        self.checkpointer.restore(state)
        self.global_step, self.position = state.global_step, Position(state.epoch, state.micro_index)
        self._loop.update(state.loop)

    def _epoch(self, step: int) -> float:
        return round(step / self.steps_per_epoch, 4)

    def _log_train(self, grad_norm: float, learning_rate: float, examples: int, seconds: float) -> None:
        steps = self._loop["log_steps"]
        self.log.log(
            {
                "step": self.global_step,
                "epoch": self._epoch(self.global_step),
                "loss": self._loop["log_loss_sum"] / steps,
                "learning_rate": learning_rate,
                "grad_norm": grad_norm,
                "examples_per_second": examples / seconds if seconds > 0 else float("inf"),
            }
        )
        self._loop["log_loss_sum"], self._loop["log_steps"] = 0.0, 0

    def _run_eval(self) -> Dict[str, float]:
        metrics = self.evaluate()
        self.log.log({"step": self.global_step, "epoch": self._epoch(self.global_step), **metrics})
        self.log.write(f"step {self.global_step}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        self._last_eval, self._last_eval_step = metrics, self.global_step
        return metrics

    # the run

    def train(self) -> Dict[str, Any]:
        """Run the remaining steps, then write the final outputs (:func:`finish`). Returns the final metrics.

        Raises:
            KeyboardInterrupt: after Ctrl-C, once the checkpoint of the last completed step is saved.
        """
        args = self.args
        if not self.train_features:
            raise ValueError("training needs at least one training feature; the train file gave none")
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        self.checkpointer = Checkpointer(
            args.output_dir, self.order_args, self.metric_name, self.greater_is_better, writes=self.world.is_main
        )
        if args.resume_from:
            self._resume()
        self.log.start(self.total_steps, self.global_step, resume=bool(args.resume_from))
        micro_per_epoch = order.micro_batches_per_epoch(
            len(self.train_features), self.order_args.per_device_train_batch_size
        )
        started, in_step, saved_step = time.perf_counter(), False, None
        log_examples, log_start = 0, time.perf_counter()
        try:
            with _Interrupt() as interrupt:
                for position, micro_batches in order.iter_steps(
                    len(self.train_features), self.order_args, self.position, self._lengths()
                ):
                    batches = self.collate_step(position, micro_batches)
                    in_step = True
                    if self.world.size > 1 and not getattr(self.backend, "global_batches", False):
                        local, scales = shard_step(batches, self.world)
                        loss, grad_norm = self.backend.train_step(local, loss_scales=scales)
                    else:
                        loss, grad_norm = self.backend.train_step(batches)
                    in_step = False
                    loss, grad_norm = float(loss), float(grad_norm)
                    learning_rate = schedules.learning_rate(self.global_step, args, self.total_steps)
                    self.global_step += 1
                    self.position = Position(position.epoch, position.micro_index + len(micro_batches))
                    examples = sum(len(m) for m in micro_batches)
                    log_examples += examples
                    self._loop["log_loss_sum"] += loss
                    self._loop["log_steps"] += 1
                    self._loop["total_loss_sum"] += loss
                    step = self.global_step
                    now = time.perf_counter()
                    self.log.progress(1, loss=loss, lr=learning_rate, ex_s=log_examples / max(now - log_start, 1e-9))
                    if step % args.logging_steps == 0 or step == self.total_steps:
                        self._log_train(grad_norm, learning_rate, log_examples, now - log_start)
                        log_examples, log_start = 0, time.perf_counter()
                    end_of_epoch = self.position.micro_index >= micro_per_epoch
                    metrics = None
                    if self.eval_features is not None and _due(step, args.eval_steps, end_of_epoch):
                        metrics = self._run_eval()
                    if _due(step, args.save_steps, end_of_epoch):
                        self.save_checkpoint(metrics)
                        saved_step = step
                    if interrupt.requested:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            self.log.close()
            if in_step:
                warnings.warn(
                    "interrupted inside a training step: no checkpoint saved (the step was incomplete)", stacklevel=2
                )
            elif saved_step != self.global_step and self.global_step > 0 and self.world.size == 1:
                # (a distributed run cannot save alone: its other workers may be gone; its last checkpoint stands)
                path = self.save_checkpoint(self._last_eval if self._last_eval_step == self.global_step else None)
                self.log.write(f"interrupted: checkpoint saved to {os.fspath(path)}")
            raise
        self.log.close()
        if self.eval_features is not None and self._last_eval_step != self.global_step:
            self._run_eval()
        done = max(self.global_step, 1)
        metrics: Dict[str, Any] = {
            "train_loss": self._loop["total_loss_sum"] / done,
            "train_runtime": time.perf_counter() - started,
            "global_step": self.global_step,
            "epoch": self._epoch(self.global_step),
            **self._last_eval,
        }
        if self.checkpointer.best_step is not None:
            metrics.update(best_metric=self.checkpointer.best_metric, best_step=self.checkpointer.best_step)
        writer = self._writer(self.global_step)
        if self.world.is_main:
            metrics = finish(args, self.backend.model, metrics, self.tokenizer, self.metric_name, writer=writer)
        self._barrier()
        return _jsonable(metrics)
