"""Which weights a ``model`` mesh axis splits (tensor parallelism, Megatron style), as data over canonical names.

A rule is ``(regex, partition spec, why)``: the first rule whose regex matches the whole canonical weight name
(``bert_core.weights``, PyTorch layout: a linear weight is ``(out, in)``) gives, per array axis, the mesh axis that
splits it (``None``: not split). Backends with another layout permute the spec the way the weight table permutes the
array (:func:`backend_partition`: flax and Keras kernels are ``(in, out)``, the transpose).

The attention block and the feed-forward block each become "split, compute locally, one all-reduce": query/key/value
and the FFN's first dense are split on their output features (each device holds whole attention heads, or a slice of
the intermediate features), the two output denses on their input features, so each device's partial product is summed
once (the compiler inserts the all-reduce) before the bias, residual and LayerNorm, which every device holds whole.

Only the ``model`` axis splits weights; the ``data`` axis (:data:`bert_core.training.distributed.MESH_AXES`) holds a
full copy per data-parallel group and splits the batch.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence, Tuple

from .weights import BACKEND_LEAVES, WeightSpec

#: One mesh axis name or ``None`` per array axis (canonical layout); ``()`` replicates.
Partition = Tuple[Optional[str], ...]

#: ``(regex over the canonical name, partition in canonical layout, why)``, first match wins.
RULES: Tuple[Tuple[str, Partition, str], ...] = (
    (
        r".*\.attention\.self\.(query|key|value)\.weight",
        ("model", None),
        "(out, in): the output features are the heads, so each device projects whole heads and attends locally",
    ),
    (
        r".*\.attention\.self\.(query|key|value)\.bias",
        ("model",),
        "added to the split output features: split like them",
    ),
    (
        r".*\.attention\.output\.dense\.weight",
        (None, "model"),
        "(out, in): the input features are the split heads, so each device's product is a partial sum (one all-reduce)",
    ),
    (
        r".*\.intermediate\.dense\.weight",
        ("model", None),
        "(out, in): split the intermediate features; GELU is elementwise, so it runs on the slices",
    ),
    (
        r".*\.intermediate\.dense\.bias",
        ("model",),
        "added to the split intermediate features: split like them",
    ),
    (
        r".*\.layer\.\d+\.output\.dense\.weight",
        (None, "model"),
        "(out, in): the input is the split intermediate features, so each device's product is a partial sum",
    ),
    (
        r".*",
        (),
        "embeddings, LayerNorms, output biases (added after the all-reduce), pooler and heads: small, or read whole "
        "by every device; replicated",
    ),
)


def partition(name: str) -> Partition:
    """The canonical-layout partition of weight ``name`` (the first rule of :data:`RULES` that matches it whole)."""
    for pattern, spec, _ in RULES:
        if re.fullmatch(pattern, name):
            return spec
    return ()  # unreachable: the last rule matches everything


def backend_partition(spec: WeightSpec, backend: str) -> Partition:
    """The partition of ``spec``'s array in ``backend``'s layout, padded with ``None`` to the array's rank: reversed
    where the backend stores the transpose (flax/Keras kernels ``(in, out)``)."""
    canonical = partition(spec.name)
    canonical = canonical + (None,) * (len(spec.shape) - len(canonical))
    _, transpose = BACKEND_LEAVES[spec.kind][backend]
    return tuple(reversed(canonical)) if transpose else canonical


def check_divisible(specs: Sequence[WeightSpec], axis_sizes: Mapping[str, int]) -> None:
    """Refuse a mesh whose axes do not divide every dimension they split.

    Raises:
        ValueError: naming each weight, its dimension and the mesh axis, e.g. an intermediate size 37 on model=2.
    """
    bad = []
    for spec in specs:
        for dim, (size, axis) in enumerate(zip(spec.shape, partition(spec.name) + (None,) * len(spec.shape))):
            if axis is not None and size % axis_sizes.get(axis, 1):
                bad.append(f"{spec.name} dim {dim} = {size} on {axis}={axis_sizes[axis]}")
    if bad:
        raise ValueError(
            f"--mesh cannot split these weights evenly: {'; '.join(bad)}; expected a model axis size that divides "
            f"hidden_size and intermediate_size"
        )
