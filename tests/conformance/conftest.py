"""Fixtures shared by the conformance tests: usable backends and the (expensive) parity reports, built once."""

from __future__ import annotations

import pytest

from conformance.adapters import BackendUnavailable, get_adapter, resolve_backends


def _usable():
    usable, broken = [], {}
    for name in resolve_backends():
        try:
            get_adapter(name)
            usable.append(name)
        except BackendUnavailable as err:
            broken[name] = str(err)
    return usable, broken


@pytest.fixture(scope="session")
def backend_status():
    """(usable backend names, {installed but unusable backend: reason})."""
    return _usable()


@pytest.fixture(scope="session")
def backends(backend_status):
    usable, _ = backend_status
    if len(usable) < 2:
        pytest.skip(f"cross-backend parity needs two usable backends, have {usable}")
    return usable


@pytest.fixture(scope="session")
def default_report(backends):
    """The full battery on the embedded default: every head, grads + SGD step, save/load chain."""
    from conformance import run_parity

    return run_parity(None, backends=backends)
