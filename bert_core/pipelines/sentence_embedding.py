"""``sentence-embedding``: one vector per text, pooled as the checkpoint's sentence-transformers files say.

A sentence-transformers checkpoint (all-MiniLM-L6-v2) lists its modules in ``modules.json``: the Transformer, a
``Pooling`` module whose ``1_Pooling/config.json`` says which poolings (mean, cls, max, ...) are concatenated, and
optionally ``Normalize`` (unit L2 norm); ``sentence_bert_config.json`` holds ``max_seq_length``. Without those files:
mean pooling over the tokens, no normalisation, the tokenizer's maximum length.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .base import Pipeline, PipelineError, check_int, check_text, features_of, is_stream

#: sentence-transformers' pooling modes, in the order its Pooling module concatenates them
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len", "weightedmean", "lasttoken")
_CONFIG_KEYS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}
#: the files read from a hub repo besides the model's own
ST_FILES = ("modules.json", "sentence_bert_config.json", "*_Pooling/config.json")
_MODULES = "sentence_transformers.models."


@dataclass(frozen=True)
class PoolingConfig:
    """How token vectors become one sentence vector.

    Attributes:
        modes: pooling modes from :data:`POOLING_MODES`, concatenated in that order.
        normalize: scale each vector to unit L2 norm.
        max_seq_length: tokens kept per text (None: the tokenizer's ``model_max_length``).
        do_lower_case: lower-case texts before tokenizing (sentence-transformers' option).
    """

    modes: Tuple[str, ...] = ("mean",)
    normalize: bool = False
    max_seq_length: Optional[int] = None
    do_lower_case: bool = False

    @classmethod
    def from_directory(cls, directory: Union[str, os.PathLike]) -> "PoolingConfig":
        """Read ``modules.json`` (+ the Pooling module's ``config.json``, ``sentence_bert_config.json``) in
        ``directory``; the defaults when there is no ``modules.json``.

        Raises:
            PipelineError: a module this pipeline cannot run (e.g. ``Dense``), or an unreadable file, named.
        """
        directory = Path(directory)
        modules_file = directory / "modules.json"
        if not modules_file.is_file():
            return cls()
        modules = _read_json(modules_file)
        modes: Tuple[str, ...] = ("mean",)
        normalize = False
        for module in modules:
            kind = str(module.get("type", ""))
            name = kind[len(_MODULES) :] if kind.startswith(_MODULES) else kind
            if name == "Pooling":
                config = _read_json(directory / module.get("path", "") / "config.json")
                modes = tuple(m for m in POOLING_MODES if config.get(_CONFIG_KEYS[m]))
                if not modes:
                    raise PipelineError(f"{directory / module.get('path', '')}/config.json enables no pooling mode")
            elif name == "Normalize":
                normalize = True
            elif name != "Transformer":
                raise PipelineError(
                    f"{modules_file} lists a {kind} module; sentence-embedding runs Transformer, Pooling and "
                    "Normalize only"
                )
        st_config = directory / "sentence_bert_config.json"
        settings = _read_json(st_config) if st_config.is_file() else {}
        return cls(
            modes=modes,
            normalize=normalize,
            max_seq_length=settings.get("max_seq_length"),
            do_lower_case=bool(settings.get("do_lower_case", False)),
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PipelineError(f"cannot read the sentence-transformers file {path}: {err}") from err


def pool(hidden: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Pool one text's token vectors ``hidden`` (tokens, dim) float32 -> (len(modes) * dim,) float32."""
    n = hidden.shape[0]
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[0])
        elif mode == "max":
            out.append(hidden.max(axis=0))
        elif mode == "mean":
            out.append(hidden.sum(axis=0) / np.float32(n))
        elif mode == "mean_sqrt_len":
            out.append(hidden.sum(axis=0) / np.sqrt(np.float32(n)))
        elif mode == "weightedmean":
            weights = np.arange(1, n + 1, dtype=np.float32)  # later tokens weigh more (position 1..n)
            out.append((hidden * weights[:, None]).sum(axis=0) / weights.sum())
        elif mode == "lasttoken":
            out.append(hidden[-1])
        else:
            raise PipelineError(f"pooling mode must be one of {', '.join(POOLING_MODES)}; got {mode!r}")
    return np.concatenate(out).astype(np.float32)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero), as ``torch.nn.functional.normalize``."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def cos_sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` (n, dim) with every row of ``b`` (m, dim) -> (n, m) float32
    (1-D inputs count as one row)."""
    a = normalize(np.atleast_2d(np.asarray(a, np.float32)))
    b = normalize(np.atleast_2d(np.asarray(b, np.float32)))
    return a @ b.T


def pairwise_cos_sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of row i of ``a`` with row i of ``b``: (n, dim) x (n, dim) -> (n,) float32."""
    a = normalize(np.atleast_2d(np.asarray(a, np.float32)))
    b = normalize(np.atleast_2d(np.asarray(b, np.float32)))
    if a.shape != b.shape:
        raise PipelineError(f"pairwise_cos_sim needs two arrays of one shape; got {a.shape} and {b.shape}")
    return (a * b).sum(axis=-1)


class SentenceEmbeddingPipeline(Pipeline):
    """One vector per text (what sentence-transformers' ``encode`` gives for the same checkpoint).

    Call: ``pipe(text_or_texts, normalize=None)``: a text gives a float32 array (dim,), a list an array
    (n, dim), an iterator yields (dim,) arrays. ``normalize`` overrides the checkpoint's ``Normalize`` module.
    ``pipe.similarity(a, b)``: cosine similarities (n, m) of texts (or of embeddings already computed).
    The pooling: ``pipe.pooling`` (a :class:`PoolingConfig`, from the checkpoint or ``pooling=`` at construction).
    """

    task = "sentence-embedding"
    head = "BertModel"
    token_outputs = ("last_hidden_state",)
    parameters = {"normalize": None}

    def __init__(self, runner: Any, tokenizer: Any, *, pooling: Optional[PoolingConfig] = None, **kwargs: Any):
        self.pooling = pooling or PoolingConfig()
        super().__init__(runner, tokenizer, **kwargs)

    def _setup(self) -> None:
        unknown = [m for m in self.pooling.modes if m not in POOLING_MODES]
        if unknown or not self.pooling.modes:
            raise PipelineError(f"pooling modes must be among {', '.join(POOLING_MODES)}; got {self.pooling.modes}")
        if self.pooling.max_seq_length is not None:
            check_int("max_seq_length", self.pooling.max_seq_length, 1)

    def _resolve(self, params: Dict[str, Any], explicit: Mapping[str, Any]) -> Dict[str, Any]:
        if params["normalize"] is None:
            params["normalize"] = self.pooling.normalize
        elif not isinstance(params["normalize"], bool):
            raise PipelineError(f"normalize must be True, False or None; got {params['normalize']!r}")
        return params

    def __call__(self, inputs: Any, **params: Any) -> Any:
        params = self.resolve_options(params)
        if is_stream(inputs):
            return self.run(inputs, params)
        if isinstance(inputs, str):
            return next(self.run([inputs], params))
        vectors = list(self.run(list(inputs), params))
        if not vectors:
            return np.zeros((0, self.config.hidden_size * len(self.pooling.modes)), np.float32)
        return np.stack(vectors)

    def similarity(self, a: Any, b: Any) -> np.ndarray:
        """Cosine similarities (n, m) between texts/embeddings ``a`` and ``b`` (a str or a 1-D array is one row)."""
        return cos_sim(self._vectors(a), self._vectors(b))

    def _vectors(self, value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray):
            return value
        return self([value] if isinstance(value, str) else list(value))

    def preprocess(self, item: Any, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
        text = check_text("text", item)
        if self.pooling.do_lower_case:
            text = text.lower()
        max_length = self.pooling.max_seq_length
        if max_length is not None:
            max_length = min(max_length, self.tokenizer.model_max_length)
        return [features_of(self.tokenizer(text, truncation=True, max_length=max_length))]

    def select(self, feature: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return pool(outputs["last_hidden_state"], self.pooling.modes)

    def postprocess(self, item, features, selected, params) -> np.ndarray:
        vector = selected[0]
        return normalize(vector[None])[0] if params["normalize"] else vector
