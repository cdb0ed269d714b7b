"""Training parity: from one checkpoint, N optimizer steps of the recipe in every backend give the same run.

Each backend's own ``Trainer`` (``bert_<backend>.training.Trainer``: torch and flax on ``TrainLoop``, tf on Keras
``fit``) trains the same head from the same canonical weights on the same features, with dropout off
(``hidden_dropout_prob = attention_probs_dropout_prob = 0`` as config overrides) and the recipe of
docs/training.md engaged in full: AdamW with weight decay (masked), linear warmup then decay, clipping by global
norm set below the first step's gradient norm so that it engages, and gradient accumulation over K = 2
micro-batches with a short step at each epoch's end (the data is not a multiple of B*K). The batch order (shuffled
per epoch) and the MLM masks come from ``bert_core.training.order``, which is framework-free, so every backend sees
the same arrays.

The data goes through the task API exactly as ``bert train`` runs it: a file written in the task's format, read by
``task.read``, labels from ``task.label_config``, ``task.features`` with a tokenizer, ``task.collate`` in the loop.
The text is synthetic (random words of the tokenizer's vocabulary, two lengths so batches are padded); a checkpoint
without a tokenizer (the embedded default) gets a WordPiece vocabulary of its ``vocab_size`` (``[PAD]`` = 0,
``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``, then words).

What is compared, per head and backend pair (a is the reference, the first backend of the pair):

* ``loss``: the logged loss of every step, ``|ΔL| / (1 + |L|)``;
* ``grad_norm``: the logged pre-clip gradient norm of every step, relative;
* ``update``: per tensor, the total update ``Δw = w_final - w_init`` (read back from each backend's saved model) by
  relative norm ``||Δa - Δb|| / ||Δa||``, except for *still* tensors (noise-driven: the attention key biases);
* ``update_max``: per tensor, the largest element difference of the updates, in units of ``Σ lr`` (the distance an
  element moving at Adam's full speed covers);
* ``recipe`` (per backend, no pair): the logged learning rates equal the recipe's, and clipping engaged on at
  least one step (the steps must be logged 1..N, or the backend's run fails).

The bounds and why they are what they are: :class:`conformance.tolerance.TrainTolerance`.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import tempfile
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from bert_core.backends import BACKENDS
from bert_core.config import BertConfig

from .default import Checkpoint, load_checkpoint_any
from .tolerance import Comparison, Tolerance, TrainTolerance, compare_steps, compare_update

#: task -> the head it trains (``bert_core.tasks``): the tasks training parity knows how to make data for
TRAIN_TASKS: "OrderedDict[str, str]" = OrderedDict(
    [
        ("text-classification", "BertForSequenceClassification"),
        ("mlm", "BertForMaskedLM"),
        ("pretraining", "BertForPreTraining"),
    ]
)
#: what ``run_train_parity`` and ``bert parity --train-steps`` train by default
DEFAULT_TASKS = ("text-classification", "mlm")
#: dropout off: the only source of randomness that differs between frameworks
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
#: special tokens of the synthetic vocabulary, ids 0..4 (``[PAD]`` = 0 = BertConfig's ``pad_token_id``)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: class names of the synthetic text-classification data
CLASS_NAMES = ("neg", "neu", "pos")


@dataclass(frozen=True)
class TrainSettings:
    """The recipe of the parity run (TrainingArguments of every backend) and the size of its synthetic data.

    Attributes:
        batch_size: micro-batch size B.
        accumulation: micro-batches per step K.
        num_features: training features; 28 with B=4, K=2 gives 7 micro-batches per epoch, so 4 steps per epoch
            whose last has one micro-batch (the recipe's short step): 20 steps are 5 epochs, reshuffled each.
        words: words per text (two lengths, so that batches are padded and attention masks matter).
        steps: optimizer steps N, at least 2 (the first one's learning rate is 0: warmup).
        learning_rate: peak learning rate (after warmup; linear decay to 0 at step N).
        warmup_steps: linear warmup; None: ``max(1, N // 4)``. At least one warmup step matters: the first update
            then has learning rate 0 (HF's warmup starts at 0), so Adam's first step, ``g / (|g| + eps)``, which is
            ``sign(g)`` for most elements and turns an fp32 difference in a gradient near ``eps`` into a difference
            of ``lr`` in that element, is not taken at full rate (measured with 3 steps and no warmup: elements
            1e-2 of ``Σ lr`` apart; with one warmup step 7e-4).
        weight_decay: decoupled decay of the decaying tensors (large enough that a wrong decay mask shows).
        adam_epsilon: Adam's eps; 1e-6 instead of torch's 1e-8 so that its placement (added to ``sqrt(v_hat)``,
            not ``sqrt(v)``) changes the updates measurably, and so that gradients at the fp32 noise floor (the
            attention key biases, whose exact gradient is 0 by softmax shift invariance) are divided by eps instead
            of amplified to full-size Adam steps of random sign.
        clip_fraction: ``max_grad_norm`` is this fraction of the gradient norm of the first step at the initial
            weights, so clipping engages on the first steps and may stop as the norm falls.
        seed: data order, MLM masks, synthetic text and labels.
    """

    steps: int = 20
    batch_size: int = 4
    accumulation: int = 2
    num_features: int = 28
    words: Tuple[int, int] = (6, 10)
    learning_rate: float = 1e-3
    warmup_steps: Optional[int] = None
    weight_decay: float = 0.1
    adam_epsilon: float = 1e-6
    clip_fraction: float = 0.75
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("steps", 2), ("batch_size", 1), ("accumulation", 1), ("num_features", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"training parity: {name}={value!r} is invalid; expected an integer >= {low}")
        if not 0.0 < self.clip_fraction:
            raise ValueError(f"training parity: clip_fraction={self.clip_fraction!r} is invalid; expected > 0")

    @property
    def warmup(self) -> int:
        return max(1, self.steps // 4) if self.warmup_steps is None else int(self.warmup_steps)

    def arguments(self, output_dir: str, task: str, backend: str, max_grad_norm: float, max_length: int = 128):
        """The ``TrainingArguments`` of one backend's run (no eval, no checkpoints, a log record every step)."""
        from bert_core.training.args import TrainingArguments

        return TrainingArguments(
            output_dir=output_dir,
            task=task,
            backend=backend,
            max_steps=self.steps,
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.accumulation,
            learning_rate=self.learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=self.warmup,
            weight_decay=self.weight_decay,
            max_grad_norm=float(max_grad_norm),
            adam_epsilon=self.adam_epsilon,
            seed=self.seed,
            shuffle=True,
            logging_steps=1,
            save_steps=self.steps + 1,  # never due: checkpoints are not what is compared
            config_overrides=dict(NO_DROPOUT),
            max_length=max_length,
            quiet=True,
        ).validate()

    def learning_rates(self) -> np.ndarray:
        """float64 ``(steps,)``: the recipe's learning rate of each update (``bert_core.training.schedules``)."""
        from bert_core.training import schedules

        args = self.arguments("unused", "mlm", "torch", 1.0)
        return np.array([schedules.learning_rate(u, args, self.steps) for u in range(self.steps)], np.float64)


# ------------------------------------------------------------------------------------------------------------ data


def synthetic_tokenizer(vocab_size: int):
    """A WordPiece ``BertTokenizerFast`` of exactly ``vocab_size`` ids: the special tokens, then ``w5``, ``w6``..."""
    from bert_core.tokenization_fast import BertTokenizerFast

    if vocab_size < len(SPECIAL_TOKENS) + 8:
        raise ValueError(f"training parity needs a vocabulary of at least 13 tokens, the config has {vocab_size}")
    tokens = list(SPECIAL_TOKENS) + [f"w{i}" for i in range(len(SPECIAL_TOKENS), vocab_size)]
    return BertTokenizerFast(vocab=OrderedDict((t, i) for i, t in enumerate(tokens)))


def checkpoint_tokenizer(ckpt: Checkpoint, source: Any):
    """The tokenizer of checkpoint ``source`` (a directory or a hub id already fetched: the checkpoint was read from
    it) when it has one that fits the vocabulary, else :func:`synthetic_tokenizer`."""
    if isinstance(source, (str, Path)):
        from bert_core.hub import resolve_model_dir
        from bert_core.tokenization_fast import BertTokenizerFast

        try:
            tokenizer = BertTokenizerFast.from_pretrained(str(resolve_model_dir(source, local_files_only=True)))
        except (OSError, ValueError):  # no tokenizer files: the synthetic vocabulary
            tokenizer = None
        if tokenizer is not None and len(tokenizer) <= ckpt.config.vocab_size:
            return tokenizer
    return synthetic_tokenizer(ckpt.config.vocab_size)


def _word_list(tokenizer, vocab_size: int) -> List[str]:
    """Up to 2000 vocabulary entries that are whole lowercase words (one token each) below ``vocab_size``, words of
    two or more characters when there are enough (a real vocabulary starts with its single characters)."""
    special = set(tokenizer.all_special_tokens)
    words = [
        t
        for t, i in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        if i < vocab_size and t not in special and t.isalnum() and t == t.lower() and not t.startswith("##")
    ]
    longer = [w for w in words if len(w) > 1]
    words = longer if len(longer) >= 8 else words
    if len(words) < 8:
        raise ValueError(f"the tokenizer has only {len(words)} whole-word tokens; training parity needs at least 8")
    return words[:2000]


def _texts(words: Sequence[str], rng: np.random.Generator, count: int, lengths: Tuple[int, int]) -> List[str]:
    """``count`` texts of random words: every fourth one ``lengths[0]`` words long, the others ``lengths[1]``.

    Mostly long texts make most micro-batches padded to the same length (one compiled program per shape in jitted
    backends) while the short ones still put padding, and so the attention mask, into the batches.
    """
    return [" ".join(rng.choice(words, size=int(lengths[0] if i % 4 == 3 else lengths[1]))) for i in range(count)]


def write_task_data(task: str, directory: Path, tokenizer, vocab_size: int, settings: TrainSettings) -> Path:
    """A training file in ``task``'s format with ``settings.num_features`` features of synthetic text.

    text-classification: JSONL ``{"text", "label"}`` (a class of :data:`CLASS_NAMES` that depends on the first word,
    so there is something to learn); mlm: one line per example; pretraining: documents of 3 sentences separated by a
    blank line (2 NSP pairs per document).
    """
    rng = np.random.default_rng([settings.seed, 7])
    words = _word_list(tokenizer, vocab_size)
    n = settings.num_features
    directory.mkdir(parents=True, exist_ok=True)
    if task == "text-classification":
        path = directory / "train.jsonl"
        rows = [
            {"text": t, "label": CLASS_NAMES[words.index(t.split()[0]) % len(CLASS_NAMES)]}
            for t in _texts(words, rng, n, settings.words)
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif task == "mlm":
        path = directory / "train.txt"
        path.write_text("\n".join(_texts(words, rng, n, settings.words)) + "\n", encoding="utf-8")
    elif task == "pretraining":
        path = directory / "train.txt"
        documents = math.ceil(n / 2)
        short = [max(2, w // 2) for w in settings.words]
        sentences = _texts(words, rng, 3 * documents, short)
        path.write_text(
            "\n\n".join("\n".join(sentences[3 * d : 3 * d + 3]) for d in range(documents)) + "\n", encoding="utf-8"
        )
    else:
        raise ValueError(f"training parity has no data for task {task!r}; choose some of {', '.join(TRAIN_TASKS)}")
    return path


@dataclass
class HeadRun:
    """What every backend trains for one task: the task object (bound to the tokenizer), the head's config (label
    set, dropout off), the training features, the initial canonical weights and the clipping threshold."""

    task_name: str
    head: str
    task: Any
    config: BertConfig
    features: List[Dict[str, Any]]
    weights: "OrderedDict[str, np.ndarray]"
    max_length: int
    first_grad_norm: float = math.nan
    max_grad_norm: float = math.nan

    def arguments(self, settings: TrainSettings, output_dir: str, backend: str):
        return settings.arguments(output_dir, self.task_name, backend, self.max_grad_norm, self.max_length)


def prepare_head(task_name: str, ckpt: Checkpoint, tokenizer, settings: TrainSettings, directory: Path) -> HeadRun:
    """The file written and read, labels, features (as ``bert train`` makes them) and initial weights of one task.

    The initial weights are the checkpoint's plus bert_core's seeded init for what it lacks (a new classifier), the
    same arrays for every backend (:func:`conformance.runner.head_weights`).
    """
    from bert_core.tasks import TASKS

    from .runner import head_weights

    if task_name not in TRAIN_TASKS:
        raise ValueError(f"training parity has no data for task {task_name!r}; choose some of {', '.join(TRAIN_TASKS)}")
    task, head = TASKS[task_name], TRAIN_TASKS[task_name]
    examples = task.read(write_task_data(task_name, directory, tokenizer, ckpt.config.vocab_size, settings))
    config = ckpt.config.copy(**{**task.label_config(examples), **NO_DROPOUT})
    max_length = min(128, config.max_position_embeddings)
    args = settings.arguments(str(directory), task_name, "torch", 1.0, max_length)
    features = task.features(examples, tokenizer, args, training=True)[: settings.num_features]
    return HeadRun(task_name, head, task, config, features, head_weights(ckpt, config, head), max_length)


def calibrate_clipping(run: HeadRun, adapter, settings: TrainSettings) -> None:
    """Set ``run.max_grad_norm`` to ``settings.clip_fraction`` times the first step's gradient norm at the initial
    weights (mean of its K micro-batch gradients, computed in ``adapter``'s backend), so clipping engages."""
    from bert_core.training import order
    from bert_core.training.reference import global_norm

    args = settings.arguments("unused", run.task_name, adapter.name, 1.0, run.max_length)
    model = adapter.build(run.head, run.config, run.weights)
    position, micro = next(order.iter_steps(len(run.features), args))
    total: Dict[str, np.ndarray] = {}
    for j, indices in enumerate(micro):
        rng = order.batch_rng(args.seed, position.epoch, position.micro_index + j)
        _, grads = adapter.grads(model, run.task.collate([run.features[i] for i in indices], rng=rng))
        for name, g in grads.items():
            total[name] = total.get(name, 0.0) + np.asarray(g, np.float64) / len(micro)
    run.first_grad_norm = global_norm(total)
    run.max_grad_norm = settings.clip_fraction * run.first_grad_norm


# ----------------------------------------------------------------------------------------------------- one backend


@dataclass
class TrainResult:
    """One backend's run: float64 ``(steps,)`` logged losses, pre-clip gradient norms and learning rates, the final
    canonical weights (float32, read back from the saved model) and the wall time."""

    backend: str
    losses: np.ndarray
    grad_norms: np.ndarray
    learning_rates: np.ndarray
    weights: "OrderedDict[str, np.ndarray]"
    seconds: float


def trainer_class(backend: str):
    """``bert_<backend>.training.Trainer``. Raises ImportError naming the backend when it has none."""
    module = importlib.import_module(f"{BACKENDS[backend].package}.training")
    trainer = getattr(module, "Trainer", None)
    if trainer is None:
        raise ImportError(f"backend {backend!r} has no training.Trainer ({module.__name__})")
    return trainer


def train_backend(adapter, run: HeadRun, settings: TrainSettings, output_dir: str) -> TrainResult:
    """Build ``run.head`` in ``adapter``'s backend from ``run.weights``, train it with the backend's ``Trainer``
    (which writes ``log.jsonl`` and the final model into ``output_dir``), and read both back."""
    from bert_core.checkpoint import read_state_dict
    from bert_core.training.loop import LOG_NAME, read_log
    from bert_core.weights import normalize_state_dict

    start = time.perf_counter()
    args = run.arguments(settings, output_dir, adapter.name)
    model = adapter.build(run.head, run.config, run.weights)
    trainer_class(adapter.name)(model, args, run.task, run.features).train()
    records = [r for r in read_log(Path(output_dir) / LOG_NAME) if "loss" in r]
    steps = [int(r["step"]) for r in records]
    if steps != list(range(1, settings.steps + 1)):
        raise ValueError(f"{adapter.name} logged steps {steps}, expected 1..{settings.steps} (logging_steps=1)")
    saved = normalize_state_dict(read_state_dict(output_dir)[0], run.head)
    return TrainResult(
        backend=adapter.name,
        losses=np.array([r["loss"] for r in records], np.float64),
        grad_norms=np.array([r["grad_norm"] for r in records], np.float64),
        learning_rates=np.array([r["learning_rate"] for r in records], np.float64),
        weights=OrderedDict((k, np.asarray(v, np.float32)) for k, v in saved.items()),
        seconds=time.perf_counter() - start,
    )


# ------------------------------------------------------------------------------------------------------ comparison


def compare_runs(
    report, run: HeadRun, results: Mapping[str, TrainResult], settings: TrainSettings, tol: TrainTolerance
) -> None:
    """Add the rows of one head to ``report``: per backend ``recipe.*``, per pair ``loss``, ``grad_norm`` and per
    tensor ``update.<tensor>`` (not for still tensors) and ``update_max.<tensor>``."""
    case = f"{settings.steps}_steps"
    lrs = settings.learning_rates()
    lr_sum, peak = float(lrs.sum()), float(lrs.max())
    for name, result in results.items():
        lr_error = float(np.max(np.abs(result.learning_rates - lrs))) / peak if peak > 0 else 0.0
        report.add(
            "train",
            run.head,
            case,
            "recipe.learning_rate",
            name,
            Comparison(lr_error, tol.lr_rtol, lr_error <= tol.lr_rtol),
        )
        clipped = int(np.sum(result.grad_norms > run.max_grad_norm))
        engaged = f"clipping engaged on {clipped}/{settings.steps} steps (max_grad_norm {run.max_grad_norm:.4g})"
        report.add(
            "train",
            run.head,
            case,
            "recipe.clipping",
            name,
            Comparison(0.0, 0.0, True, engaged) if clipped else Comparison(math.inf, 0.0, False, engaged),
        )
    for a, b in itertools.combinations(list(results), 2):
        pair, ra, rb = f"{a}~{b}", results[a], results[b]
        report.add("train", run.head, case, "loss", pair, compare_steps(ra.losses, rb.losses, tol.rtol, floor=1.0)[0])
        report.add("train", run.head, case, "grad_norm", pair, compare_steps(ra.grad_norms, rb.grad_norms, tol.rtol)[0])
        for tensor, w0 in run.weights.items():
            if tensor not in ra.weights or tensor not in rb.weights:
                side = a if tensor not in ra.weights else b
                missing = Comparison(math.inf, 0.0, False, f"missing in {side}'s saved model")
                report.add("train", run.head, case, f"update_max.{tensor}", pair, missing)
                continue
            relative, elementwise = compare_update(w0, ra.weights[tensor], rb.weights[tensor], lr_sum, tol)
            if relative is not None:  # None: a still tensor, whose update is noise (bounded elementwise only)
                report.add("train", run.head, case, f"update.{tensor}", pair, relative)
            report.add("train", run.head, case, f"update_max.{tensor}", pair, elementwise)


def _summary(run: HeadRun, results: Mapping[str, TrainResult]) -> Dict[str, Any]:
    return {
        "task": run.task_name,
        "features": len(run.features),
        "first_step_grad_norm": run.first_grad_norm,
        "max_grad_norm": run.max_grad_norm,
        "backends": {
            name: {
                "seconds": round(r.seconds, 3),
                "losses": r.losses.tolist(),
                "grad_norms": r.grad_norms.tolist(),
                "clipped_steps": int(np.sum(r.grad_norms > run.max_grad_norm)),
            }
            for name, r in results.items()
        },
    }


def run_train(
    report,
    ckpt: Checkpoint,
    adapters: Mapping[str, Any],
    tasks: Sequence[str],
    settings: TrainSettings,
    tol: TrainTolerance,
    *,
    tokenizer=None,
    progress: Optional[Callable[[str], None]] = None,
    workdir: Optional[str] = None,
) -> "OrderedDict[str, Tuple[HeadRun, Dict[str, TrainResult]]]":
    """Train every task's head in every backend and add the ``train`` rows, notes and ``extra["train"]`` to
    ``report`` (a :class:`conformance.runner.Report`). A backend that raises fails its cells; the others still run.

    Args:
        tokenizer: the checkpoint's tokenizer (default: :func:`synthetic_tokenizer` of its vocabulary size).
        workdir: where the temporary data files and output directories go (default: the system's temp dir).

    Returns:
        head -> (what was trained, each backend's result), for callers that look further than the rows.
    """
    say = progress or (lambda msg: None)
    tokenizer = tokenizer if tokenizer is not None else synthetic_tokenizer(ckpt.config.vocab_size)
    # torch computes the calibration gradient in one call, without compiling anything
    calibrator = adapters["torch"] if "torch" in adapters else next(iter(adapters.values()))
    summary: Dict[str, Any] = {"settings": asdict(settings), "tolerance": tol.as_dict(), "heads": {}}
    report.extra["train"] = summary
    report.train_tolerance = tol
    runs: "OrderedDict[str, Tuple[HeadRun, Dict[str, TrainResult]]]" = OrderedDict()
    with tempfile.TemporaryDirectory(prefix="bert-train-parity-", dir=workdir) as tmp:
        for task_name in tasks:
            head = TRAIN_TASKS.get(task_name, task_name)
            try:
                run = prepare_head(task_name, ckpt, tokenizer, settings, Path(tmp) / task_name)
                calibrate_clipping(run, calibrator, settings)
            except Exception as err:  # bad data for this checkpoint: this head fails, the next one still runs
                report.error("train", head, "data", calibrator.name, err)
                continue
            results: Dict[str, TrainResult] = {}
            for name, adapter in adapters.items():
                try:
                    results[name] = train_backend(adapter, run, settings, str(Path(tmp) / task_name / name))
                    say(f"train {head}: {name} {settings.steps} steps ({results[name].seconds:.1f} s)")
                except Exception as err:
                    report.error("train", head, f"{settings.steps}_steps", name, err)
            compare_runs(report, run, results, settings, tol)
            runs[head] = (run, results)
            summary["heads"][head] = _summary(run, results)
            clipped = ", ".join(f"{n} {r['clipped_steps']}" for n, r in summary["heads"][head]["backends"].items())
            report.notes.append(
                f"train {head} ({task_name}, {len(run.features)} features): max_grad_norm {run.max_grad_norm:.4g} = "
                f"{settings.clip_fraction:g} x first-step norm; clipped steps: {clipped}"
            )
    report.notes.insert(
        0,
        f"training: {settings.steps} steps, B={settings.batch_size}, K={settings.accumulation}, AdamW lr "
        f"{settings.learning_rate:g} linear warmup {settings.warmup}, weight decay {settings.weight_decay:g}, "
        f"eps {settings.adam_epsilon:g}, dropout off; bounds: loss |ΔL|/(1+|L|), grad norm and update "
        f"‖Δa-Δb‖/‖Δa‖ <= {tol.rtol:g} (still tensors excepted), "
        f"update_max max|Δa-Δb|/Σlr <= {tol.element:g}",
    )
    return runs


def resolve_tasks(tasks: Optional[Sequence[str]] = None, heads: Optional[Sequence[str]] = None) -> List[str]:
    """Training parity's tasks: ``tasks`` (validated), else the :data:`TRAIN_TASKS` whose head is in ``heads``, else
    :data:`DEFAULT_TASKS`.

    Raises:
        ValueError: an unknown task, or ``heads`` that select none of the trainable heads.
    """
    if tasks is not None:
        unknown = [t for t in tasks if t not in TRAIN_TASKS]
        if unknown or not tasks:
            raise ValueError(f"training parity tasks {list(tasks)}: choose some of {', '.join(TRAIN_TASKS)}")
        return list(dict.fromkeys(tasks))
    if heads is None:
        return list(DEFAULT_TASKS)
    chosen = [t for t, h in TRAIN_TASKS.items() if h in heads]
    if not chosen:
        raise ValueError(
            f"--train-steps trains {', '.join(TRAIN_TASKS.values())}; the selected heads {', '.join(heads)} include "
            "none of them"
        )
    return chosen


def run_train_parity(
    checkpoint: Any = None,
    backends: Optional[Sequence[str]] = None,
    steps: int = 20,
    tasks: Optional[Sequence[str]] = None,
    tolerance: Union[None, Tolerance, TrainTolerance] = None,
    *,
    settings: Optional[TrainSettings] = None,
    progress: Optional[Callable[[str], None]] = None,
    workdir: Optional[str] = None,
):
    """Training parity alone: ``steps`` steps of the recipe in every backend from ``checkpoint``, compared pairwise.

    Args:
        checkpoint: None (the embedded default), a :class:`~conformance.default.Checkpoint`, a directory or a hub id
            (its tokenizer is used when it has one).
        backends: names (default: every installed backend); at least two.
        steps: optimizer steps N.
        tasks: some of :data:`TRAIN_TASKS` (default :data:`DEFAULT_TASKS`: sequence classification and MLM).
        tolerance: a :class:`TrainTolerance`, or the output policy :class:`Tolerance` it is derived from
            (:meth:`TrainTolerance.from_tolerance`); default ``TrainTolerance()``.
        settings: the recipe and data size (:class:`TrainSettings`; its ``steps`` is replaced by ``steps``).
        progress: called with one line per backend run.
        workdir: parent of the temporary directory.

    Returns:
        a :class:`conformance.runner.Report` with ``train`` rows (``report.passed``, ``report.format_table()``).

    Raises:
        BackendUnavailable: fewer than two usable backends. ValueError: unknown tasks or bad settings.
    """
    from .runner import DEFAULT_TOLERANCE, Report, load_adapters

    settings = replace(settings or TrainSettings(), steps=steps)
    tol = (
        tolerance
        if isinstance(tolerance, TrainTolerance)
        else TrainTolerance.from_tolerance(tolerance or DEFAULT_TOLERANCE)
    )
    task_names = resolve_tasks(tasks)
    start = time.perf_counter()
    ckpt = load_checkpoint_any(checkpoint)
    adapters = load_adapters(backends, progress)
    report = Report(ckpt.name, list(adapters), [TRAIN_TASKS[t] for t in task_names], DEFAULT_TOLERANCE)
    run_train(
        report,
        ckpt,
        adapters,
        task_names,
        settings,
        tol,
        tokenizer=checkpoint_tokenizer(ckpt, checkpoint),
        progress=progress,
        workdir=workdir,
    )
    report.seconds = time.perf_counter() - start
    return report
