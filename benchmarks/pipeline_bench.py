"""(h) Pipeline throughput on a skewed-length corpus: ``bert_core.pipelines.pipeline`` per backend against
``transformers.pipeline``.

Contenders, each called on the whole corpus (a list of texts) with its defaults:

- ours: ``pipeline(task, model=DIR, backend=b)`` (batch_size 8, inputs sorted by length into padded batches,
  results in input order).
- ``hf_default``: ``transformers.pipeline(task, model=..., framework=...)``: no batching by default (batch_size 1;
  HF's TF pipelines run one input at a time whatever the batch size).
- ``hf_batched`` (PyTorch only): the same HF pipeline with ``batch_size=8`` (ours'): batches in corpus order, each
  padded to its longest text.

HF has TF pipelines (tf-keras) but no Flax ones: our flax pipeline is compared with HF's PyTorch pipeline.
Tasks: ``text-classification`` (``BertForSequenceClassification``), ``feature-extraction`` (token vectors as nested
lists, HF's output) and ``sentence-embedding`` (ours reads the checkpoint's sentence-transformers pooling; the HF
side is its feature-extraction pipeline truncated to the same ``max_seq_length``, mean-pooled and normalised by hand
as HF's model cards show).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .frameworks import _quiet_hf, hf_tf_checkpoint

TASKS = ("text-classification", "feature-extraction", "sentence-embedding")
#: the checkpoint each task runs ("cls": a sequence-classification head, "base": the bare encoder)
CHECKPOINT = {"text-classification": "cls", "feature-extraction": "base", "sentence-embedding": "base"}
HF_HEAD = {"text-classification": "ForSequenceClassification", "feature-extraction": "Model"}
OURS_BATCH_SIZE = 8  # bert_core.pipelines.pipeline's default
#: the HF pipelines each backend is compared with (HF has no Flax pipelines)
HF_FRAMEWORK = {"torch": "torch", "tf": "tf", "flax": "torch"}

Run = Callable[[List[str]], Any]


def ours(framework: str, task: str, ckpt: str) -> Run:
    from bert_core.pipelines import pipeline

    return pipeline(task, model=ckpt, backend=framework, progress=False)


def pooling_of(ckpt: str):
    from bert_core.pipelines import PoolingConfig

    pooling = PoolingConfig.from_directory(ckpt)
    if pooling.modes != ("mean",):
        raise ValueError(f"the HF side pools by mean only; {ckpt} asks for {pooling.modes}")
    return pooling


def hf(framework: str, task: str, ckpt: str) -> Tuple[Run, Optional[Run]]:
    """(default run, batched run or None) of HF's pipeline in ``HF_FRAMEWORK[framework]``."""
    transformers = _quiet_hf()
    hf_task = "feature-extraction" if task == "sentence-embedding" else task
    hf_framework = HF_FRAMEWORK[framework]
    if hf_framework == "tf":
        cls = getattr(transformers, "TFBert" + HF_HEAD[hf_task])
        model = cls.from_pretrained(hf_tf_checkpoint(ckpt), from_pt=True)
        pipe = transformers.pipeline(hf_task, model=model, tokenizer=ckpt, framework="tf")
    else:
        pipe = transformers.pipeline(hf_task, model=ckpt, framework="pt")
    if task != "sentence-embedding":
        batched = (lambda texts: pipe(texts, batch_size=OURS_BATCH_SIZE)) if hf_framework == "torch" else None
        return pipe, batched
    kwargs = truncation(ckpt, pipe.tokenizer.model_max_length)
    pooling = pooling_of(ckpt)
    lengths = _lengths(pipe.tokenizer, kwargs)

    def embed(texts: List[str], **call: Any) -> np.ndarray:
        rows = pipe(texts, tokenize_kwargs=kwargs, **call)
        # batched rows are padded to their batch's longest text: keep each text's own tokens
        vectors = np.stack([np.asarray(r[0][: lengths(t)], np.float32).mean(axis=0) for r, t in zip(rows, texts)])
        if pooling.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    batched = (lambda texts: embed(texts, batch_size=OURS_BATCH_SIZE)) if hf_framework == "torch" else None
    return embed, batched


def truncation(ckpt: str, model_max_length: int) -> Dict[str, Any]:
    """Tokenizer options of sentence-embedding: the checkpoint's ``max_seq_length`` (capped by the tokenizer's)."""
    pooling = pooling_of(ckpt)
    if not pooling.max_seq_length:
        return {}
    return {"truncation": True, "max_length": min(pooling.max_seq_length, model_max_length)}


def _lengths(tokenizer: Any, kwargs: Dict[str, Any]) -> Callable[[str], int]:
    cache: Dict[str, int] = {}

    def n(text: str) -> int:
        if text not in cache:
            cache[text] = len(tokenizer(text, **kwargs)["input_ids"])
        return cache[text]

    return n


def token_count(task: str, ckpt: str, texts: Sequence[str]) -> int:
    """Real tokens the task runs (with the truncation sentence-embedding applies)."""
    from bert_core.tokenization_fast import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(ckpt)
    kwargs = truncation(ckpt, tokenizer.model_max_length) if task == "sentence-embedding" else {}
    return int(sum(len(ids) for ids in tokenizer(list(texts), **kwargs)["input_ids"]))


def compare(task: str, a: Any, b: Any) -> Dict[str, float]:
    """How far two contenders' outputs on the same texts are apart (labels, scores, vectors)."""
    if task == "text-classification":
        labels = np.mean([x["label"] == y["label"] for x, y in zip(a, b)])
        scores = max(abs(float(x["score"]) - float(y["score"])) for x, y in zip(a, b))
        return {"label_agreement": float(labels), "max_abs_score_diff": scores}
    if task == "feature-extraction":
        return {"max_abs_diff": float(max(np.max(np.abs(np.asarray(x) - np.asarray(y))) for x, y in zip(a, b)))}
    return {"max_abs_diff": float(np.max(np.abs(np.asarray(a) - np.asarray(b))))}
