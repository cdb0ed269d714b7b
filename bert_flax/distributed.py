"""Flax scale-out: ``--mesh data=D[,model=M]`` over ``jax.sharding`` devices, one or several processes.

- The mesh is a ``jax.sharding.Mesh`` with axes ``("data", "model")`` (``bert_core.training.distributed.MESH_AXES``)
  over the devices of every process, process-major, so each process owns whole rows of the ``data`` axis.
- The batch is one global array sharded on ``data`` (``NamedSharding(mesh, P("data"))``): the jitted step sees the
  whole global micro-batch and computes its mean loss itself, so no loss scales are needed and the result is the
  single-device one up to the order of the reductions. A micro-batch whose rows the ``data`` axis does not divide (an
  epoch's short last one) is replicated instead: the same math, on every device.
- Parameters follow ``bert_core.sharding.RULES`` (split on ``model`` or replicated); the optimizer's moments take the
  sharding of their parameter, and ``nnx.jit``'s ``in_shardings`` keep both where they are across steps.
- Several processes (``--num-processes P --process-id I --coordinator HOST:PORT``): :func:`setup` calls
  ``jax.distributed.initialize`` (gloo collectives on CPU) with short heartbeat timeouts, so a dead process makes the
  others fail within :data:`HEARTBEAT_TIMEOUT_S` instead of hanging; every process collates the same global
  micro-batch and ``jax.make_array_from_process_local_data`` takes the rows of its devices from it.
- Checkpoints: besides the canonical files (``model.safetensors``, the optimizer's ``optimizer.safetensors``, written by
  rank 0 from gathered arrays), each ``checkpoints/step-N/orbax/`` holds the sharded parameters and optimizer state
  (``orbax.checkpoint.StandardCheckpointer``, written by every process); resume restores it onto the current mesh,
  so another device count or mesh shape works.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from bert_core.checkpoint import save_pretrained
from bert_core.data import pad_to_bucket
from bert_core.sharding import backend_partition, check_divisible
from bert_core.training.args import TrainingArguments
from bert_core.training.distributed import MESH_AXES, World, parse_mesh
from bert_core.training.state import CHECKPOINTS_DIR, STEP_PREFIX, load_checkpoint, load_model_weights
from bert_core.weights import from_backend_array

from .modeling import BertPreTrainedModel
from .training import (
    _BUCKET,
    LoopBackend,
    _names,
    _param_specs,
    check_batch,
    eval_step_outputs,
    micro_update,
    repeat_mean,
    run_step,
)

__all__ = ["setup", "make_mesh", "param_shardings", "MeshBackend", "HEARTBEAT_TIMEOUT_S"]

#: seconds without a heartbeat after which the coordination service declares a process dead and stops the others
HEARTBEAT_TIMEOUT_S = 10
#: seconds every process waits for the others at start (``jax.distributed.initialize``) and at shutdown
INITIALIZATION_TIMEOUT_S = 120
SHUTDOWN_TIMEOUT_S = 10
#: the sharded state's directory inside ``checkpoints/step-N/``
ORBAX_DIR = "orbax"


def setup(args: TrainingArguments) -> None:
    """Prepare JAX for ``args.strategy == "mesh"``; call before anything touches a device (model creation included).

    ``--devices N`` on CPU makes N host devices (``jax_num_cpu_devices``; per process when several);
    ``--num-processes P`` (> 1) joins the job through ``jax.distributed.initialize`` at ``--coordinator``. Does
    nothing for another strategy, or once JAX is started (then :func:`make_mesh` checks the device count).
    """
    if args.strategy != "mesh":
        return
    if args.devices is not None:
        try:
            jax.config.update("jax_num_cpu_devices", int(args.devices))
        except RuntimeError:  # the backend is already up: make_mesh reports a count that does not fit
            pass
    if args.num_processes > 1 and not jax.distributed.is_initialized():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            initialization_timeout=INITIALIZATION_TIMEOUT_S,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
            shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S,
        )


def make_mesh(mesh: str, devices: Optional[int] = None) -> Mesh:
    """The ``("data", "model")`` mesh of ``--mesh`` over the first ``data * model`` devices (all of them when several
    processes: each gives its devices, process-major, and the ``model`` axis stays inside a process).

    Raises:
        ValueError: naming ``--mesh``, the devices it needs and the devices there are.
    """
    sizes = parse_mesh(mesh)
    need = sizes["data"] * sizes["model"]
    every = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    available = every if jax.process_count() > 1 or devices is None else every[: int(devices)]
    hint = "set --devices N (CPU: N host devices) or change --mesh"
    if jax.process_count() > 1:
        local = jax.local_device_count()
        if need != len(every) or local % sizes["model"]:
            raise ValueError(
                f"--mesh {mesh} needs data*model = {need} devices over {jax.process_count()} processes with model "
                f"dividing each process's {local} devices; the processes have {len(every)} in all: {hint}"
            )
    elif need > len(available):
        raise ValueError(f"--mesh {mesh} needs data*model = {need} devices; {len(available)} are visible: {hint}")
    return Mesh(np.asarray(available[:need], dtype=object).reshape(sizes["data"], sizes["model"]), MESH_AXES)


def param_shardings(model: BertPreTrainedModel, mesh: Mesh) -> Dict[Tuple[str, ...], NamedSharding]:
    """Each ``nnx.Param`` path -> its ``NamedSharding``: the rule of ``bert_core.sharding`` for its canonical name, in
    the flax layout (kernels are ``(in, out)``).

    Raises:
        ValueError: the mesh's ``model`` axis does not divide a dimension it splits (from ``check_divisible``).
    """
    specs = _param_specs(model)
    check_divisible(list(specs.values()), dict(mesh.shape))
    return {path: NamedSharding(mesh, P(*backend_partition(spec, "flax"))) for path, spec in specs.items()}


def _flat(node: Any) -> Dict[str, nnx.Variable]:
    """Every variable of an nnx graph node by its dotted path."""
    return {".".join(_names(path)): var for path, var in nnx.to_flat_state(nnx.state(node))}


def _place(value: Any, sharding: NamedSharding) -> jax.Array:
    """``value`` as a global array with ``sharding`` (every process holds the same full ``value``)."""
    if isinstance(value, jax.Array) and value.sharding == sharding:
        return value
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):  # dropout keys
        data = _place(jax.random.key_data(value), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(value))
    host = np.asarray(value) if not isinstance(value, jax.Array) or value.is_fully_addressable else None
    if host is None:  # spread over processes already: move it on the devices
        return jax.jit(lambda x: x, out_shardings=sharding)(value)
    return jax.make_array_from_process_local_data(sharding, host, host.shape)


class MeshBackend(LoopBackend):
    """:class:`bert_flax.training.LoopBackend` over a device mesh (see the module docstring).

    Args:
        model, args, total_steps: as for ``LoopBackend``; the model's parameters are moved onto ``mesh``.
        mesh: from :func:`make_mesh`.

    Attributes the loop reads: ``world`` (this process among ``jax.process_count()``), ``data_parallel_size`` (the
    ``data`` axis: the global micro-batch is ``per_device_train_batch_size`` times it) and ``global_batches`` (the loop
    hands every process whole global micro-batches; the jitted step takes the global mean itself).
    """

    global_batches = True

    @staticmethod
    def placement(mesh: Mesh) -> SimpleNamespace:
        """What the loop reads before the backend exists: ``world``, ``data_parallel_size``, ``global_batches``."""
        world = World(jax.process_index(), jax.process_count())
        return SimpleNamespace(world=world, data_parallel_size=int(mesh.shape["data"]), global_batches=True)

    def __init__(self, model: BertPreTrainedModel, args: TrainingArguments, total_steps: int, mesh: Mesh) -> None:
        self.mesh = mesh
        placement = self.placement(mesh)
        self.world, self.data_parallel_size = placement.world, placement.data_parallel_size
        self._replicated = NamedSharding(mesh, P())
        by_path = param_shardings(model, mesh)
        self._param_shardings = {".".join(path): sharding for path, sharding in by_path.items()}
        self._place_variables(model)  # before the optimizer exists: its moments are created like the parameters
        super().__init__(model, args, total_steps)
        self._place_variables(self.model)  # the reseeded dropout keys
        self._place_variables(self.optimizer)
        model_sh, optimizer_sh = self._shardings(self.model), self._shardings(self.optimizer)
        self._written_step: Optional[int] = None
        self._steps: Dict[bool, Tuple[Callable, Callable]] = {}
        for sharded in (True, False):
            batch_sh = NamedSharding(mesh, P("data")) if sharded else self._replicated
            self._steps[sharded] = (
                nnx.jit(micro_update, in_shardings=(model_sh, optimizer_sh, batch_sh), out_shardings=self._replicated),
                nnx.jit(repeat_mean, in_shardings=(model_sh, optimizer_sh)),
            )
        self._forwards = {
            sharded: nnx.jit(
                eval_step_outputs,
                in_shardings=(model_sh, NamedSharding(mesh, P("data")) if sharded else self._replicated),
                out_shardings=self._replicated,
            )
            for sharded in (True, False)
        }

    # placement

    def _sharding_of(self, name: str) -> NamedSharding:
        """A variable's sharding by its dotted path: a parameter's own, an optimizer moment its parameter's (the
        parameter's path ends the moment's), anything else (counters, RNG keys) replicated."""
        parts = name.split(".")
        for start in range(len(parts)):
            found = self._param_shardings.get(".".join(parts[start:]))
            if found is not None:
                return found
        return self._replicated

    def _place_variables(self, node: Any) -> None:
        for name, var in _flat(node).items():
            var.set_value(_place(var.get_value(), self._sharding_of(name)))

    def _shardings(self, node: Any) -> nnx.StateSharding:
        """``nnx.jit``'s ``in_shardings`` for ``node``: each variable's current sharding (which the jitted step's
        updates then keep)."""
        is_variable = lambda x: isinstance(x, nnx.Variable)  # noqa: E731
        return nnx.StateSharding(jax.tree.map(lambda v: v.get_value().sharding, nnx.state(node), is_leaf=is_variable))

    def _global(self, batch: Mapping[str, np.ndarray]) -> Tuple[Dict[str, jax.Array], bool]:
        """A host batch (the same on every process) as global arrays: rows sharded on ``data`` when it divides them,
        else replicated. Returns ``(arrays, sharded)``."""
        rows = len(np.asarray(batch["input_ids"]))
        sharded = rows % self.data_parallel_size == 0
        sharding = NamedSharding(self.mesh, P("data")) if sharded else self._replicated
        arrays = {k: _place(np.asarray(v), sharding) for k, v in batch.items() if v is not None}
        return arrays, sharded

    def _host(self, array: jax.Array) -> np.ndarray:
        if isinstance(array, jax.Array) and not array.is_fully_addressable:
            array = _place(array, self._replicated)
            return np.asarray(array.addressable_data(0))
        return np.asarray(array)

    # steps

    def train_step(self, micro_batches: Sequence[Mapping[str, np.ndarray]]) -> Tuple[float, float]:
        """One optimizer step over the step's *global* micro-batches (the same on every process)."""
        placed = []
        for batch in micro_batches:
            padded = pad_to_bucket(batch, _BUCKET)[0]
            check_batch(self.model, padded)
            placed.append(self._global(padded))
        # one program pair per placement; a step mixing both (a short last micro-batch) uses the replicated one
        sharded = all(s for _, s in placed)
        micro_step, repeat = self._steps[sharded]
        arrays = [a if sharded else {k: _place(v, self._replicated) for k, v in a.items()} for a, _ in placed]
        loss, grad_norm = run_step(self.model, self.optimizer, arrays, micro_step, repeat)
        return float(self._host(loss)), float(self._host(grad_norm))

    def eval_step(self, batch: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``LoopBackend.eval_step`` on the mesh (the batch the same on every process; outputs replicated)."""
        padded, length = pad_to_bucket(batch, _BUCKET)
        check_batch(self.model, padded)
        arrays, sharded = self._global(padded)
        outputs = {k: self._host(v).astype(np.float32) for k, v in self._forwards[sharded](self.model, arrays).items()}
        seq = np.shape(padded["input_ids"])[-1]
        if seq == length:
            return outputs
        return {k: v[:, :length] if np.ndim(v) >= 2 and np.shape(v)[1] == seq else v for k, v in outputs.items()}

    def load_optimizer_state(self, state: Mapping[str, np.ndarray]) -> None:
        super().load_optimizer_state(state)
        self._place_variables(self.optimizer)

    def load_rng_state(self, state: Mapping[str, np.ndarray]) -> None:
        super().load_rng_state(state)
        self._place_variables(self.model)

    def barrier(self) -> None:
        """Wait for every process (a no-op with one)."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("bert_flax barrier")

    # checkpoints

    def canonical_weights(self) -> Dict[str, np.ndarray]:
        """The model's weights by canonical name and layout, gathered to every process (a collective)."""
        out = {}
        for path, spec in self._specs.items():
            var = _flat(self.model)[".".join(path)]
            out[spec.name] = from_backend_array(self._host(var.get_value()).astype(np.float32), spec, "flax")
        return out

    def _state_nodes(self) -> Dict[str, Dict[str, nnx.Variable]]:
        """What orbax saves: the parameters and the whole optimizer state, by dotted path (the RNG streams are in
        the canonical checkpoint's ``rng.safetensors``)."""
        params = {".".join(_names(p)): v for p, v in nnx.to_flat_state(nnx.state(self.model, nnx.Param))}
        return {"params": params, "optimizer": _flat(self.optimizer)}

    def _sharded_state(self) -> Dict[str, Dict[str, jax.Array]]:
        return {group: {k: v.get_value() for k, v in nodes.items()} for group, nodes in self._state_nodes().items()}

    def checkpoint_writer(self, tokenizer: Any, output_dir: Path, step: int) -> Callable[[Path], None]:
        """Called on every process: gathers the canonical weights and saves the sharded state with orbax (collective)
        into a hidden directory beside the checkpoints; returns rank 0's writer, which puts ``config.json`` +
        ``model.safetensors`` (+ tokenizer) into the given directory and moves the orbax state into it as
        ``orbax/`` when that directory is a checkpoint (the final model gets only the canonical files)."""
        import orbax.checkpoint as ocp

        weights = self.canonical_weights()
        staged = Path(output_dir).absolute() / CHECKPOINTS_DIR / f".{STEP_PREFIX}{int(step)}.orbax"
        # the loop asks again for the same step only for the final model, which gets no orbax state (the same call
        # order on every process, so all of them skip the collective save together)
        sharded = step != self._written_step
        self._written_step = step
        if sharded:
            if self.world.is_main and staged.exists():
                shutil.rmtree(staged)
            self.barrier()
            with ocp.StandardCheckpointer() as checkpointer:
                checkpointer.save(staged, self._sharded_state())
                checkpointer.wait_until_finished()
        model = self.model

        def write(directory: Path) -> None:
            save_pretrained(directory, model.config, weights, architecture=model.head_name)
            if tokenizer is not None:
                tokenizer.save_pretrained(directory)
            if sharded and Path(directory).absolute().parent == staged.parent:  # a checkpoint's staging directory
                shutil.move(os.fspath(staged), os.fspath(Path(directory) / ORBAX_DIR))
            elif sharded:
                shutil.rmtree(staged, ignore_errors=True)

        return write

    def restore_checkpoint(self, directory: Path) -> None:
        """Every process: the sharded state of ``directory/orbax`` onto this mesh (any device count), or, for a
        checkpoint without one (another backend's, a single device's), its canonical weights and optimizer state."""
        import orbax.checkpoint as ocp

        sharded = Path(directory).absolute() / ORBAX_DIR
        if not sharded.is_dir():
            load_model_weights(directory, self.model)
            self.load_optimizer_state(load_checkpoint(directory)[0])
            self._place_variables(self.model)
            return
        current = self._sharded_state()
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), current)
        with ocp.StandardCheckpointer() as checkpointer:
            restored = checkpointer.restore(sharded, target)
        for group, nodes in self._state_nodes().items():
            for name, var in nodes.items():
                var.set_value(restored[group][name])
