"""The Keras 3 / TensorFlow part of ``bert_core.pipelines``: load a head, run a numpy batch, return float32 numpy."""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any, Dict, Mapping, Optional

import keras
import numpy as np
import tensorflow as tf

from bert_core.pipelines.base import PipelineError, bf16_needs_directory, check_model_head

from . import modeling


def _tf_device(device: Optional[str]) -> Optional[str]:
    """ "cpu" / "gpu" / "cuda:1" / "/GPU:0" -> a TensorFlow device name."""
    if device is None or device.startswith("/"):
        return device
    kind, _, index = device.partition(":")
    kind = {"cuda": "GPU", "gpu": "GPU", "cpu": "CPU"}.get(kind.lower(), kind.upper())
    return f"/{kind}:{index or 0}"


class PipelineModel:
    """``head`` loaded from a directory / hub id, or a ready ``bert_tf`` model.

    Args:
        head: the class name, e.g. ``"BertForQuestionAnswering"``.
        model: a checkpoint directory, a hub id, or a ``bert_tf`` model of class ``head``.
        task: the pipeline's task (named in errors).
        bf16: build the model under Keras' ``mixed_bfloat16`` policy (outputs are still float32).
        device: a TensorFlow device ("cpu", "gpu:0", "/GPU:0"); default: TensorFlow's placement.
        compile: compile the batches with XLA (``tf.function(jit_compile=True)``, as ``compile_for_inference``);
            XLA compiles once per (rows, length) shape.
    """

    backend = "tf"
    pad_to_multiple_of = 8

    def __init__(
        self,
        head: str,
        model: Any,
        *,
        task: str,
        bf16: bool = False,
        device: Optional[str] = None,
        compile: bool = False,
    ):
        self.device = _tf_device(device)
        if isinstance(model, (str, os.PathLike)):
            previous = keras.mixed_precision.global_policy().name
            keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else previous)
            try:
                with tf.device(self.device) if self.device else nullcontext():
                    model = getattr(modeling, head).from_pretrained(model)
            finally:
                keras.mixed_precision.set_global_policy(previous)
        elif bf16:
            raise PipelineError(bf16_needs_directory(self.backend))
        check_model_head(type(model).head_name, head, task)
        self.model = model
        self.config = model.config
        spec = tf.TensorSpec([None, None], tf.int32)

        # one trace serves every batch shape (rows and length are None in the signature)
        @tf.function(input_signature=[spec, spec, spec], jit_compile=compile)
        def run(input_ids, attention_mask, token_type_ids):
            out = model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, training=False
            )
            return {k: tf.cast(v, tf.float32) for k, v in out.items() if tf.is_tensor(v)}

        self._run = run

    def __call__(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``batch``: int64 arrays (rows, padded_len) -> every output field as a float32 array."""
        args = [tf.constant(batch[k], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")]
        with tf.device(self.device) if self.device else nullcontext():
            out = self._run(*args)
        return {k: v.numpy() for k, v in out.items()}
