"""Training checkpoints: layout, all-or-nothing save, load, resume resolution and rotation.

A checkpoint is ``OUTPUT_DIR/checkpoints/step-N/``:

- ``config.json`` + ``model.safetensors`` (+ tokenizer files): a canonical HF checkpoint that loads in any backend;
- ``optimizer.safetensors``: AdamW's moments in canonical names and layout, ``exp_avg/<name>`` and
  ``exp_avg_sq/<name>`` (float32), metadata ``{"step": "N", "format": "bert-adamw-1"}``; elementwise state, so every
  backend maps it like the weights (a checkpoint written by torch resumes in flax);
- ``rng.safetensors``: the backend's RNG state as integer arrays (nothing is pickled);
- ``trainer_state.json``: :class:`TrainerState` (step, data position, best metric, the arguments a resume must keep).

The whole directory is written into a staged sibling and renamed into place
(:func:`bert_core.io_utils.staged_directory`): a kill at any moment leaves either the complete new checkpoint or
none, and never touches the previous ones. Hidden siblings (``.step-N.save-*``) that a kill leaves are ignored here and
cleared by the next save.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ..checkpoint import CheckpointError, read_safetensors, read_state_dict
from ..io_utils import staged_directory
from ..weights import normalize_state_dict
from .args import RESUME_FIELDS, TrainingArguments

PathLike = Union[str, os.PathLike]

CHECKPOINTS_DIR = "checkpoints"
STEP_PREFIX = "step-"
OPTIMIZER_NAME = "optimizer.safetensors"
RNG_NAME = "rng.safetensors"
TRAINER_STATE_NAME = "trainer_state.json"
OPTIMIZER_FORMAT = "bert-adamw-1"
TRAINER_STATE_FORMAT = "bert-trainer-state-1"
#: AdamW's elementwise state, each keyed ``<moment>/<canonical name>`` in an optimizer state dict.
MOMENTS = ("exp_avg", "exp_avg_sq")
#: The update count in an optimizer state dict: an int64 0-d array (stored as the file's ``step`` metadata).
STEP_KEY = "step"

_STEP_DIR = re.compile(rf"{STEP_PREFIX}(\d+)")


@dataclass
class TrainerState:
    """What ``trainer_state.json`` holds.

    Attributes:
        global_step: optimizer steps done.
        epoch, micro_index: the :class:`~bert_core.training.order.Position` of the next micro-batch.
        best_metric, best_step: the best eval metric among checkpoints so far and the step of its checkpoint.
        metric_name, greater_is_better: the metric that decides "best" and its direction.
        args: the values of :data:`~bert_core.training.args.RESUME_FIELDS` of the run that wrote it.
        loop: the loop's running sums (loss since the last log, total loss, examples seen), so a resumed run logs
            exactly what the uninterrupted run logs.
    """

    global_step: int
    epoch: int
    micro_index: int
    best_metric: Optional[float] = None
    best_step: Optional[int] = None
    metric_name: Optional[str] = None
    greater_is_better: Optional[bool] = None
    args: Dict[str, Any] = field(default_factory=dict)
    loop: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"format": TRAINER_STATE_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "trainer_state.json") -> "TrainerState":
        if not isinstance(data, Mapping) or data.get("format") != TRAINER_STATE_FORMAT:
            raise CheckpointError(f"{where}: not a trainer state of format {TRAINER_STATE_FORMAT!r}")
        fields = {k: v for k, v in data.items() if k != "format"}
        try:
            state = cls(**fields)
        except TypeError as err:
            raise CheckpointError(f"{where}: {err}") from None
        for name in ("global_step", "epoch", "micro_index"):
            value = getattr(state, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CheckpointError(f"{where}: {name}={value!r} is not a non-negative integer")
        return state


# ------------------------------------------------------------------------------------------------ save / load


def step_dir(output_dir: PathLike, step: int) -> Path:
    """``OUTPUT_DIR/checkpoints/step-N``."""
    return Path(output_dir) / CHECKPOINTS_DIR / f"{STEP_PREFIX}{int(step)}"


def _check_optimizer_state(optimizer_state: Mapping[str, np.ndarray], step: int) -> Dict[str, np.ndarray]:
    tensors: Dict[str, np.ndarray] = {}
    for key, value in optimizer_state.items():
        if key == STEP_KEY:
            if int(np.asarray(value)) != step:
                raise ValueError(
                    f"optimizer state is at update {int(np.asarray(value))}, the checkpoint at step {step}"
                )
            continue
        if key.split("/", 1)[0] not in MOMENTS or "/" not in key:
            raise ValueError(f"optimizer state key {key!r} is not '<moment>/<canonical name>' with moment in {MOMENTS}")
        array = np.asarray(value)
        if array.dtype.kind != "f":
            raise ValueError(f"optimizer state {key!r} has dtype {array.dtype}; expected a float array")
        tensors[key] = np.ascontiguousarray(array)
    return tensors


def _check_rng_state(rng_state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    out = {}
    for key, value in rng_state.items():
        array = np.asarray(value)
        if array.dtype.kind not in "iub":
            raise ValueError(f"RNG state {key!r} has dtype {array.dtype}; expected integer arrays (nothing is pickled)")
        out[key] = np.require(array, requirements="C")  # keeps 0-d arrays 0-d
    return out


def save_checkpoint(
    output_dir: PathLike,
    step: int,
    model_writer: Callable[[Path], Any],
    optimizer_state: Mapping[str, np.ndarray],
    rng_state: Mapping[str, np.ndarray],
    trainer_state: TrainerState,
) -> Path:
    """Write ``OUTPUT_DIR/checkpoints/step-N/`` all or nothing.

    Args:
        output_dir: the run's output directory.
        step: N, optimizer steps done (must equal ``trainer_state.global_step``).
        model_writer: called with the staging directory; writes ``config.json`` + ``model.safetensors`` (and the
            tokenizer files), e.g. ``lambda d: model.save_pretrained(d)``.
        optimizer_state: ``{"exp_avg/<name>", "exp_avg_sq/<name>": float arrays (float32 in the backends; canonical
            layout, stored in their dtype),
            "step": int64 ()}`` (``step`` optional; when present it must equal N).
        rng_state: the backend's RNG state, ``{name: integer array}``.
        trainer_state: see :class:`TrainerState`.

    Returns:
        The checkpoint directory.
    """
    from safetensors.numpy import save_file

    if trainer_state.global_step != step:
        raise ValueError(f"trainer_state.global_step={trainer_state.global_step} but the checkpoint is step {step}")
    tensors = _check_optimizer_state(optimizer_state, step)
    rng = _check_rng_state(rng_state)
    target = step_dir(output_dir, step)
    with staged_directory(target, replace=["*"]) as stage:
        model_writer(stage)
        save_file(tensors, os.fspath(stage / OPTIMIZER_NAME), metadata={"step": str(step), "format": OPTIMIZER_FORMAT})
        save_file(rng, os.fspath(stage / RNG_NAME), metadata={"format": "bert-rng-1"})
        (stage / TRAINER_STATE_NAME).write_text(json.dumps(trainer_state.to_dict(), indent=2) + "\n", encoding="utf-8")
    return target


def _metadata(path: Path) -> Dict[str, str]:
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="np") as handle:
        return dict(handle.metadata() or {})


def load_checkpoint(directory: PathLike) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], TrainerState]:
    """Read a ``step-N`` directory written by :func:`save_checkpoint`.

    Returns:
        ``(optimizer_state, rng_state, trainer_state)``; ``optimizer_state`` has the moments and ``"step"`` (int64 0-d).

    Raises:
        CheckpointError: a file is missing or corrupt, or the files disagree on the step (each names the file).
    """
    directory = Path(directory)
    for name in (OPTIMIZER_NAME, RNG_NAME, TRAINER_STATE_NAME):
        if not (directory / name).is_file():
            raise CheckpointError(f"{os.fspath(directory)!r} is not a training checkpoint: {name} is missing")
    state_path = directory / TRAINER_STATE_NAME
    try:
        data = json.loads(state_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{os.fspath(state_path)}: not valid JSON ({err})") from None
    trainer_state = TrainerState.from_dict(data, os.fspath(state_path))
    opt_path = directory / OPTIMIZER_NAME
    optimizer_state = dict(read_safetensors(opt_path))
    meta = _metadata(opt_path)
    if meta.get("format") != OPTIMIZER_FORMAT or meta.get("step") != str(trainer_state.global_step):
        raise CheckpointError(
            f"{os.fspath(opt_path)}: metadata {meta} does not match format {OPTIMIZER_FORMAT!r} at step "
            f"{trainer_state.global_step} of {TRAINER_STATE_NAME}"
        )
    optimizer_state[STEP_KEY] = np.asarray(trainer_state.global_step, np.int64)
    rng_state = dict(read_safetensors(directory / RNG_NAME))
    return optimizer_state, rng_state, trainer_state


def load_model_weights(directory: PathLike, model: Any) -> None:
    """Set ``model``'s weights from the checkpoint in ``directory`` (``model.load_canonical_weights``, any backend)."""
    state, _ = read_state_dict(directory)
    model.load_canonical_weights(normalize_state_dict(state, model.head_name))


# ------------------------------------------------------------------------------------------------ listing / resume


def list_checkpoints(output_dir: PathLike) -> List[Tuple[int, Path]]:
    """Complete checkpoints of a run, ``[(step, path)]`` by increasing step (staging leftovers are not listed)."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _STEP_DIR.fullmatch(entry.name)
        if match and entry.is_dir() and (entry / TRAINER_STATE_NAME).is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def resolve_resume(path: PathLike) -> Path:
    """The checkpoint ``--resume PATH`` means: PATH itself when it is a ``step-N`` checkpoint, else the latest
    checkpoint of PATH as an output directory (or as its ``checkpoints/`` directory).

    Raises:
        FileNotFoundError: PATH does not exist or holds no checkpoint (naming what was looked for).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume {os.fspath(path)!r}: no such directory")
    if (path / TRAINER_STATE_NAME).is_file():
        return path
    for output_dir in (path, path.parent if path.name == CHECKPOINTS_DIR else None):
        if output_dir is not None:
            found = list_checkpoints(output_dir)
            if found:
                return found[-1][1]
    raise FileNotFoundError(
        f"--resume {os.fspath(path)!r}: neither a checkpoint (no {TRAINER_STATE_NAME}) nor an output directory with "
        f"{CHECKPOINTS_DIR}/{STEP_PREFIX}N/ checkpoints"
    )


def _same(a: Any, b: Any, name: str) -> bool:
    if a == b:
        return True
    # the same model directory spelled differently (relative vs absolute path)
    return name == "model" and isinstance(a, str) and isinstance(b, str) and os.path.realpath(a) == os.path.realpath(b)


def check_resume(trainer_state: TrainerState, args: TrainingArguments, where: PathLike) -> None:
    """Refuse to resume when a field of :data:`RESUME_FIELDS` differs from the checkpoint's.

    Raises:
        ValueError: naming the field, the checkpoint's value and the current one.
    """
    for name in RESUME_FIELDS:
        if name not in trainer_state.args:
            continue
        saved, now = trainer_state.args[name], getattr(args, name)
        if not _same(saved, now, name):
            raise ValueError(
                f"cannot resume from {os.fspath(where)!r}: {name} was {saved!r} in that run and is {now!r} now; "
                f"resume with the same {name} (it decides the model, the data or its order) or start a new run"
            )


def remove_checkpoint(path: PathLike) -> None:
    """Delete a checkpoint: renamed aside first (one atomic rename), so a kill mid-delete never leaves a partial
    ``step-N`` that looks complete."""
    path = Path(path)
    aside = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(path, aside)
    shutil.rmtree(aside, ignore_errors=True)


def rotate_checkpoints(output_dir: PathLike, limit: Optional[int], best_step: Optional[int] = None) -> List[int]:
    """Keep the ``limit`` latest checkpoints and the best one (``best_step``); delete the rest. Returns deleted steps."""
    if limit is None:
        return []
    found = list_checkpoints(output_dir)
    keep = {step for step, _ in found[-limit:]} | ({best_step} if best_step is not None else set())
    removed = []
    for step, path in found:
        if step not in keep:
            remove_checkpoint(path)
            removed.append(step)
    return removed
