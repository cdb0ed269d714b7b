"""The contract suite: one behaviour, every installed backend.

Each test takes the ``backend`` fixture, a :class:`Driver` over one backend (parametrised over the backends installed
in this env), and speaks numpy in and numpy out through ``conformance.adapters``, so the same test body runs on
PyTorch, Keras 3 and Flax NNX. In a single-framework tox env only that backend runs; in the conformance env all three.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict

import numpy as np
import pytest

from bert_core.backends import BACKENDS
from bert_core.config import tiny_config
from conformance.adapters import BackendUnavailable, get_adapter, resolve_backends


def _usable() -> list:
    usable = []
    for name in resolve_backends():
        try:
            get_adapter(name)
            usable.append(name)
        except BackendUnavailable:
            pass
    return usable


USABLE = _usable()


class Driver:
    """Build heads and run them with numpy arrays on one backend."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.adapter = get_adapter(name)
        self.package = importlib.import_module(BACKENDS[name].package)
        self.modeling = importlib.import_module(BACKENDS[name].package + ".modeling")

    def __repr__(self) -> str:
        return f"Driver({self.name})"

    def make(self, head: str, config=None, seed: int = 0, **overrides: Any):
        """A ``head`` model from ``bert_core.init`` weights (same for every backend for a seed), dropout off."""
        if config is None:
            if head == "BertLMHeadModel":
                overrides.setdefault("is_decoder", True)
            config = tiny_config(**overrides)
        return self.adapter._eval(getattr(self.package, head)(config, seed=seed))

    def raw(self, model, **inputs: Any):
        """The backend's own output object (return_dict=True); numpy inputs are converted, others passed as is."""
        return self.adapter.forward_raw(model, inputs)

    def run(self, model, **inputs: Any) -> Dict[str, np.ndarray]:
        """Output fields as numpy: ``loss``, ``logits``, ``hidden_states.0``, ``past_key_values.0.1`` ..."""
        return self.adapter.forward(model, inputs)

    def numpy(self, value: Any) -> np.ndarray:
        return np.asarray(self.adapter.to_numpy(value))

    def tensor(self, array: np.ndarray) -> Any:
        return self.adapter.convert(np.asarray(array))

    def generate(self, model, input_ids: np.ndarray, **kwargs: Any) -> np.ndarray:
        arrays = {k: self.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        return self.numpy(model.generate(self.tensor(input_ids), **arrays)).astype(np.int64)


@pytest.fixture(params=USABLE, scope="session")
def backend(request) -> Driver:
    return Driver(request.param)


@pytest.fixture(scope="session")
def all_backends():
    """Drivers of every usable backend; cross-backend tests skip below two."""
    if len(USABLE) < 2:
        pytest.skip(f"needs two usable backends, this env has {USABLE}")
    return [Driver(name) for name in USABLE]


def random_ids(config, batch: int = 2, seq: int = 7, seed: int = 0, choices: int = 0) -> np.ndarray:
    """int64 ids in [1, vocab): (batch, seq), or (batch, choices, seq)."""
    rng = np.random.default_rng(seed)
    shape = (batch, choices, seq) if choices else (batch, seq)
    return rng.integers(1, config.vocab_size, shape).astype(np.int64)
