"""Task pipelines: ``pipeline(task, model)`` on any backend, outputs like HF transformers 4.57 pipelines.

Pre- and post-processing are numpy here; the backend (``bert_torch`` / ``bert_tf`` / ``bert_flax``) only loads the
head and runs batches (``bert_<backend>/pipelines.py``). Importing this package loads no framework.

    >>> from bert_core.pipelines import pipeline
    >>> qa = pipeline("question-answering", model="path/to/squad-model", backend="flax")
    >>> qa(question="Where do I live?", context="My name is Wolfgang and I live in Berlin")
    {'score': 0.91, 'start': 34, 'end': 40, 'answer': 'Berlin'}
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Type

from .. import compiled
from .base import Pipeline, PipelineError, load_runner, load_tokenizer, resolve_backend
from .feature_extraction import FeatureExtractionPipeline
from .fill_mask import FillMaskPipeline
from .question_answering import QuestionAnsweringPipeline
from .sentence_embedding import (
    ST_FILES,
    PoolingConfig,
    SentenceEmbeddingPipeline,
    cos_sim,
    pairwise_cos_sim,
)
from .text_classification import TextClassificationPipeline
from .token_classification import TokenClassificationPipeline
from .zero_shot import ZeroShotClassificationPipeline

#: task name -> pipeline class
TASKS: Dict[str, Type[Pipeline]] = {
    cls.task: cls
    for cls in (
        FillMaskPipeline,
        TextClassificationPipeline,
        TokenClassificationPipeline,
        QuestionAnsweringPipeline,
        FeatureExtractionPipeline,
        SentenceEmbeddingPipeline,
        ZeroShotClassificationPipeline,
    )
}
#: HF's other names for the same tasks
TASK_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def task_class(task: str) -> Type[Pipeline]:
    """The pipeline class of ``task`` (or an alias); PipelineError listing the tasks when unknown."""
    name = TASK_ALIASES.get(task, task) if isinstance(task, str) else task
    if name not in TASKS:
        names = ", ".join(list(TASKS) + list(TASK_ALIASES))
        raise PipelineError(f"unknown task {task!r}; expected one of {names}")
    return TASKS[name]


def pipeline(
    task: str,
    model: Any,
    tokenizer: Any = None,
    backend: Optional[str] = None,
    batch_size: int = 8,
    bf16: bool = False,
    device: Optional[str] = None,
    progress: Optional[bool] = None,
    pooling: Optional[PoolingConfig] = None,
    compile: bool = False,
    **task_options: Any,
) -> Pipeline:
    """Build the pipeline of ``task`` on one backend.

    Args:
        task: ``fill-mask``, ``text-classification`` (``sentiment-analysis``), ``token-classification`` (``ner``),
            ``question-answering``, ``feature-extraction``, ``sentence-embedding``, ``zero-shot-classification``.
        model: a checkpoint directory, a hub id, or a model object of the task's head (``bert_torch.BertForMaskedLM``
            ...). A checkpoint without the task's head weights (e.g. a ``BertModel`` for text-classification) gets
            them newly initialised, with a warning, as HF does.
        tokenizer: a tokenizer object or its directory / hub id; default: the model's directory.
        backend: ``torch``, ``tf`` or ``flax``; default: the model object's backend, else the first installed.
        batch_size: rows per model call (inputs are sorted by length into batches; results keep the input order).
        bf16: run the model in bfloat16 (scores stay float32).
        device: the backend's device name ("cpu", "cuda", "cuda:1", "gpu"); default: the backend's default.
        progress: show a tqdm bar (None: only for long inputs on a terminal).
        pooling: sentence-embedding only: override the pooling read from the checkpoint's sentence-transformers files.
        compile: compile the model for inference (``bert_core.compiled.COMPILE_HELP``): torch runs
            ``bert_torch.compile_for_inference`` (a ready model object is compiled in place), tf runs the batches
            under XLA (``tf.function(jit_compile=True)``); flax always runs under ``jax.jit``, so it changes nothing
            there. Off by default: each new batch shape then pays a compile (seconds) before it is faster.
        **task_options: default call options of the task (``top_k=3``, ``aggregation_strategy="simple"``, ...).

    Returns:
        The task's :class:`Pipeline`; call it like the HF pipeline of the same task.

    Raises:
        PipelineError: unknown task or option, a model object of another head, a backend that does not match.
        BackendUnavailable: the backend is not installed (the message names the extra to install).
    """
    cls = task_class(task)
    compiled.check_flag("compile", compile)
    name = resolve_backend(model, backend)
    tokenizer = load_tokenizer(tokenizer, model)
    extra: Dict[str, Any] = {}
    if cls is SentenceEmbeddingPipeline:
        if pooling is None and isinstance(model, (str, os.PathLike)):
            from ..hub import resolve_model_dir

            pooling = PoolingConfig.from_directory(resolve_model_dir(model, allow_patterns=list(ST_FILES)))
        extra["pooling"] = pooling
    elif pooling is not None:
        raise PipelineError(f"pooling applies to sentence-embedding only, not {cls.task}")
    runner = load_runner(name, cls.head, model, task=cls.task, bf16=bf16, device=device, compile=compile)
    return cls(runner, tokenizer, batch_size=batch_size, progress=progress, **extra, **task_options)


__all__ = [
    "pipeline",
    "task_class",
    "TASKS",
    "TASK_ALIASES",
    "Pipeline",
    "PipelineError",
    "FillMaskPipeline",
    "TextClassificationPipeline",
    "TokenClassificationPipeline",
    "QuestionAnsweringPipeline",
    "FeatureExtractionPipeline",
    "SentenceEmbeddingPipeline",
    "ZeroShotClassificationPipeline",
    "PoolingConfig",
    "cos_sim",
    "pairwise_cos_sim",
]
