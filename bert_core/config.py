"""BertConfig: the HF ``config.json`` of a BERT model, validated, with unknown keys kept for round trips."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from .hub import resolve_model_dir
from .io_utils import atomic_write_text

CONFIG_NAME = "config.json"

#: Activations the backends implement, named as HF's ``ACT2FN`` names them.
SUPPORTED_ACTIVATIONS = (
    "gelu",
    "gelu_new",
    "gelu_python",
    "gelu_fast",
    "gelu_pytorch_tanh",
    "quick_gelu",
    "relu",
    "silu",
    "swish",
    "tanh",
    "mish",
)
POSITION_EMBEDDING_TYPES = ("absolute", "relative_key", "relative_key_query")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")

# Fields every BERT config has, with HF's defaults; the order is the order of ``to_dict``.
_DEFAULTS: Dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "use_cache": True,
    "classifier_dropout": None,
    # generic PretrainedConfig fields the heads read
    "is_decoder": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
    "problem_type": None,
    "output_attentions": False,
    "output_hidden_states": False,
    "return_dict": True,
    "chunk_size_feed_forward": 0,
    "gradient_checkpointing": False,
}

_POSITIVE_INT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
_PROBABILITY_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")


class BertConfig:
    """Configuration of a BERT model, compatible with HF transformers' ``config.json``.

    Every known field is an attribute; keys this class does not know (``architectures``, ``transformers_version``,
    ``_name_or_path``, ...) are kept in order and written back by :meth:`to_dict`, so a load/save round trip keeps them.

    Args:
        vocab_size .. classifier_dropout: as in HF ``BertConfig``.
        is_decoder, add_cross_attention, tie_word_embeddings, problem_type, output_attentions, output_hidden_states,
        return_dict, chunk_size_feed_forward, gradient_checkpointing: as in HF ``PretrainedConfig``.
        num_labels: number of classification labels (default 2, or ``len(id2label)`` when that is given).
        id2label / label2id: label names; keys of ``id2label`` are ints (JSON strings are converted).
        **kwargs: other keys, kept as attributes and written back unchanged.

    Raises:
        ValueError: a field is out of range, naming the field, the value and what is expected.
    """

    model_type = "bert"

    def __init__(
        self,
        num_labels: Optional[int] = None,
        id2label: Optional[Dict[Any, str]] = None,
        label2id: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        # ``use_return_dict`` is a read-only property in HF; accept it on input as ``return_dict``.
        if "use_return_dict" in kwargs:
            kwargs.setdefault("return_dict", kwargs.pop("use_return_dict"))
        kwargs.pop("model_type", None)
        for name, default in _DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, copy.deepcopy(default)))
        self._extra: Dict[str, Any] = dict(kwargs)
        for name, value in kwargs.items():
            setattr(self, name, value)

        if id2label is not None:
            id2label = {int(k): str(v) for k, v in dict(id2label).items()}
            if num_labels is not None and num_labels != len(id2label):
                raise ValueError(
                    f"num_labels={num_labels} disagrees with id2label, which has {len(id2label)} entries "
                    f"({sorted(id2label)}); pass one of them or make them agree"
                )
        else:
            n = 2 if num_labels is None else num_labels
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"num_labels must be a positive int, got {num_labels!r}")
            id2label = {i: f"LABEL_{i}" for i in range(n)}
        if label2id is None:
            label2id = {v: k for k, v in id2label.items()}
        else:
            label2id = {str(k): int(v) for k, v in dict(label2id).items()}
            if sorted(label2id.values()) != sorted(id2label):
                raise ValueError(
                    f"label2id {label2id} does not match id2label {id2label}: both must cover the same label ids"
                )
        self.id2label: Dict[int, str] = id2label
        self.label2id: Dict[str, int] = label2id
        self.validate()

    # ------------------------------------------------------------------ derived values
    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"num_labels must be a positive int, got {n!r}")
        if n != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def use_return_dict(self) -> bool:
        return bool(self.return_dict)

    def output_flags(
        self, output_attentions: Optional[bool], output_hidden_states: Optional[bool], return_dict: Optional[bool]
    ) -> Tuple[bool, bool, bool]:
        """A call's three output switches, each defaulting to this config's (as every backend resolves them)."""
        return (
            self.output_attentions if output_attentions is None else bool(output_attentions),
            self.output_hidden_states if output_hidden_states is None else bool(output_hidden_states),
            self.use_return_dict if return_dict is None else bool(return_dict),
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def classifier_dropout_prob(self) -> float:
        """Dropout before classification heads: ``classifier_dropout`` or else ``hidden_dropout_prob``."""
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every field; raise ValueError naming the field, the value and the expected range."""
        for name in _POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        for name in _PROBABILITY_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if self.classifier_dropout is not None and not (
            isinstance(self.classifier_dropout, (int, float)) and 0.0 <= self.classifier_dropout < 1.0
        ):
            raise ValueError(f"classifier_dropout must be None or in [0, 1), got {self.classifier_dropout!r}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} is not supported; expected one of {SUPPORTED_ACTIVATIONS}"
            )
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported; "
                f"expected one of {POSITION_EMBEDDING_TYPES}"
            )
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(
                f"problem_type {self.problem_type!r} is not supported; expected None or one of {PROBLEM_TYPES}"
            )
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps must be a positive float, got {self.layer_norm_eps!r}")
        if not isinstance(self.initializer_range, (int, float)) or self.initializer_range < 0:
            raise ValueError(f"initializer_range must be >= 0, got {self.initializer_range!r}")
        if not isinstance(self.chunk_size_feed_forward, int) or self.chunk_size_feed_forward < 0:
            raise ValueError(f"chunk_size_feed_forward must be an int >= 0, got {self.chunk_size_feed_forward!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id must be in [0, vocab_size={self.vocab_size}), got {self.pad_token_id!r}")

    # ------------------------------------------------------------------ dict / json
    def to_dict(self) -> Dict[str, Any]:
        """All fields, HF spelling (``model_type`` included, ``id2label`` keys as strings on JSON write)."""
        out: Dict[str, Any] = {}
        for name in _DEFAULTS:
            out[name] = copy.deepcopy(getattr(self, name))
        out["id2label"] = {int(k): v for k, v in self.id2label.items()}
        out["label2id"] = dict(self.label2id)
        for name in self._extra:
            out[name] = copy.deepcopy(getattr(self, name))
        out["model_type"] = self.model_type
        return out

    def to_json_string(self, use_diff: bool = False) -> str:
        """JSON text of :meth:`to_dict` (``use_diff=True``: only values that differ from the defaults)."""
        data = self.to_dict()
        if use_diff:
            base = BertConfig().to_dict()
            data = {k: v for k, v in data.items() if k in self._extra or k == "model_type" or base.get(k) != v}
        data = {k: ({str(i): n for i, n in v.items()} if k == "id2label" else v) for k, v in data.items()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Dict[str, Any], **overrides: Any) -> "BertConfig":
        merged = dict(data)
        # num_labels overrides a checkpoint's id2label (as HF does when fine-tuning a new head).
        if "num_labels" in overrides and "id2label" not in overrides:
            merged.pop("id2label", None)
            merged.pop("label2id", None)
        merged.update(overrides)
        if "id2label" in overrides and "label2id" not in overrides:
            merged.pop("label2id", None)
        if merged.get("id2label") is not None and "num_labels" in merged and "num_labels" not in overrides:
            # config.json files written by HF carry no num_labels; ours may: id2label wins.
            merged.pop("num_labels")
        return cls(**merged)

    @classmethod
    def from_json_file(cls, path: Union[str, os.PathLike]) -> "BertConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {os.fspath(path)!r} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {os.fspath(path)!r} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"config file {os.fspath(path)!r} must hold a JSON object, got {type(data).__name__}")
        model_type = data.get("model_type", "bert")
        if model_type != "bert":
            raise ValueError(f"config file {os.fspath(path)!r} has model_type={model_type!r}; expected 'bert'")
        return cls.from_dict(data)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, os.PathLike],
        *,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        token: Optional[Union[str, bool]] = None,
        local_files_only: bool = False,
        **overrides: Any,
    ) -> "BertConfig":
        """Load ``config.json`` from a directory, a path to the file itself, or a hub repo id; apply overrides."""
        path = Path(os.fspath(name_or_path))
        if path.is_file():
            config_file = path
        else:
            directory = resolve_model_dir(
                name_or_path,
                allow_patterns=[CONFIG_NAME],
                revision=revision,
                cache_dir=cache_dir,
                token=token,
                local_files_only=local_files_only,
            )
            config_file = directory / CONFIG_NAME
            if not config_file.is_file():
                raise FileNotFoundError(f"no {CONFIG_NAME} in {os.fspath(directory)!r}")
        config = cls.from_json_file(config_file)
        if overrides:
            config = cls.from_dict(config.to_dict(), **overrides)
        return config

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> Path:
        """Write ``config.json`` into ``save_directory`` (created if needed), atomically. Returns the file path."""
        directory = Path(save_directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"save_directory {os.fspath(directory)!r} is a file")
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / CONFIG_NAME
        atomic_write_text(target, self.to_json_string())
        return target

    # ------------------------------------------------------------------ python protocol
    def copy(self, **overrides: Any) -> "BertConfig":
        return type(self).from_dict(self.to_dict(), **overrides)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_extra",) or name in _DEFAULTS or name in ("id2label", "label2id") or name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        object.__setattr__(self, name, value)
        # attributes set later are written back too, like HF's PretrainedConfig
        if "_extra" in self.__dict__:
            self._extra.setdefault(name, None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        # Hashable by content so a config can be static data of a jit-compiled model (nnx graphdefs are hashed);
        # consistent with __eq__. Mutating a config after using it as a cache key means a recompile, not a stale hit.
        return hash(self.to_json_string())

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


def tiny_config(**overrides: Any) -> BertConfig:
    """A small config for fast tests: 2 layers, hidden 32, 4 heads, vocab 99, 64 positions."""
    values: Dict[str, Any] = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    values.update(overrides)
    return BertConfig(**values)
