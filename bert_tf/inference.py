"""Compiled inference for ``bert_tf`` models: the forward as one ``tf.function``, XLA-compiled by default.

Opt-in: eager stays the default everywhere (pipelines, ``bert serve``). Keras' own path works too:
``model.jit_compile = True`` then ``model.predict(...)`` runs ``predict_step`` under XLA. Measured in ``benchmarks``
(workloads (a) and (b), variants ``ours_compiled_fp32`` / ``ours_compiled_bf16``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from bert_core import compiled as checks

from .modeling import ALL_MODEL_CLASSES, BertPreTrainedModel


class CompiledModel:
    """``model``'s forward as a ``tf.function`` (``jit_compile``: XLA), called like the model.

    Args and outputs are the model's: the same keywords (or a packed dict / list first argument), the same output
    dataclass (or tuple with ``return_dict=False``), tensors of the model's compute dtype. ``training`` is always
    False. Each new input shape traces once (``reduce_retracing``: from the second shape on, one trace with unknown
    batch and length serves all) and, under XLA, compiles once per concrete shape.

    Attributes:
        model: the wrapped Keras model (its weights are read at each call, never copied).
        config: the model's BertConfig. jit_compile: whether XLA compiles the forward.
    """

    def __init__(self, model: BertPreTrainedModel, jit_compile: bool) -> None:
        self.model = model
        self.config = model.config
        self.jit_compile = jit_compile

        def forward(inputs, options):
            return model(**inputs, **options, training=False)

        self._forward = tf.function(forward, jit_compile=jit_compile, reduce_retracing=True)

    def __call__(self, *args: Any, **kwargs: Any):
        """As ``model(...)``. Id ranges and the sequence length are checked eagerly first (a graph traced for any
        shape sees neither; XLA would clamp an out-of-range gather silently); a call with labels runs the eager
        model, so the label values are checked and the loss computed as usual."""
        kwargs.pop("training", None)
        inputs = self.model._unpack_inputs(args, kwargs)
        # nested Python lists of ids, as the eager model takes them
        inputs = {k: np.asarray(v) if isinstance(v, list) else v for k, v in inputs.items()}
        ranges = {}
        for name in checks.ID_INPUTS:
            x = inputs.get(name)
            if x is not None and tf.as_dtype(x.dtype).is_integer and int(np.prod(x.shape)) > 0:
                ranges[name] = (int(tf.reduce_min(x)), int(tf.reduce_max(x)))
        ids = inputs.get("input_ids")
        past = inputs.get("past_key_values")
        checks.check_values(
            self.config,
            ranges,
            seq_len=None if ids is None or len(ids.shape) < 2 else int(ids.shape[-1]),
            past_length=0 if not past else int(past[0][0].shape[2]),
        )
        if any(inputs.get(name) is not None for name in checks.LABEL_INPUTS):
            return self.model(**inputs, training=False)
        # tensors are traced; Python values (output flags, return_dict) are part of the trace's key
        tensors = {k: v for k, v in inputs.items() if isinstance(v, (tf.Tensor, np.ndarray))}
        options = {k: v for k, v in inputs.items() if k not in tensors}
        return self._forward({k: tf.convert_to_tensor(v) for k, v in tensors.items()}, options)

    def __repr__(self) -> str:
        return f"CompiledModel({type(self.model).__name__}, jit_compile={self.jit_compile})"


def compile_for_inference(model: BertPreTrainedModel, *, jit_compile: bool = True) -> CompiledModel:
    """Wrap ``model``'s forward in ``tf.function(jit_compile=jit_compile)`` for inference.

    Args:
        model: a ``bert_tf`` model (BertModel or a head), float32 or built under ``mixed_bfloat16``.
        jit_compile: compile with XLA (default); False keeps a plain graph (``tf.function`` without XLA).

    Returns:
        a :class:`CompiledModel`, called like the model, returning the same outputs.

    Raises:
        TypeError (wording shared with ``bert_torch.compile_for_inference``, in ``bert_core.compiled``) for a
        non-model or a non-bool ``jit_compile``.
    """
    checks.check_model(model, ALL_MODEL_CLASSES, "bert_tf")
    checks.check_flag("jit_compile", jit_compile)
    return CompiledModel(model, jit_compile)
