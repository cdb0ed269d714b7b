"""A small, reusable training step: optax (e.g. AdamW) under ``nnx.jit``, dropout on."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import optax
from flax import nnx

from .modeling import BertPreTrainedModel, canonical_grads

__all__ = ["make_optimizer", "train_step", "canonical_grads"]


def make_optimizer(
    model: BertPreTrainedModel,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.01,
    tx: optax.GradientTransformation | None = None,
) -> nnx.Optimizer:
    """An ``nnx.Optimizer`` over the model's ``nnx.Param`` variables (AdamW unless ``tx`` is given)."""
    tx = optax.adamw(learning_rate, weight_decay=weight_decay) if tx is None else tx
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


@nnx.jit
def train_step(model: BertPreTrainedModel, optimizer: nnx.Optimizer, batch: Mapping[str, Any]) -> jax.Array:
    """One update on ``batch`` (forward keyword arguments, labels included); returns the float32 loss.

    Dropout is on (``deterministic=False``), drawing from the ``nnx.Rngs`` the model was built with; the model and
    optimizer are updated in place.
    """

    def loss_fn(m):
        return m(**batch, deterministic=False, return_dict=True).loss

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss
