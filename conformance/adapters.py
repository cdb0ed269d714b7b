"""One adapter per backend: build a head from canonical numpy weights, run it on numpy inputs, return numpy.

Frameworks are imported only when an adapter is first used, so ``import conformance`` loads none.

Every adapter exposes the same small surface (all arrays numpy, canonical PyTorch layout):

* ``build(head, config, weights)`` -> model with ``weights`` loaded (eval / dropout off).
* ``forward(model, inputs)`` -> ``OrderedDict`` field path -> array: tuples are flattened with dotted indices
  (``hidden_states.2``, ``past_key_values.0.1``); scalars (losses) are 0-d arrays.
* ``forward_raw(model, inputs)`` -> the backend's own output (to feed ``past_key_values`` back).
* ``grads(model, inputs)`` -> (loss, ``OrderedDict`` canonical name -> gradient).
* ``weights(model)``, ``save(model, dir)``, ``load(head, dir)``.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bert_core.backends import BACKENDS, BackendUnavailable, check_installed, installed_backends
from bert_core.config import BertConfig
from bert_core.weights import HEADS

__all__ = ["Adapter", "BackendUnavailable", "get_adapter", "resolve_backends", "flatten_output", "nested_numpy"]


def _flatten(
    prefix: str, value: Any, to_numpy: Callable[[Any], np.ndarray], out: "OrderedDict[str, np.ndarray]"
) -> None:
    if value is None:
        return
    if isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            _flatten(f"{prefix}.{i}", item, to_numpy, out)
        return
    out[prefix] = to_numpy(value)


def flatten_output(output: Any, to_numpy: Callable[[Any], np.ndarray]) -> "OrderedDict[str, np.ndarray]":
    """A ModelOutput (mapping over non-None fields) -> flat field path -> numpy array."""
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    if hasattr(output, "items"):
        for key, value in output.items():
            _flatten(key, value, to_numpy, out)
    else:  # a tuple (return_dict=False): positional names
        for i, value in enumerate(output):
            _flatten(str(i), value, to_numpy, out)
    return out


def nested_numpy(value: Any, to_numpy: Callable[[Any], np.ndarray]) -> Any:
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return tuple(nested_numpy(v, to_numpy) for v in value)
    return to_numpy(value)


class Adapter:
    """Base adapter; subclasses fill in the framework specifics."""

    name = ""

    def __init__(self) -> None:
        self.package = importlib.import_module(BACKENDS[self.name].package)
        missing = [h for h in HEADS + ("canonical_grads",) if not hasattr(self.package, h)]
        if missing:
            raise BackendUnavailable(f"backend {self.name!r} ({self.package.__name__}) does not export {missing}")

    # ------------------------------------------------------------ framework specifics
    def convert(self, value: Any) -> Any:  # numpy -> framework tensor
        raise NotImplementedError

    def to_numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def construct(self, cls: Any, config: BertConfig) -> Any:
        return cls(config)

    def call(self, model: Any, kwargs: Dict[str, Any]) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------ common surface
    def head_class(self, head: str) -> Any:
        return getattr(self.package, head)

    def build(self, head: str, config: BertConfig, weights: Mapping[str, np.ndarray]) -> Any:
        model = self.construct(self.head_class(head), config)
        model.load_canonical_weights(weights)
        return self._eval(model)

    def _eval(self, model: Any) -> Any:
        return model

    def convert_inputs(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for key, value in inputs.items():
            if isinstance(value, (tuple, list)):
                out[key] = tuple(self.convert_inputs({"_": v})["_"] for v in value)
            elif isinstance(value, np.ndarray):
                out[key] = self.convert(value)
            else:
                out[key] = value
        return out

    def forward_raw(self, model: Any, inputs: Mapping[str, Any]) -> Any:
        kwargs = self.convert_inputs(inputs)
        kwargs.setdefault("return_dict", True)
        return self.call(model, kwargs)

    def forward(self, model: Any, inputs: Mapping[str, Any]) -> "OrderedDict[str, np.ndarray]":
        return flatten_output(self.forward_raw(model, inputs), self.to_numpy)

    def weights(self, model: Any) -> "OrderedDict[str, np.ndarray]":
        return OrderedDict((k, np.asarray(v)) for k, v in model.canonical_weights().items())

    def load_weights(self, model: Any, weights: Mapping[str, np.ndarray]) -> Any:
        model.load_canonical_weights(weights)
        return model

    def save(self, model: Any, directory: str) -> None:
        model.save_pretrained(directory)

    def load(self, head: str, directory: str) -> Any:
        return self._eval(self.head_class(head).from_pretrained(directory))

    def grads(self, model: Any, inputs: Mapping[str, Any]) -> Tuple[float, "OrderedDict[str, np.ndarray]"]:
        loss, grads = self.package.canonical_grads(model, self.convert_inputs(inputs))
        return float(np.asarray(self.to_numpy(loss))), OrderedDict((k, self.to_numpy(v)) for k, v in grads.items())


class TorchAdapter(Adapter):
    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        super().__init__()

    def convert(self, value: np.ndarray) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(value))
        return t.long() if value.dtype.kind in "iu" else t

    def to_numpy(self, value: Any) -> np.ndarray:
        if isinstance(value, self.torch.Tensor):
            return value.detach().cpu().numpy()
        return np.asarray(value)

    def _eval(self, model: Any) -> Any:
        model.eval()
        return model

    def call(self, model: Any, kwargs: Dict[str, Any]) -> Any:
        with self.torch.no_grad():
            return model(**kwargs)


class TFAdapter(Adapter):
    name = "tf"

    def __init__(self) -> None:
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self.tf = tf
        super().__init__()

    def convert(self, value: np.ndarray) -> Any:
        if value.dtype.kind in "iu":
            return self.tf.constant(value.astype(np.int32))
        return self.tf.constant(value)

    def to_numpy(self, value: Any) -> np.ndarray:
        return value.numpy() if hasattr(value, "numpy") else np.asarray(value)

    def call(self, model: Any, kwargs: Dict[str, Any]) -> Any:
        return model(**kwargs, training=False)


class FlaxAdapter(Adapter):
    name = "flax"

    def __init__(self) -> None:
        import jax.numpy as jnp
        from flax import nnx

        self.jnp = jnp
        self.nnx = nnx
        super().__init__()

    def convert(self, value: np.ndarray) -> Any:
        if value.dtype.kind in "iu":
            return self.jnp.asarray(value.astype(np.int32))
        return self.jnp.asarray(value)

    def construct(self, cls: Any, config: BertConfig) -> Any:
        return cls(config, rngs=self.nnx.Rngs(0))

    def call(self, model: Any, kwargs: Dict[str, Any]) -> Any:
        return model(**kwargs, deterministic=True)


_ADAPTER_CLASSES = {"torch": TorchAdapter, "tf": TFAdapter, "flax": FlaxAdapter}
_CACHE: Dict[str, Adapter] = {}


def get_adapter(name: str) -> Adapter:
    """The (cached) adapter of backend ``name``; BackendUnavailable with an install hint if it cannot be used."""
    key = check_installed(name)
    if key not in _CACHE:
        try:
            _CACHE[key] = _ADAPTER_CLASSES[key]()
        except ImportError as err:
            raise BackendUnavailable(
                f"backend {key!r} cannot be imported ({err}): {BACKENDS[key].install_hint}"
            ) from err
    return _CACHE[key]


def resolve_backends(names: Optional[Sequence[str]] = None) -> List[str]:
    """Backend names to run: ``names`` validated (unknown / not installed -> BackendUnavailable), or every installed."""
    if names is None:
        return installed_backends()
    out: List[str] = []
    for n in names:
        key = check_installed(n)
        if key not in out:
            out.append(key)
    return out
