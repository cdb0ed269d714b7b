"""Compiled inference for ``bert_torch`` models: ``torch.compile`` with inductor, weights frozen into the graph.

Opt-in: eager stays the default everywhere (pipelines, ``bert serve``). Measured in ``benchmarks`` (workloads (a) and
(b), variants ``ours_compiled_fp32`` / ``ours_compiled_bf16``).
"""

from __future__ import annotations

from typing import Optional

import torch

from bert_core import compiled as checks

from .modeling import ALL_MODEL_CLASSES, BertPreTrainedModel

#: torch.compile modes accepted (``torch._inductor.list_mode_options``); None is "default"
MODES = (None, "default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")


def compile_for_inference(
    model: BertPreTrainedModel,
    *,
    mode: Optional[str] = None,
    freezing: bool = True,
    dynamic: Optional[bool] = None,
) -> BertPreTrainedModel:
    """Compile ``model``'s forward in place with ``torch.compile(backend="inductor")`` and return the same model.

    The model is put in eval mode; it keeps its class, methods and call signature and returns the same output
    dataclasses (float32 or bfloat16, as its weights). The first call of each new input shape compiles (seconds);
    later calls reuse the graph.

    Args:
        model: a ``bert_torch`` model (BertModel or a head), float32 or bfloat16, on any device.
        mode: a ``torch.compile`` mode (``"max-autotune"`` ...); None is the default mode.
        freezing: inline the weights as constants (inductor's ``freezing``), which lets inductor fold them and
            pre-pack the linear weights (MKL / oneDNN on CPU). ``torch._inductor.config.freezing`` is set to this
            value during each call of this model only and restored after it (nothing else in the global config is
            changed). It takes effect in calls made without autograd (``torch.inference_mode()`` /
            ``torch.no_grad()``); the parameters are then guarded by identity, so each compiled model gets its own
            graph, and weights changed in place after the first call may not be seen: compile a fresh model after
            loading new weights.
        dynamic: ``torch.compile``'s ``dynamic``: None (default) compiles the first shape statically and, on the
            first call with another shape, once more with symbolic batch and length, which then serves every shape;
            True starts symbolic; False recompiles for every new shape (up to dynamo's cache limit, then eager).

    Returns:
        ``model`` itself, compiled.

    Raises:
        TypeError / ValueError (wording shared with ``bert_tf.compile_for_inference``, in ``bert_core.compiled``)
        for a non-model or an argument of the wrong type or value.

    Calls that pass labels run the eager forward (their values are checked host-side, which a graph cannot do);
    token ids are range-checked eagerly before every compiled call, with the same errors as eager.
    """
    checks.check_model(model, ALL_MODEL_CLASSES, "bert_torch")
    checks.check_choice("mode", mode, MODES)
    checks.check_flag("freezing", freezing)
    checks.check_optional_flag("dynamic", dynamic)
    model.eval()
    compiled = torch.compile(model._call_impl, backend="inductor", mode=mode, dynamic=dynamic)

    def call(*args, **kwargs):
        # Dynamo (which decides whether parameters become constants) and inductor read the global
        # ``torch._inductor.config.freezing`` while they compile, i.e. inside a call, and torch.compile's
        # ``options`` reach inductor only: so the flag is set around each call and restored after it.
        with torch._inductor.config.patch(freezing=freezing):
            return compiled(*args, **kwargs)

    # What ``nn.Module.compile`` sets; ``nn.Module.__call__`` then runs it in place of the eager forward.
    model._compiled_call_impl = call
    return model
