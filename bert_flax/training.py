"""A small, reusable training step: optax (e.g. AdamW) under ``nnx.jit``, dropout on."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
import optax
from flax import nnx

from .modeling import BertPreTrainedModel, _check_inputs, _check_labels, canonical_grads

__all__ = ["make_optimizer", "train_step", "check_batch", "canonical_grads"]

_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "head_mask", "inputs_embeds")
_LABELS = ("labels", "next_sentence_label", "start_positions", "end_positions")


def check_batch(model: BertPreTrainedModel, batch: Mapping[str, Any]) -> None:
    """Every input and label check of ``model`` on a host (numpy) batch, with the values.

    Inside ``jit`` the arrays are tracers, so only shapes can be checked there; an out-of-range id or label would turn
    the loss (and then the weights) into NaN or read -1 as the last class. :func:`train_step` runs this first.
    """
    inputs = {k: batch.get(k) for k in _INPUTS}
    if inputs["input_ids"] is not None and np.ndim(inputs["input_ids"]) == 3:  # multiple choice: (b, c, s)
        inputs = {
            k: v if v is None or k == "head_mask" else np.reshape(v, (-1,) + np.shape(v)[2:]) for k, v in inputs.items()
        }
    _check_inputs(model.config, **inputs, encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None)
    given = [k for k in _LABELS if batch.get(k) is not None]
    reference = batch.get("input_ids") if batch.get("input_ids") is not None else batch.get("inputs_embeds")
    # the label checks need only the logits' leading dims, which the inputs give: (b, s) tokens, (b, c) choices
    leading = jax.ShapeDtypeStruct(tuple(np.shape(reference)[:2]), np.float32)
    for name in given:
        _check_labels(model.config, model.head_name, name, batch[name], leading)


def make_optimizer(
    model: BertPreTrainedModel,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.01,
    tx: optax.GradientTransformation | None = None,
) -> nnx.Optimizer:
    """An ``nnx.Optimizer`` over the model's ``nnx.Param`` variables (AdamW unless ``tx`` is given)."""
    tx = optax.adamw(learning_rate, weight_decay=weight_decay) if tx is None else tx
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def train_step(
    model: BertPreTrainedModel, optimizer: nnx.Optimizer, batch: Mapping[str, Any], *, check: bool = True
) -> jax.Array:
    """One update on ``batch`` (forward keyword arguments, labels included); returns the float32 loss.

    Dropout is on (``deterministic=False``), drawing from the ``nnx.Rngs`` the model was built with; the model and
    optimizer are updated in place. ``check``: run :func:`check_batch` on the host first (a bad id or label raises
    instead of silently turning the weights into NaN).
    """
    if check:
        check_batch(model, batch)
    return _train_step(model, optimizer, batch)


@nnx.jit
def _train_step(model: BertPreTrainedModel, optimizer: nnx.Optimizer, batch: Mapping[str, Any]) -> jax.Array:
    def loss_fn(m):
        return m(**batch, deterministic=False, return_dict=True).loss

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss
