"""The shared machinery of every task pipeline: load, batch, stream, report errors.

A task is three numpy steps around one model call (HF's ``preprocess -> _forward -> postprocess``):

* ``preprocess(item, params) -> [feature]``: token ids of one input (several windows for long QA / NER inputs) plus
  bookkeeping (offsets, mask positions, ...);
* the backend runs the features in length-bucketed batches (``bert_core.batching``), and ``select(feature, outputs)``
  keeps the part of each row the task needs (fill-mask keeps the logits at the masks, not the whole vocabulary);
* ``postprocess(item, features, selected, params) -> result``, once all the features of an input are back.

Inputs are consumed in pools of ``POOL_BATCHES`` batches: a pool is sorted by length, run, and its results are given
back in input order, so a list, a generator or a 10-GB JSONL file stream alike with bounded memory.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..backends import BACKENDS, check_installed, installed_backends, normalize_backend_name
from ..batching import collate, plan_batches

#: features gathered (in batches of ``batch_size``) before a pool is sorted and run
POOL_BATCHES = 32


class PipelineError(ValueError):
    """An input or option a pipeline cannot use; the message names the argument, the value and what was expected."""


# ------------------------------------------------------------------------------------------------ numpy helpers


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` with the max subtracted first (HF pipelines' formula, dtype kept)."""
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` lower-cased when it is one of ``choices``; PipelineError naming ``name`` otherwise."""
    key = getattr(value, "value", value)
    if isinstance(key, str) and key.lower() in choices:
        return key.lower()
    raise PipelineError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise PipelineError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


def check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PipelineError(f"{name} must be a str; got {type(value).__name__}")
    return value


#: tokenizer options that change what is encoded (padding would break the rows, so it is not among them)
TOKENIZER_KWARGS = ("truncation", "max_length")


def check_tokenizer_kwargs(task: str, kwargs: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The tokenizer options a task passes through (only those that keep one unpadded row per text)."""
    kwargs = dict(kwargs or {})
    unknown = sorted(set(kwargs) - set(TOKENIZER_KWARGS))
    if unknown:
        raise PipelineError(f"{task}: tokenizer_kwargs may hold {', '.join(TOKENIZER_KWARGS)}; got {unknown}")
    return kwargs


def record_fields(task: str, value: Any, required: Sequence[str], optional: Sequence[str] = ()) -> Dict[str, Any]:
    """The fields of one ``bert predict`` record: a JSON string is ``{required[0]: value}``; an object must hold
    ``required``, may hold ``optional`` and ``id``, and nothing else (a misspelt field is an error, not ignored)."""
    if isinstance(value, str) and len(required) == 1:
        return {required[0]: value}
    if not isinstance(value, dict):
        want = f"a JSON string or object with {', '.join(required)}" if len(required) == 1 else "a JSON object"
        raise PipelineError(f"a {task} record is {want}; got {type(value).__name__}")
    missing = [k for k in required if k not in value]
    unknown = sorted(set(value) - set(required) - set(optional) - {"id"})
    if missing or unknown:
        allowed = ", ".join(list(required) + [f"{k} (optional)" for k in optional] + ["id (optional)"])
        raise PipelineError(
            f"a {task} record has the fields {allowed}; "
            + (f"missing {missing}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown {unknown}" if unknown else "")
        )
    return {k: v for k, v in value.items() if k != "id"}


def features_of(enc: Mapping[str, Any], row: Optional[int] = None, **extra: Any) -> Dict[str, Any]:
    """One model row from a tokenizer output ``enc`` (``row`` for overflowing outputs) plus bookkeeping."""
    pick = (lambda v: v) if row is None else (lambda v: v[row])
    feature = {"input_ids": list(pick(enc["input_ids"]))}
    if "token_type_ids" in enc:
        feature["token_type_ids"] = list(pick(enc["token_type_ids"]))
    feature.update(extra)
    return feature


# ------------------------------------------------------------------------------------------------ model resolution


def check_model_head(head_name: str, wanted: str, task: str) -> None:
    """Refuse a ready model object of another head than the task runs (a directory would load the right head)."""
    if head_name != wanted:
        raise PipelineError(
            f"{task} needs a {wanted} model; got a {head_name}. Pass the checkpoint directory or hub id instead: "
            f"{wanted} is then loaded from it (head weights the checkpoint lacks are newly initialised, with a warning)"
        )


def bf16_needs_directory(backend: str) -> str:
    """Why ``bf16=True`` is refused for a ready model object in ``backend``."""
    return (
        f"bf16=True with a ready {backend} model: the {backend} backend fixes the compute dtype when the layers "
        "are built; pass the checkpoint directory (or hub id) so the pipeline loads the model in bfloat16"
    )


def backend_of_model(model: Any) -> Optional[str]:
    """The backend whose package defines ``type(model)``, or None."""
    root = type(model).__module__.split(".")[0]
    for name, backend in BACKENDS.items():
        if backend.package == root:
            return name
    return None


def resolve_backend(model: Any, backend: Optional[str]) -> str:
    """The backend to run ``model`` on: ``backend`` checked, the model object's own, or the first installed."""
    owner = None if isinstance(model, (str, os.PathLike)) else backend_of_model(model)
    if backend is not None:
        name = normalize_backend_name(backend)
        if owner is not None and owner != name:
            raise PipelineError(f"backend={backend!r} but the model is a {owner} model ({type(model).__name__})")
        return check_installed(name)
    if owner is not None:
        return owner
    if not isinstance(model, (str, os.PathLike)):
        raise PipelineError(
            f"model must be a checkpoint directory, a hub id or a model of bert_torch/bert_tf/bert_flax; "
            f"got {type(model).__name__}"
        )
    available = installed_backends()
    if not available:
        raise PipelineError(
            "no backend is installed: " + "; ".join(f"{n}: {b.install_hint}" for n, b in BACKENDS.items())
        )
    return available[0]


def load_runner(
    backend: str, head: str, model: Any, *, task: str, bf16: bool, device: Optional[str], compile: bool = False
) -> Any:
    """``bert_<backend>.pipelines.PipelineModel(head, model, task=..., bf16=..., device=..., compile=...)``."""
    module = importlib.import_module(BACKENDS[backend].package + ".pipelines")
    return module.PipelineModel(head, model, task=task, bf16=bf16, device=device, compile=compile)


def load_tokenizer(tokenizer: Any, model: Any) -> Any:
    """A tokenizer object: given, loaded from ``tokenizer`` (a dir / hub id), or from the model's directory."""
    from ..tokenization import BertTokenizerBase
    from ..tokenization_fast import BertTokenizerFast

    if isinstance(tokenizer, BertTokenizerBase):
        return tokenizer
    source = tokenizer if tokenizer is not None else model
    if not isinstance(source, (str, os.PathLike)):
        raise PipelineError(
            "tokenizer is required when model is a model object: pass a BertTokenizerFast or its directory"
        )
    return BertTokenizerFast.from_pretrained(source)


# ------------------------------------------------------------------------------------------------ the pipeline


class Pipeline:
    """Base of the task pipelines. Subclasses set ``task``, ``head``, ``token_outputs`` and ``parameters`` and
    implement ``preprocess``, ``select``, ``postprocess`` (numpy) and the HF-shaped ``__call__``.

    Attributes:
        runner: the backend's ``PipelineModel`` (``runner(batch) -> {field: float32 array}``).
        model: the backend model; ``config``: its ``BertConfig``; ``tokenizer``: the tokenizer.
        batch_size: rows per model call; ``progress``: tqdm bar (None: only for long inputs on a terminal).
    """

    task = ""
    head = ""
    #: output fields with a sequence axis; rows are cut to each feature's length before ``select``
    token_outputs: Tuple[str, ...] = ()
    #: parameter name -> default (``None``: not set); call-time and construction-time keyword arguments
    parameters: Dict[str, Any] = {}

    def __init__(
        self,
        runner: Any,
        tokenizer: Any,
        *,
        batch_size: int = 8,
        progress: Optional[bool] = None,
        **params: Any,
    ) -> None:
        self.runner = runner
        self.model = runner.model
        self.config = runner.config
        self.backend = runner.backend
        self.tokenizer = tokenizer
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.progress = progress
        self._defaults = self._check_params(params)
        self._setup()
        self.resolve_options({})  # a bad construction-time option fails here, not at the first call

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, backend={self.backend!r}, batch_size={self.batch_size})"

    # ---------------------------------------------------------------- task hooks
    def _setup(self) -> None:
        """Checks and constants that depend on the model and tokenizer (run once at construction)."""

    def _check_params(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            raise PipelineError(
                f"{self.task} does not take {', '.join(unknown)}; its options are {', '.join(sorted(self.parameters))}"
            )
        return dict(params)

    def resolve_options(self, call: Mapping[str, Any]) -> Dict[str, Any]:
        """The options of one call: defaults < construction-time options < ``call``, checked and completed."""
        merged = {k: v for k, v in self.parameters.items()}
        merged.update(self._defaults)
        merged.update(self._check_params(call))
        return self._resolve(merged, explicit={**self._defaults, **call})

    def _resolve(self, params: Dict[str, Any], explicit: Mapping[str, Any]) -> Dict[str, Any]:
        return params

    def item_from_json(self, value: Any) -> Any:
        """One JSONL record (a JSON string or object) -> the task's input item (``bert predict``)."""
        return record_fields(self.task, value, ("text",))["text"]

    def preprocess(self, item: Any, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def select(self, feature: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> Any:
        return dict(outputs)

    def postprocess(self, item: Any, features: List[Dict[str, Any]], selected: List[Any], params: Mapping) -> Any:
        raise NotImplementedError

    @staticmethod
    def to_json(result: Any) -> Any:
        """``result`` with numpy scalars/arrays as Python floats/lists (what ``bert predict`` writes)."""
        return _jsonable(result)

    # ---------------------------------------------------------------- engine
    def run(self, items: Iterable[Any], params: Mapping[str, Any], *, errors: str = "raise") -> Iterator[Any]:
        """Results of ``items`` in their order, computed in length-sorted pools of batches.

        ``errors="raise"`` raises the first input's error; ``"return"`` yields the exception in that input's place
        (``bert predict`` writes it as an error record) and goes on.
        """
        total = len(items) if hasattr(items, "__len__") else None
        pool: List[Tuple[Any, Any]] = []
        size = 0
        with self._progress_bar(total) as bar:
            for item in items:
                if isinstance(item, BaseException):  # an input that could not even be read (bert predict)
                    features: Any = item
                else:
                    try:
                        features = self.preprocess(item, params)
                    except Exception as err:  # noqa: BLE001 - any input that fails is reported, the run goes on
                        if errors == "raise":
                            raise
                        features = err
                pool.append((item, features))
                size += 0 if isinstance(features, BaseException) else len(features)
                if size >= POOL_BATCHES * self.batch_size:
                    yield from self._run_pool(pool, params, errors, bar)
                    pool, size = [], 0
            if pool:
                yield from self._run_pool(pool, params, errors, bar)

    def _run_pool(self, pool, params, errors, bar) -> Iterator[Any]:
        flat = [f for _, features in pool if not isinstance(features, BaseException) for f in features]
        selected = self._forward(flat)
        at = 0
        for item, features in pool:
            if isinstance(features, BaseException):
                result: Any = features
            else:
                mine = selected[at : at + len(features)]
                at += len(features)
                try:
                    result = self.postprocess(item, features, mine, params)
                except Exception as err:  # noqa: BLE001
                    if errors == "raise":
                        raise
                    result = err
            bar.update(1)
            yield result

    def _forward(self, features: List[Dict[str, Any]]) -> List[Any]:
        """``select`` of every feature's model outputs, in the order of ``features`` (run in bucketed batches)."""
        if not features:
            return []
        ids = [f["input_ids"] for f in features]
        types = [f.get("token_type_ids") or [0] * len(f["input_ids"]) for f in features]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        multiple = self.runner.pad_to_multiple_of
        out: List[Any] = [None] * len(features)
        for indices in plan_batches([len(x) for x in ids], batch_size=self.batch_size, pad_to_multiple_of=multiple):
            batch = collate(ids, indices, pad_token_id=pad_id, pad_to_multiple_of=multiple, token_type_ids=types)
            outputs = self.runner(batch)
            for r, i in enumerate(indices):
                n = len(ids[i])
                row = {k: (v[r, :n] if k in self.token_outputs else v[r]) for k, v in outputs.items()}
                out[i] = self.select(features[i], row)
        return out

    def _progress_bar(self, total: Optional[int]):
        from tqdm.auto import tqdm

        if self.progress is None:
            # a bar only when it helps: long (or unknown-length) inputs, on a terminal (tqdm's disable=None)
            disable = None if total is None or total >= POOL_BATCHES * self.batch_size else True
        else:
            disable = not self.progress
        return tqdm(total=total, disable=disable, desc=self.task, unit="input", leave=False)

    def _iterate(self, inputs: Any, params: Mapping[str, Any], to_item: Callable[[Any], Any]) -> Iterator[Any]:
        """Lazy results over an iterator of inputs (streaming)."""
        return self.run((to_item(x) for x in inputs), params)


def is_stream(inputs: Any) -> bool:
    """An iterator/generator/other iterable that is not a list/tuple/str/dict: consumed lazily, results yielded."""
    return (
        not isinstance(inputs, (str, bytes, dict, list, tuple, np.ndarray))
        and hasattr(inputs, "__iter__")
        and not isinstance(inputs, Mapping)
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
