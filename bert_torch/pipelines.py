"""The PyTorch part of ``bert_core.pipelines``: load a head, run a numpy batch, return float32 numpy outputs."""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

from bert_core.pipelines.base import check_model_head

from . import modeling
from .inference import compile_for_inference


class PipelineModel:
    """``head`` loaded from a directory / hub id, or a ready ``bert_torch`` model, in eval mode.

    Args:
        head: the class name, e.g. ``"BertForQuestionAnswering"``.
        model: a checkpoint directory, a hub id, or a ``bert_torch`` model of class ``head``.
        task: the pipeline's task (named in errors).
        bf16: run in bfloat16 (outputs are still float32).
        device: a torch device ("cpu", "cuda", "cuda:1"); default: where the model is (cpu when loaded here).
        compile: ``compile_for_inference`` the model (in place: a ready model object comes back compiled).
    """

    backend = "torch"
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
        if isinstance(model, (str, os.PathLike)):
            model = getattr(modeling, head).from_pretrained(model)
        check_model_head(type(model).head_name, head, task)
        if device is not None:
            model = model.to(torch.device(device))
        if bf16:
            model = model.to(torch.bfloat16)
        self.model = compile_for_inference(model) if compile else model.eval()
        self.config = model.config
        self.device = next(model.parameters()).device

    def __call__(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``batch``: int64 arrays (rows, padded_len) -> every output field as a float32 array."""
        inputs = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            out = self.model(**inputs, return_dict=True)
        return {k: v.float().cpu().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
