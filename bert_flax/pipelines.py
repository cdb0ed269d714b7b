"""The Flax NNX part of ``bert_core.pipelines``: load a head, run a numpy batch, return float32 numpy outputs."""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bert_core.pipelines.base import PipelineError, bf16_needs_directory, check_model_head

from . import modeling


def _jax_device(device: Optional[str]):
    """ "cpu" / "gpu" / "cuda:1" / "tpu:0" -> a jax Device (None: jax's default)."""
    if device is None:
        return None
    kind, _, index = device.partition(":")
    kind = {"cuda": "gpu"}.get(kind.lower(), kind.lower())
    return jax.devices(kind)[int(index or 0)]


class PipelineModel:
    """``head`` loaded from a directory / hub id, or a ready ``bert_flax`` model, run under ``jax.jit``.

    Args:
        head: the class name, e.g. ``"BertForQuestionAnswering"``.
        model: a checkpoint directory, a hub id, or a ``bert_flax`` model of class ``head``.
        task: the pipeline's task (named in errors).
        bf16: load with ``dtype=param_dtype=bfloat16`` (outputs are still float32).
        device: a jax platform and index ("cpu", "gpu", "cuda:1"); default: jax's default device.
        compile: accepted for the same call on every backend and changes nothing: flax always runs under
            ``jax.jit`` (``bert_core.compiled.FLAX_NOTE``).
    """

    backend = "flax"
    # every new (rows, length) shape compiles once: a coarser length grid keeps the number of shapes small
    pad_to_multiple_of = 32

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
        if isinstance(model, (str, os.PathLike)):
            dtype = jnp.bfloat16 if bf16 else jnp.float32
            model = getattr(modeling, head).from_pretrained(model, dtype=dtype, param_dtype=dtype)
        elif bf16:
            raise PipelineError(bf16_needs_directory(self.backend))
        check_model_head(type(model).head_name, head, task)
        self.model = model
        self.config = model.config
        self.device = _jax_device(device)
        graphdef, state = nnx.split(model)
        self._state = jax.device_put(state, self.device) if self.device is not None else state

        @jax.jit
        def run(state, input_ids, attention_mask, token_type_ids):
            out = nnx.merge(graphdef, state)(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, deterministic=True
            )
            return {k: v.astype(jnp.float32) for k, v in out.items() if isinstance(v, jax.Array)}

        self._run = run

    def __call__(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``batch``: int64 arrays (rows, padded_len) -> every output field as a float32 array."""
        rows = batch["input_ids"].shape[0]
        # rows rounded up to a power of two: few shapes to compile, at most twice the rows (empty rows are masked)
        extra = (1 << (rows - 1).bit_length()) - rows
        args = [
            jnp.asarray(np.pad(batch[k], ((0, extra), (0, 0))), jnp.int32)
            for k in ("input_ids", "attention_mask", "token_type_ids")
        ]
        if self.device is not None:
            args = jax.device_put(args, self.device)
        return {k: np.asarray(v)[:rows] for k, v in self._run(self._state, *args).items()}
