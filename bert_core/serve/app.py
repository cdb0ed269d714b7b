"""The ASGI app of ``bert serve``: Starlette routes over a :class:`~bert_core.serve.server.Server`.

Starlette rather than FastAPI: the routes are few and their bodies are checked by hand in ``protocol`` (so the
errors carry TEI's ``{"error", "error_type"}`` shape and the pipelines' wording instead of pydantic's), and the
body size limit must act before the body is read -- FastAPI would add pydantic models and an OpenAPI layer that
this surface does not use. Imports Starlette and prometheus_client, so ``bert_core.serve`` loads it lazily.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, Optional

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ServeError, too_large
from .protocol import ROUTE_TASKS
from .server import ServeConfig, Server

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Metrics:
    """Prometheus metrics of one app, in their own registry (several apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bert_serve_requests", "HTTP requests by route and status", ("route", "status"), registry=self.registry
        )
        self.latency = Histogram(
            "bert_serve_request_duration_seconds",
            "time from request to response",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "bert_serve_batch_size", "rows per model call", buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.batch_tokens = Histogram(
            "bert_serve_batch_tokens", "padded tokens per model call", buckets=_TOKEN_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge("bert_serve_queue_depth", "requests waiting for the model", registry=self.registry)

    def on_call(self, rows: int, tokens: int) -> None:
        self.batch_size.observe(rows)
        self.batch_tokens.observe(tokens)


class _Observe:
    """ASGI middleware: count every HTTP request by route and status and time it. Unknown paths count as
    ``other`` (a scanner must not create a label per path)."""

    def __init__(self, app: Any, metrics: Metrics, routes: set):
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope["path"] if scope["path"] in self.routes else "other"
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def error_response(err: ServeError) -> JSONResponse:
    return JSONResponse(err.payload(), status_code=err.status)


async def read_json(request: Request, limit: int) -> Any:
    """The JSON body; 413 as soon as it is known to exceed ``limit`` bytes (from Content-Length, else while
    reading), 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(f"the body is {int(declared)} bytes; this server takes at most {limit} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"the body exceeds {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        raise ServeError("the body is empty; send a JSON object", "InvalidJSON")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ServeError(f"the body is not valid JSON: {err}", "InvalidJSON") from None


def create_app(pipe: Any, config: Optional[ServeConfig] = None) -> Starlette:
    """The ASGI app serving ``pipe`` (a task pipeline) with ``config``'s limits.

    Routes: ``POST /embed /embed_all /predict /rerank`` (those of the pipeline's task answer, the others give 400),
    ``GET /health /info /metrics``. ``app.state.server`` is the :class:`Server`, ``app.state.metrics`` the metrics.

    Raises:
        ValueError: a setting of ``config`` out of range.
    """
    metrics = Metrics()
    server = Server(pipe, config, on_call=metrics.on_call)
    metrics.queue_depth.set_function(lambda: server.batcher.queue_depth)
    limit = server.config.max_body_bytes

    def inference(route: str):
        async def endpoint(request: Request) -> Response:
            try:
                result = await server.handle(route, await read_json(request, limit))
                try:
                    text = json.dumps(result, allow_nan=False, ensure_ascii=False)
                except ValueError:
                    raise ServeError("the model gave a non-finite score (NaN or infinity)", "Backend") from None
            except ServeError as err:
                return error_response(err)
            return Response(text, media_type="application/json")

        return Route(route, endpoint, methods=["POST"])

    async def health(request: Request) -> Response:
        if not server.batcher.alive:
            return error_response(ServeError("the inference worker is not running", "Unhealthy"))
        return JSONResponse({"status": "ok"})

    async def info(request: Request) -> Response:
        return JSONResponse(server.info())

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            err = ServeError(f"no route {request.url.path}; routes: {', '.join(sorted(paths))}", "NotFound")
        elif exc.status_code == 405:
            err = ServeError(f"{request.url.path} does not take {request.method}", "MethodNotAllowed")
        else:
            err = ServeError(str(exc.detail), "Validation", exc.status_code)
        return error_response(err)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    routes = [inference(route) for route in ROUTE_TASKS] + [
        Route("/health", health, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    paths = {r.path for r in routes}
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.add_middleware(_Observe, metrics=metrics, routes=paths)
    app.state.server = server
    app.state.metrics = metrics
    return app
