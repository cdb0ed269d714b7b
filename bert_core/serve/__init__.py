"""``bert serve``: an HTTP server over one task pipeline, with dynamic batching (TEI-compatible routes).

    >>> from bert_core.pipelines import pipeline
    >>> from bert_core.serve import ServeConfig, create_app
    >>> app = create_app(pipeline("sentence-embedding", "path/to/minilm", backend="torch"), ServeConfig())
    >>> # uvicorn.run(app, host="127.0.0.1", port=8080)  -- or: bert serve path/to/minilm --task sentence-embedding

Framework-free parts: ``protocol`` (request bodies -> pipeline calls), ``batcher`` (dynamic batching), ``server``
(the two together). ``app`` needs Starlette and prometheus_client (``pip install 'multi-bert[serve]'``) and is
imported only when ``create_app`` is first used, so ``import bert_core.serve`` stays light. docs/serve.md: the routes.
"""

from __future__ import annotations

from typing import Any

from .batcher import BackendFailure, Batcher
from .errors import ServeError
from .server import ServeConfig, Server, max_input_length


def create_app(pipe: Any, config: Any = None) -> Any:
    """The Starlette app serving ``pipe``; see :func:`bert_core.serve.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(pipe, config)


__all__ = ["create_app", "ServeConfig", "Server", "Batcher", "BackendFailure", "ServeError", "max_input_length"]
