"""PyTorch scale-out: ``bert train --backend torch --strategy ddp|fsdp`` launched by ``torchrun``.

The data-parallel rule is the one of :mod:`bert_core.training.distributed`: every worker collates the global
micro-batch, keeps its rows and scales each loss term by ``W * n_r / N`` before the gradient mean, so W workers train
the model one process trains with the global batch. This file maps it onto torch:

- the process group comes from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``): NCCL on GPUs (one per local rank), gloo on CPUs, with a collective timeout
  (:data:`TIMEOUT_ENV`, default :data:`DEFAULT_TIMEOUT_S` seconds) so a lost worker ends the job instead of hanging it;
- ``ddp``: ``DistributedDataParallel`` over the whole head (gradients all-reduced, mean over workers);
- ``fsdp``: FSDP2 ``fully_shard`` on each ``BertLayer`` then on the head (parameters, gradients and AdamW moments
  sharded over a 1-D mesh; ``--bf16`` adds a ``MixedPrecisionPolicy`` that gathers bfloat16 weights and reduces
  float32 gradients); the optimizer is built after sharding, over the sharded parameters;
- the logged loss is the global one (all-reduced); clipping uses the global gradient norm (DDP: the gradients are
  equal on every worker after the all-reduce; FSDP: ``clip_grad_norm_`` over DTensors reduces the shards' norms);
- checkpoints: every worker writes its shards of the model and AdamW moments with ``torch.distributed.checkpoint``
  (DCP, as safetensors whose headers hold the offsets: no pickle) into a hidden directory of ``OUTPUT_DIR/checkpoints/``; rank 0 moves it into the all-or-nothing checkpoint stage
  as ``dcp/``, next to the canonical ``model.safetensors`` + ``optimizer.safetensors`` (gathered, written once), so a
  checkpoint loads anywhere (any backend, one process) and resumes sharded on any number of workers (DCP reshards).
  A checkpoint without ``dcp/`` (one process wrote it) resumes from the canonical files.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import OrderedDict
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from bert_core.checkpoint import read_state_dict
from bert_core.checkpoint import save_pretrained as save_canonical
from bert_core.training.args import TrainingArguments
from bert_core.training.distributed import LOSS_TERMS, World, check_world, timeout_from_env
from bert_core.training.state import (
    CHECKPOINTS_DIR,
    MOMENTS,
    STEP_PREFIX,
    TRAINER_STATE_NAME,
    TrainerState,
    load_checkpoint,
)
from bert_core.weights import normalize_state_dict

from .modeling import BertPreTrainedModel, _cross_entropy
from .training import LoopBackend, _to_device, _trainable

#: Seconds a collective may wait for the other workers before the job fails (a lost worker, a hung host).
TIMEOUT_ENV = "BERT_TORCH_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
#: The sharded (DCP) model + optimizer state inside a checkpoint directory.
DCP_DIR = "dcp"
#: torchrun's environment: what ``init_process_group`` reads.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: Label fields of a batch (what a worker with no rows leaves out of its placeholder forward).
_LABEL_FIELDS = LOSS_TERMS + ("end_positions",)


def collective_timeout() -> float:
    """Seconds from :data:`TIMEOUT_ENV` (default :data:`DEFAULT_TIMEOUT_S`).

    Raises:
        ValueError: the variable is not a positive number.
    """
    return timeout_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)


def init_distributed(strategy: str) -> Tuple[World, torch.device]:
    """Join the process group torchrun set up (once per process; later calls reuse it).

    NCCL with ``cuda:LOCAL_RANK`` when CUDA is available, else gloo on the CPU.

    Returns:
        ``(world, device)``: this worker's ``World(rank, size)`` and the device its model runs on.

    Raises:
        ValueError: not launched by torchrun (names the missing variables and the launch command).
    """
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise ValueError(
            f"--strategy {strategy} runs under torchrun, which sets {', '.join(TORCHRUN_ENV)}; missing "
            f"{', '.join(missing)}. Launch with: torchrun --nproc_per_node N -m bert_core.cli train ... "
            f"--backend torch --strategy {strategy}"
        )
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(seconds=collective_timeout()),
            device_id=device if device.type == "cuda" else None,
        )
    return check_world(dist.get_rank(), dist.get_world_size()), device


def _is_dtensor(tensor: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def _rows(batch: Mapping[str, Any]) -> int:
    return next(len(v) for v in batch.values() if np.ndim(v) > 0)


def _placeholder(batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """One row of padding with no labels: what a worker given no rows (a short last batch) runs so that it still
    takes part in the gradient reduction (with loss scale 0)."""
    return {
        name: np.zeros((1,) + np.shape(value)[1:], np.asarray(value).dtype)
        for name, value in batch.items()
        if name not in _LABEL_FIELDS
    }


def _anchor(output: Mapping[str, Any]) -> torch.Tensor:
    """0 connected to every output: a term with no labelled unit on this worker contributes 0 (not the NaN of an
    empty mean) while every parameter still gets a (zero) gradient, as DDP's reducer needs."""
    values = [v.float().sum() for v in output.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return torch.stack(values).sum() * 0.0


class DistributedBackend(LoopBackend):
    """The torch loop backend over ``world.size`` data-parallel workers (``strategy`` "ddp" or "fsdp").

    Args:
        model: the head (moved to ``device``; under FSDP sharded in place).
        args: the run's ``TrainingArguments`` (``args.strategy`` picks DDP or FSDP).
        total_steps: optimizer steps of the whole run.
        world: this worker's place (:func:`init_distributed`).
        device: the device this worker computes on.
    """

    def __init__(
        self,
        model: BertPreTrainedModel,
        args: TrainingArguments,
        total_steps: int,
        world: World,
        device: torch.device,
    ) -> None:
        if args.strategy not in ("ddp", "fsdp"):
            raise ValueError(f"training argument strategy={args.strategy!r} is invalid here; expected ddp or fsdp")
        self.world, self.device, self.strategy = world, device, args.strategy
        model.to(device)
        if self.strategy == "fsdp":
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            mesh = init_device_mesh(device.type, (world.size,))
            policy = (
                MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
                if args.bf16
                else MixedPrecisionPolicy()
            )
            for layer in model._backbone().encoder.layer:
                fully_shard(layer, mesh=mesh, mp_policy=policy)
            fully_shard(model, mesh=mesh, mp_policy=policy)
        # the optimizer (built by LoopBackend) holds the parameters as they are now: FSDP's shards
        super().__init__(model, args, total_steps)
        if self.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            self.wrapped: nn.Module = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        else:
            self.wrapped = model

    # steps

    def barrier(self) -> None:
        """Wait for every worker (the loop calls it after rank 0 writes)."""
        dist.barrier()

    def _sync_gradients(self, sync: bool):
        """Accumulating micro-batches reduce gradients once, after the last one."""
        if self.strategy == "ddp":
            return nullcontext() if sync else self.wrapped.no_sync()
        self.wrapped.set_requires_gradient_sync(sync)
        return nullcontext()

    def _local_loss(self, batch: Mapping[str, np.ndarray], scales: Optional[Mapping[str, float]]) -> torch.Tensor:
        """This worker's loss on its rows, each term times its scale (``scales`` None: one worker, the head's loss)."""
        if scales is not None and _rows(batch) == 0:
            output = self.wrapped(**_to_device(_placeholder(batch), self.device), return_dict=True)
            return _anchor(output)
        inputs = _to_device(batch, self.device)
        output = self.wrapped(**inputs, return_dict=True)
        if output.loss is None:
            raise ValueError(f"{self.model.head_name} returned no loss: the training batch has no labels")
        if scales is None:
            return output.loss.float()
        if set(scales) == {"labels", "next_sentence_label"}:
            # pre-training: masked LM and next sentence are means over different units, each with its own scale
            terms = {
                "labels": _cross_entropy(output.prediction_logits, inputs["labels"]),
                "next_sentence_label": _cross_entropy(output.seq_relationship_logits, inputs["next_sentence_label"]),
            }
        elif len(scales) == 1:
            terms = {next(iter(scales)): output.loss.float()}
        else:
            raise ValueError(f"{self.model.head_name}: cannot split its loss over the label fields {sorted(scales)}")
        loss = _anchor(output)
        for name, term in terms.items():
            if scales[name] != 0:  # 0: no labelled unit here, the empty mean is NaN
                loss = loss + term * scales[name]
        return loss

    def train_step(
        self,
        micro_batches: Sequence[Mapping[str, np.ndarray]],
        loss_scales: Optional[Sequence[Mapping[str, float]]] = None,
    ) -> Tuple[float, float]:
        """One optimizer step over this worker's rows of ``K`` global micro-batches.

        Args:
            micro_batches: this worker's rows of each micro-batch (collated numpy; may be empty on a short batch).
            loss_scales: per micro-batch ``{label field: W * n_r / N}`` (``bert_core.training.distributed``); None
                for a world of one worker.

        Returns:
            ``(loss, grad_norm)``: the global step loss (mean over the K micro-batches of the global batch's loss,
            all-reduced) and the global gradient norm before clipping.
        """
        k = len(micro_batches)
        if not 1 <= k <= self.args.gradient_accumulation_steps:
            raise ValueError(
                f"train_step got {k} micro-batches; expected 1 to gradient_accumulation_steps="
                f"{self.args.gradient_accumulation_steps}"
            )
        if loss_scales is not None and len(loss_scales) != k:
            raise ValueError(f"train_step got {k} micro-batches and {len(loss_scales)} loss scales; expected one each")
        self.model.train()
        total = torch.zeros((), dtype=torch.float32, device=self.device)
        for index, batch in enumerate(micro_batches):
            with self._sync_gradients(index == k - 1):
                with self._autocast():
                    loss = self._local_loss(batch, None if loss_scales is None else loss_scales[index]) / k
                loss.backward()
            total += loss.detach()
        dist.all_reduce(total)  # the scaled local losses sum to W times the global loss
        grad_norm = self._optimizer_step()
        return float(total) / self.world.size, grad_norm

    def _optimizer_step(self) -> float:
        max_norm = float(self.optimizer.param_groups[0].get("max_grad_norm", 0.0))
        norm = torch.nn.utils.clip_grad_norm_(_trainable(self.model), max_norm if max_norm > 0 else float("inf"))
        if _is_dtensor(norm):
            norm = norm.full_tensor()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def eval_step(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """As one process (every worker evaluates every batch); under FSDP a collective forward, resharded after."""
        try:
            return super().eval_step(batch)
        finally:
            if self.strategy == "fsdp":
                self.model.reshard()  # the root keeps gathered weights after a forward that has no backward

    # layout: FSDP parameters and moments are DTensors sharded over the mesh

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.full_tensor() if _is_dtensor(tensor) else tensor

    def _place(self, param: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        if not _is_dtensor(param):
            return tensor
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(tensor.to(param.device_mesh.device_type), param.device_mesh, param.placements)

    def canonical_weights(self) -> "OrderedDict[str, np.ndarray]":
        """The model's canonical weights, whole on every worker (FSDP gathers them: call on every worker)."""
        return OrderedDict(
            (name, self._gather(self.model._tensor(name).detach()).to("cpu", torch.float32).numpy().copy())
            for name in self._table
        )

    def load_canonical_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set the model from canonical weights (every worker passes the same arrays; FSDP keeps its shards)."""
        from bert_core.weights import check_weights_match

        check_weights_match(self._table, weights, self.model.head_name)
        with torch.no_grad():
            for name in self._table:
                target = self.model._tensor(name)
                value = torch.as_tensor(np.asarray(weights[name]), dtype=target.dtype).to(target.device)
                target.copy_(self._place(target, value))

    # checkpoints

    def _sharded_state(self, step: int) -> Dict[str, torch.Tensor]:
        """Model weights and AdamW moments as this worker holds them (FSDP: its DTensor shards; DDP: whole tensors),
        keyed ``model/<canonical name>`` and ``<moment>/<canonical name>``: the tensors DCP saves and loads in place.
        A parameter without optimizer state yet gets zero moments at update ``step``."""
        tensors: Dict[str, torch.Tensor] = OrderedDict()
        for name, param in self._params.items():
            tensors[f"model/{name}"] = param
        for name, param in self._params.items():
            state = self.optimizer.state[param]
            for moment in MOMENTS:
                if moment not in state:
                    state[moment] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["step"] = torch.tensor(float(step), dtype=torch.float32)
            for moment in MOMENTS:
                tensors[f"{moment}/{name}"] = state[moment]
        return tensors

    def checkpoint_writer(self, tokenizer: Any, output_dir: Path, step: int) -> Callable[[Path], None]:
        """Called on every worker: gathers the canonical weights and writes this worker's shards of the model and
        optimizer with DCP into ``OUTPUT_DIR/checkpoints/.step-N.dcp``. Returns rank 0's writer: canonical
        ``config.json`` + ``model.safetensors`` (+ tokenizer) into the directory it is given and, for a checkpoint
        stage, the DCP directory moved in as ``dcp/`` (for the final model it is dropped: that one is not resumed).

        DCP writes safetensors shards whose headers carry the offsets (``HuggingFaceStorageWriter``), not its default
        pickled ``.metadata``: nothing pickled is ever loaded."""
        import torch.distributed.checkpoint as dcp

        weights = self.canonical_weights()
        shards = Path(output_dir) / CHECKPOINTS_DIR / f".{STEP_PREFIX}{int(step)}.dcp"
        if self.world.is_main and shards.exists():
            shutil.rmtree(shards)
        self.barrier()
        with torch.no_grad():
            dcp.save(
                self._sharded_state(step),
                storage_writer=dcp.HuggingFaceStorageWriter(os.fspath(shards), save_distributed=True),
            )
        config, head = self.model.config, self.model.head_name

        def write(directory: Path) -> None:
            directory = Path(directory)
            save_canonical(directory, config, weights, architecture=head)
            if tokenizer is not None:
                tokenizer.save_pretrained(directory)
            if directory.resolve() == Path(output_dir).resolve():
                shutil.rmtree(shards, ignore_errors=True)
            else:
                os.replace(shards, directory / DCP_DIR)

        return write

    def restore_checkpoint(self, directory: Path) -> None:
        """Resume the model and optimizer from a checkpoint: its ``dcp/`` shards loaded in place into this world's
        layout (DCP reshards a checkpoint written by another number of workers), else the canonical files (one
        process wrote it). Every worker calls it."""
        import torch.distributed.checkpoint as dcp

        directory = Path(directory)
        shards = directory / DCP_DIR
        if shards.is_dir():
            state = json.loads((directory / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
            step = TrainerState.from_dict(state, os.fspath(directory / TRAINER_STATE_NAME)).global_step
            with torch.no_grad():
                dcp.load(self._sharded_state(step), storage_reader=dcp.HuggingFaceStorageReader(os.fspath(shards)))
            self._set_schedule_position(step)
        else:
            weights, _ = read_state_dict(directory)
            self.load_canonical_weights(normalize_state_dict(weights, self.model.head_name))
            self.load_optimizer_state(load_checkpoint(directory)[0])
