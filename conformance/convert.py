"""``bert convert``: any supported source -> a canonical HF directory (config.json, model.safetensors, tokenizer files).

Sources (:func:`detect_source`):

* ``hf``: an HF directory or hub id in any weight format bert_core reads (safetensors, sharded, pytorch_model.bin,
  tf_model.h5, flax_model.msgpack).
* ``keras``: a ``.keras`` file saved by bert_tf (needs the tf backend).
* ``tf1``: an original Google BERT TF1 checkpoint (``bert_model.ckpt.*`` + ``bert_config.json`` [+ ``vocab.txt``]):
  a directory, the prefix, or one of its files (needs TensorFlow to read it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from bert_core.checkpoint import (
    WEIGHT_FILES,
    check_config_agrees,
    check_float_weights,
    load_checkpoint,
    read_state_dict,
)
from bert_core.config import BertConfig
from bert_core.hub import looks_like_hub_id
from bert_core.io_utils import staged_directory
from bert_core.weights import HEADS, match_state_dict, normalize_state_dict

from .default import Checkpoint
from .tolerance import DEFAULT_TOLERANCE, Comparison, Tolerance, compare_exact

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TF1_CONFIG = "bert_config.json"


class ConversionError(ValueError):
    """A source that is missing, unrecognised or inconsistent; the message says what was expected."""


@dataclass
class Source:
    """A read source: canonical weights of ``head`` (PyTorch names/layout), its config and tokenizer files."""

    kind: str
    path: str
    config: BertConfig
    head: str
    weights: "OrderedDict[str, np.ndarray]"
    tokenizer_files: List[Path] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.config, OrderedDict(self.weights), f"{self.kind}:{self.path}")


# ------------------------------------------------------------------------------------------------ detection


def _tf1_prefix(path: Path) -> Optional[Path]:
    """The checkpoint prefix of a TF1 directory / prefix / data or index file, or None."""
    if path.is_dir():
        preferred = path / "bert_model.ckpt.index"
        if preferred.is_file():
            return path / "bert_model.ckpt"
        indexes = sorted(path.glob("*.ckpt*.index"))
        return indexes[0].with_suffix("") if indexes else None
    name = path.name
    if name.endswith(".index"):
        return path.with_suffix("") if path.is_file() else None
    match = re.match(r"(.*)\.data-\d+-of-\d+$", name)
    if match and path.is_file():
        return path.with_name(match.group(1))
    if Path(str(path) + ".index").is_file():
        return path
    return None


def detect_source(src: str) -> Tuple[str, Path]:
    """(kind, path) for ``src``: "hf" | "keras" | "tf1" | "hub" (a hub id, resolved later).

    Raises:
        ConversionError: nothing there, or a file/directory of no supported kind (naming what was found).
    """
    path = Path(os.path.expanduser(str(src)))
    if path.is_file() and path.suffix == ".keras":
        return "keras", path
    prefix = _tf1_prefix(path)
    if prefix is not None:
        return "tf1", prefix
    if path.is_file() and path.name in WEIGHT_FILES:
        return "hf", path.parent
    if path.is_dir():
        if (path / "config.json").is_file() and any((path / n).is_file() for n in WEIGHT_FILES):
            return "hf", path
        found = sorted(p.name for p in path.iterdir())[:12]
        raise ConversionError(
            f"unrecognised source {str(src)!r}: expected an HF directory (config.json + one of {list(WEIGHT_FILES)}), "
            f"a .keras file, or a TF1 checkpoint (bert_model.ckpt.* + {TF1_CONFIG}); found {found}"
        )
    if path.exists():
        raise ConversionError(
            f"unrecognised source file {str(src)!r}: expected a .keras file, a TF1 checkpoint file, or one of {list(WEIGHT_FILES)}"
        )
    text = str(src)
    if looks_like_hub_id(text):
        return "hub", Path(text)
    raise ConversionError(f"source {text!r} does not exist (and it is not a hub repo id 'org/name')")


def infer_head(names: Sequence[str], config: BertConfig) -> str:
    """The head a state dict belongs to: ``config.architectures[0]`` when it is a BERT head, else from its keys."""
    arch = (getattr(config, "architectures", None) or [None])[0]
    if arch in HEADS:
        return arch
    keys = set(names)
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has("cls.predictions") and has("cls.seq_relationship"):
        return "BertForPreTraining"
    if has("cls.predictions"):
        return "BertForMaskedLM"
    if has("cls.seq_relationship"):
        return "BertForNextSentencePrediction"
    if has("qa_outputs"):
        return "BertForQuestionAnswering"
    if has("classifier"):
        return "BertForSequenceClassification"
    return "BertModel"


def _canonical(state, config: BertConfig, head: str, where: str) -> Tuple["OrderedDict[str, np.ndarray]", List[str]]:
    weights, info = match_state_dict(state, config, head)
    check_float_weights(weights, where)
    if info.missing_keys:
        raise ConversionError(f"{where}: the weights of {head} are incomplete; missing {info.missing_keys[:5]}")
    if not weights:
        raise ConversionError(f"{where}: no BERT weights found")
    return OrderedDict((k, np.asarray(v)) for k, v in weights.items()), list(info.unexpected_keys)


def _tokenizer_files(directory: Optional[Path]) -> List[Path]:
    if directory is None:
        return []
    return [directory / n for n in TOKENIZER_FILES if (directory / n).is_file()]


# ------------------------------------------------------------------------------------------------ readers


def read_hf(src: str) -> Source:
    config, state, directory, file_name = load_checkpoint(src)
    check_config_agrees(config, state, directory / file_name)
    head = infer_head(list(normalize_state_dict(state, "BertForPreTraining")), config)
    weights, dropped = _canonical(state, config, head, str(directory / file_name))
    return Source("hf", str(src), config, head, weights, _tokenizer_files(directory), dropped)


def read_keras(path: Path) -> Source:
    try:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras

        import bert_tf  # noqa: F401  (registers the serializable classes)
    except ImportError as err:
        raise ConversionError(f"reading {path} needs the tf backend ({err}): pip install 'multi-bert[tf]'") from err
    model = keras.saving.load_model(str(path))
    if not hasattr(model, "canonical_weights"):
        raise ConversionError(f"{path} holds a {type(model).__name__}, not a bert_tf model")
    weights = OrderedDict((k, np.asarray(v)) for k, v in model.canonical_weights().items())
    return Source("keras", str(path), model.config, model.head_name, weights, _tokenizer_files(path.parent))


_TF1_SKIP = re.compile(r"(^|/)(adam_[mv]|Adam(_\d+)?|global_step|bad_steps|good_steps|loss_scale)$")


def tf1_name(name: str) -> Optional[Tuple[str, bool]]:
    """Canonical name of a TF1 BERT variable and whether to transpose it; None for optimizer state.

    ``bert/encoder/layer_0/attention/self/query/kernel`` -> (``bert.encoder.layer.0.attention.self.query.weight``, True).
    """
    if _TF1_SKIP.search(name):
        return None
    fixed = {
        "cls/predictions/output_bias": "cls.predictions.bias",
        # stored (2, hidden) already: PyTorch layout, no transpose
        "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
        "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
    }
    if name in fixed:
        return fixed[name], False
    parts: List[str] = []
    for p in name.split("/"):
        m = re.fullmatch(r"layer_(\d+)", p)
        parts.extend(["layer", m.group(1)] if m else [p])
    leaf = parts[-1]
    transpose = False
    if leaf == "kernel":
        parts[-1], transpose = "weight", True
    elif leaf == "gamma":
        parts[-1] = "weight"
    elif leaf == "beta":
        parts[-1] = "bias"
    elif leaf.endswith("_embeddings"):
        parts.append("weight")
    elif leaf != "bias":
        return name, False  # kept under its own name: reported as unexpected by the matcher
    return ".".join(parts), transpose


def read_tf1(prefix: Path) -> Source:
    config_path = prefix.parent / TF1_CONFIG
    if not config_path.is_file():
        raise ConversionError(f"TF1 checkpoint {prefix}: no {TF1_CONFIG} next to it")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        config = BertConfig.from_dict(data)
    except (json.JSONDecodeError, ValueError, TypeError) as err:
        raise ConversionError(f"{config_path}: not a valid BERT config ({err})") from err
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
    except ImportError as err:
        raise ConversionError("reading a TF1 checkpoint needs TensorFlow: pip install 'multi-bert[tf]'") from err
    reader = tf.train.load_checkpoint(str(prefix))
    state: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name in sorted(reader.get_variable_to_shape_map()):
        mapped = tf1_name(name)
        if mapped is None:
            continue
        canonical, transpose = mapped
        value = np.asarray(reader.get_tensor(name))
        state[canonical] = np.ascontiguousarray(value.T) if transpose else value
    check_config_agrees(config, state, prefix)
    head = infer_head(list(state), config)
    weights, dropped = _canonical(state, config, head, str(prefix))
    if dropped:
        raise ConversionError(f"TF1 checkpoint {prefix}: variables not understood: {dropped[:5]}")
    return Source("tf1", str(prefix), config, head, weights, _tokenizer_files(prefix.parent))


def read_source(src: Any) -> Source:
    """Read ``src`` of any supported kind (see module docstring) into canonical weights."""
    kind, path = detect_source(str(src))
    if kind == "keras":
        return read_keras(path)
    if kind == "tf1":
        return read_tf1(path)
    if kind == "hub":
        try:
            return read_hf(str(src))
        except (OSError, FileNotFoundError) as err:
            raise ConversionError(
                f"source {str(src)!r} is not a local path and could not be fetched as a hub id: {err}"
            ) from err
    return read_hf(str(path))


# ------------------------------------------------------------------------------------------------ writing


@dataclass
class ConvertResult:
    source: Source
    destination: Path
    files: List[Path]
    report: Any = None  # a runner.Report when verified


def _check_destination(dst: Path, overwrite: bool) -> None:
    if dst.exists() and not dst.is_dir():
        raise ConversionError(f"destination {dst} is a file; expected a directory")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise ConversionError(
            f"destination {dst} is not empty; pass --overwrite (overwrite=True) to replace it as a whole"
        )


def write_canonical(source: Source, dst: Any, overwrite: bool = False) -> List[Path]:
    """Write config.json + model.safetensors (+ tokenizer files) for ``source`` into ``dst``.

    ``dst`` must be empty or missing unless ``overwrite``; then it is replaced as a whole (nothing stale is left,
    and an interrupted conversion leaves the previous directory untouched).
    """
    from bert_core.checkpoint import write_checkpoint_files

    dst = Path(dst)
    _check_destination(dst, overwrite)
    with staged_directory(dst, replace=("*",)) as stage:
        write_checkpoint_files(stage, source.config, source.weights, architecture=source.head)
        for f in source.tokenizer_files:
            shutil.copyfile(f, stage / f.name)
    files = [dst / "config.json", dst / "model.safetensors"]
    return files + [dst / f.name for f in source.tokenizer_files]


def verify(
    source: Source,
    dst: Any,
    backends: Optional[Sequence[str]] = None,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
    progress: Optional[Callable[[str], None]] = None,
):
    """Weights of ``dst`` bit-equal to the source, and on every backend the source weights and ``dst`` loaded by that
    backend's ``from_pretrained`` give equal outputs on the battery. Returns a runner.Report."""
    import time

    from .adapters import get_adapter, resolve_backends
    from .cases import build_cases
    from .runner import Report, _compare_flat

    start = time.perf_counter()
    say = progress or (lambda m: None)
    names = resolve_backends(backends)
    report = Report(f"{source.path} -> {dst}", names, [source.head], tolerance)
    state, _ = read_state_dict(dst)
    written = normalize_state_dict(state, source.head)
    for name, value in source.weights.items():
        got = written.get(name)
        cmp = compare_exact(value, got) if got is not None else Comparison(float("inf"), 0.0, False, "missing")
        report.add("convert", source.head, "weights", name, "source~result", cmp)
    extra = [n for n in written if n not in source.weights]
    if extra:
        report.add(
            "convert",
            source.head,
            "weights",
            "unexpected",
            "source~result",
            Comparison(float("inf"), 0.0, False, f"unexpected tensors {extra[:3]}"),
        )
    cases = [c for c in build_cases(source.head, source.config) if not c.decoder]
    if not cases:  # a causal-LM checkpoint: its cases, on the checkpoint's own config
        cases = [
            c for c in build_cases(source.head, source.config) if c.kind == "forward" and c.name != "cross_attention"
        ]
    for n in names:
        adapter = get_adapter(n)
        say(f"verify on {n}")
        try:
            a = adapter.build(source.head, source.config, source.weights)
            b = adapter.load(source.head, str(dst))
            for case in cases:
                _compare_flat(
                    report,
                    "outputs",
                    source.head,
                    case.name,
                    f"{n}:source~{n}:result",
                    adapter.forward(a, case.inputs),
                    adapter.forward(b, case.inputs),
                    tolerance,
                )
        except Exception as err:
            report.error("verify", source.head, "load", n, err)
    report.seconds = time.perf_counter() - start
    return report


def convert(
    src: Any,
    dst: Any,
    *,
    verify_result: bool = False,
    to: str = "hf",
    backends: Optional[Sequence[str]] = None,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
    progress: Optional[Callable[[str], None]] = None,
    overwrite: bool = False,
    tokenizer: Any = None,
) -> ConvertResult:
    """Convert ``src`` to a canonical HF directory ``dst`` (``to="savedmodel"``: a serving SavedModel instead).

    ``tokenizer``: a directory whose tokenizer files (``vocab.txt``, ``tokenizer.json``, ...) replace the source's
    (``model.save_pretrained`` writes none; the SavedModel's in-graph tokenizer needs ``vocab.txt``).

    ``verify_result``: for ``hf``, weights bit-equal and outputs equal on every backend; for ``savedmodel``, the
    reloaded SavedModel's outputs equal the tf model's on the same token ids. ``dst`` must be empty unless
    ``overwrite`` (then it is replaced as a whole).
    """
    if to not in ("hf", "savedmodel"):
        raise ConversionError(f"unknown --to {to!r}; expected 'hf' or 'savedmodel'")
    dst = Path(dst)
    _check_destination(dst, overwrite)
    source = read_source(src)
    if tokenizer is not None:
        files = _tokenizer_files(Path(tokenizer))
        if not files:
            raise ConversionError(
                f"--tokenizer {os.fspath(tokenizer)!r} holds none of the tokenizer files {', '.join(TOKENIZER_FILES)}"
            )
        source.tokenizer_files = files
    if to == "savedmodel":
        files = export_savedmodel(source, dst)
        result = ConvertResult(source, dst, files)
        if verify_result:
            result.report = verify_savedmodel(source, dst, tolerance, progress)
        return result
    files = write_canonical(source, dst, overwrite=overwrite)
    result = ConvertResult(source, dst, files)
    if verify_result:
        result.report = verify(source, dst, backends, tolerance, progress)
    return result


def export_savedmodel(source: Source, dst: Path) -> List[Path]:
    """A serving SavedModel with the in-graph tokenizer: signature ``serving_default(text: string (batch,))`` ->
    the head's output tensors (e.g. ``logits`` (batch, num_labels)); bert_tf.TFBertTokenizer + the head.

    The tokenizer is built from the source's ``vocab.txt`` (+ ``tokenizer_config.json`` for do_lower_case and the
    special tokens). Multiple choice needs (batch, choices) inputs and is not exported.
    """
    try:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras
        import tensorflow as tf

        import bert_tf
    except ImportError as err:
        raise ConversionError(f"--to savedmodel needs the tf backend: pip install 'multi-bert[tf]' ({err})") from err
    try:
        tokenizer_cls = bert_tf.TFBertTokenizer
    except (AttributeError, ImportError) as err:
        raise ConversionError(f"--to savedmodel: bert_tf.TFBertTokenizer is unavailable ({err})") from err
    vocab = next((f for f in source.tokenizer_files if f.name == "vocab.txt"), None)
    if vocab is None:
        raise ConversionError(
            "--to savedmodel needs vocab.txt (the in-graph tokenizer) next to the source checkpoint or in --tokenizer "
            "DIR; model.save_pretrained writes no tokenizer files: save them with tokenizer.save_pretrained(DIR)"
        )
    if source.head == "BertForMultipleChoice":
        raise ConversionError("--to savedmodel: BertForMultipleChoice takes (batch, choices) texts; not exported")
    tokenizer = tokenizer_cls.from_pretrained(
        str(vocab.parent), max_length=min(512, source.config.max_position_embeddings)
    )
    model = getattr(bert_tf, source.head)(source.config)
    model.load_canonical_weights(source.weights)
    tokenizer(tf.constant(["build"]))  # a Keras layer must be built before ExportArchive tracks it

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="text")])
    def serve(text):
        encoded = tokenizer(text)
        output = model(
            input_ids=tf.cast(encoded["input_ids"], tf.int32),
            attention_mask=tf.cast(encoded["attention_mask"], tf.int32),
            token_type_ids=tf.cast(encoded["token_type_ids"], tf.int32),
            training=False,
        )
        result = {k: v for k, v in output.items() if isinstance(v, tf.Tensor)}
        result["input_ids"] = encoded["input_ids"]
        return result

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint("serving_default", serve)
    with staged_directory(dst, replace=("*",)) as stage:
        archive.write_out(str(stage), verbose=False)
        source.config.save_pretrained(stage)  # what the head is, for humans and tools; TF Serving ignores it
    return [dst / "saved_model.pb", dst / "config.json"]


#: texts the SavedModel check runs (plain, punctuation and digits, accents, a pair-length sentence, CJK)
VERIFY_TEXTS = [
    "hello world",
    "A longer sentence, with punctuation; numbers 12345 and an email: a@b.c!",
    "Ünïcödé àccents and naïve café",
    "the quick brown fox jumps over the lazy dog " * 3,
    "中文 text",
]


def verify_savedmodel(source: Source, dst: Path, tolerance: Tolerance = DEFAULT_TOLERANCE, progress=None):
    """Reload the SavedModel (``tf.saved_model.load``, as TF Serving would) and compare every output of its
    ``serving_default`` on :data:`VERIFY_TEXTS` with the tf model run in process on the ids the SavedModel's
    tokenizer produced. Returns a runner.Report (pair ``tf~savedmodel``)."""
    import time

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers NormalizeUTF8 & co., which the SavedModel's tokenizer needs)

    import bert_tf

    from .runner import Report, _compare_flat

    start = time.perf_counter()
    (progress or (lambda m: None))("verify the SavedModel")
    report = Report(f"{source.path} -> {dst} (SavedModel)", ["tf"], [source.head], tolerance)
    try:
        served = tf.saved_model.load(str(dst)).signatures["serving_default"]
        got = {k: v.numpy() for k, v in served(text=tf.constant(VERIFY_TEXTS)).items()}
        ids = got.pop("input_ids").astype(np.int32)
        mask = (ids != source.config.pad_token_id).astype(np.int32)
        mask[:, 0] = 1
        model = getattr(bert_tf, source.head)(source.config)
        model.load_canonical_weights(source.weights)
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids), training=False)
        expected = {k: np.asarray(v) for k, v in out.items() if isinstance(v, tf.Tensor)}
        _compare_flat(report, "outputs", source.head, "savedmodel", "tf~savedmodel", expected, got, tolerance)
    except Exception as err:  # a SavedModel that does not load or run is a failed verification, reported as such
        report.error("verify", source.head, "savedmodel", "tf", err)
    report.seconds = time.perf_counter() - start
    return report
