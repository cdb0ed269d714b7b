"""Scale-out on TensorFlow: ``tf.distribute`` strategies for ``bert train --backend tf --strategy ...``.

- ``mirrored``: ``tf.distribute.MirroredStrategy`` in one process over ``--devices N`` devices (the first N GPUs, or
  N logical CPU devices made with ``tf.config.set_logical_device_configuration``, which must run before TensorFlow
  initialises its devices: :func:`setup_distributed` does it before the model is loaded);
- ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the processes ``TF_CONFIG`` names (one
  replica each), with collective timeouts so that a dead worker stops the others instead of hanging them.

Both keep Keras ``fit`` (``bert_tf.training.Trainer``) and follow the rule of ``bert_core.training.distributed``:
the data order is one process' with the global micro-batch ``G = per_device_train_batch_size * replicas``; every
input pipeline collates the whole global micro-batch and keeps the rows of its replicas (:func:`replica_batches`);
each replica's loss term is multiplied by ``n_r / N`` (its labelled units over the global micro-batch's), so the
gradient SUM over replicas that ``tf.distribute`` takes is the gradient of the global mean — for token-level labels
(NER, MLM) with uneven counts per replica too. Keras' own ``1 / replicas`` loss scaling would weight a replica's mean
by its share of *rows*, which is wrong there.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bert_core.training.distributed import (
    IGNORE_INDEX,
    World,
    check_world,
    loss_scales,
    split_rows,
    timeout_from_env,
)

#: The field of a collated batch that carries replica loss weights ``n_r / N`` per loss term (float32 (B_r,), the
#: same value on every row): ``{"loss_weight/<term>": ...}`` travels as Keras' ``sample_weight``.
WEIGHT_PREFIX = "loss_weight/"
#: Seconds a collective op waits for a peer before failing (multi-worker: a killed worker ends the job instead of
#: hanging it); the environment variable overrides it.
COLLECTIVE_TIMEOUT_S = 60.0
TIMEOUT_ENV = "BERT_TF_COLLECTIVE_TIMEOUT_S"

_STRATEGY: Dict[str, Any] = {}


def _tf():
    import tensorflow as tf

    return tf


# ------------------------------------------------------------------------------------------------ devices, strategy


def configure_devices(count: int) -> List[str]:
    """``count`` devices for a mirrored run: the first ``count`` GPUs when there are enough, else ``count`` logical
    CPU devices carved out of the CPU (only possible before TensorFlow initialises its devices).

    Returns:
        the device names (``/gpu:i`` or ``/cpu:i``).

    Raises:
        ValueError: fewer GPUs than ``count`` on a GPU machine, or TensorFlow already initialised with fewer
            logical CPUs (naming ``--devices``).
    """
    tf = _tf()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < count:
            raise ValueError(f"--devices {count} is invalid; this machine has {len(gpus)} GPUs")
        return [f"/gpu:{i}" for i in range(count)]
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if count > 1 and (current is None or len(current) != count):
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:
            have = len(tf.config.list_logical_devices("CPU"))
            if have < count:
                raise ValueError(
                    f"--devices {count} is invalid here: TensorFlow already initialised {have} CPU device(s); "
                    "logical devices must be configured before the first TensorFlow op (bert_tf.distributed."
                    "setup_distributed first)"
                ) from None
    return [f"/cpu:{i}" for i in range(count)]


def cluster_world(tf_config: Optional[str] = None) -> World:
    """This process' ``World`` from ``TF_CONFIG`` (``task.index`` among the ``cluster.worker`` list, the chief
    counted first when the cluster has one).

    Raises:
        ValueError: ``TF_CONFIG`` missing or not the JSON ``MultiWorkerMirroredStrategy`` needs.
    """
    text = os.environ.get("TF_CONFIG") if tf_config is None else tf_config
    expected = 'JSON like {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
    try:
        config = json.loads(text or "")
        cluster, task = config["cluster"], config["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"--strategy multi-worker needs TF_CONFIG={text!r} to be {expected}") from None
    if kind not in ("chief", "worker") or not workers + chiefs:
        raise ValueError(f"--strategy multi-worker: TF_CONFIG task type {kind!r} is invalid; expected {expected}")
    rank = index if kind == "chief" else len(chiefs) + index
    return check_world(rank, len(chiefs) + len(workers))


def collective_timeout() -> float:
    """:data:`COLLECTIVE_TIMEOUT_S`, or ``$BERT_TF_COLLECTIVE_TIMEOUT_S`` (seconds > 0)."""
    return timeout_from_env(TIMEOUT_ENV, COLLECTIVE_TIMEOUT_S)


def strategy_for(args: Any) -> Any:
    """The ``tf.distribute.Strategy`` of ``args.strategy`` (created once per process: a multi-worker strategy
    must be the first thing TensorFlow does), or None for "none"."""
    name = args.strategy
    if name in (None, "none"):
        return None
    if args.gradient_accumulation_steps != 1:
        # AdamW's accumulate-or-update tf.cond would hold the gradient all-reduce, and tf.distribute refuses
        # synchronisation inside control flow (merge_call in a cond branch)
        raise ValueError(
            f"training argument gradient_accumulation_steps={args.gradient_accumulation_steps} is not supported with "
            f"strategy {name} on backend tf; expected 1 (raise --batch-size or the replica count instead)"
        )
    if name in _STRATEGY:
        return _STRATEGY[name]
    tf = _tf()
    if name == "mirrored":
        devices = configure_devices(int(args.devices or 1))
        strategy = tf.distribute.MirroredStrategy(devices)
    elif name == "multi-worker":
        cluster_world()  # a clear error before TensorFlow reads a bad TF_CONFIG
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=collective_timeout(),
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    else:
        raise ValueError(
            f"training argument strategy={name!r} is invalid for backend tf; expected mirrored, multi-worker"
        )
    _STRATEGY[name] = strategy
    return strategy


def setup_distributed(args: Any) -> None:
    """What must happen before the model exists (``bert_core.training.run`` calls it): logical devices, the
    strategy (a multi-worker one joins its cluster here)."""
    strategy_for(args)


def world_of(strategy: Any) -> World:
    """``World(rank, size)`` of the *input pipelines* (workers) of ``strategy`` (one process: ``World(0, 1)``)."""
    if strategy is None:
        return World()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return World()
    return cluster_world()


# ------------------------------------------------------------------------------------------------ data


def replica_batches(batch: Mapping[str, np.ndarray], replicas: Sequence[int], num_replicas: int) -> Iterator[Dict]:
    """The shards of one collated global micro-batch for ``replicas`` (global replica ids), each with its loss weights
    ``{"loss_weight/<term>": float32 (B_r,)}`` = ``n_r / N`` (``bert_core.training.distributed.loss_scales / W``).

    A replica must run its step even with nothing to learn from (a short last batch): a shard without rows gets the
    global batch's first row, a shard without labelled units of a term gets one unit labelled; their weights are 0,
    so they add exactly 0 to the loss and gradient while keeping the head's mean loss finite (a mean over no
    labels is NaN, and ``0 * NaN`` is NaN).
    """
    rows = split_rows(len(next(iter(batch.values()))), num_replicas)
    for r in replicas:
        scales = loss_scales(batch, World(r, num_replicas))
        part = rows[r]
        empty = part.stop == part.start
        shard = {k: np.array(np.asarray(v)[slice(0, 1) if empty else part]) for k, v in batch.items()}
        for term, scale in scales.items():
            weight = 0.0 if empty else scale / num_replicas
            labels = shard[term]
            if not np.any(labels != IGNORE_INDEX):
                labels.reshape(-1)[0] = 0  # a valid class / position; weighted 0
                weight = 0.0
            shard[WEIGHT_PREFIX + term] = np.full(len(labels), weight, np.float32)
        yield shard


def split_weights(batch: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(the batch without its loss weights, ``{term: weight}``)."""
    rest = {k: v for k, v in batch.items() if not k.startswith(WEIGHT_PREFIX)}
    weights = {k[len(WEIGHT_PREFIX) :]: v for k, v in batch.items() if k.startswith(WEIGHT_PREFIX)}
    return rest, weights


def pipeline_replicas(context: Any) -> Tuple[List[int], int]:
    """``(replica ids, W)`` of the input pipeline ``context`` (a ``tf.distribute.InputContext``): pipeline ``p`` of
    ``P`` feeds replicas ``p * W / P`` ... in turn (``distribute_datasets_from_function`` hands a pipeline's
    consecutive elements to its replicas round-robin)."""
    total, pipelines = int(context.num_replicas_in_sync), int(context.num_input_pipelines)
    local = total // pipelines
    first = int(context.input_pipeline_id) * local
    return list(range(first, first + local)), total


# ------------------------------------------------------------------------------------------------ model


def scope(strategy: Any) -> Any:
    """``strategy.scope()``, or a no-op context for None."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def in_scope(model: Any, strategy: Any) -> Any:
    """``model`` with its variables created under ``strategy`` (mirrored on every replica): the model itself when
    they are, else the same head rebuilt in the scope with ``model``'s weights (``bert train`` loads the model
    before the Trainer exists)."""
    if all(strategy.extended.variable_created_in_scope(getattr(v, "value", v)) for v in model.variables):
        return model
    with strategy.scope():
        twin = type(model)(model.config, seed=None)
        twin.load_canonical_weights(model.canonical_weights())
    return twin


@contextlib.contextmanager
def fit_scope(model: Any, strategy: Any) -> Iterator[None]:
    """Where ``model.fit`` runs under ``strategy``: inside its scope, with the model's captured strategy hidden.

    Keras 3 (3.15) ``fit`` first "symbolically builds" a model that captured a strategy, reducing one batch of
    per-replica values with ``strategy.reduce``, which fails under ``MultiWorkerMirroredStrategy`` ("Attempt to
    convert a value ({'input_ids': PerReplica...}) ... to a Tensor", keras-team/keras#20585). Our heads are built
    already, so that step is not needed: with no captured strategy Keras skips it and takes the scope's strategy
    for everything else (the distributed dataset, ``strategy.run``).
    """
    if strategy is None:
        yield
        return
    captured = model._distribute_strategy
    model._distribute_strategy = None
    try:
        with strategy.scope():
            yield
    finally:
        model._distribute_strategy = captured
