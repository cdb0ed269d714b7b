"""The server without the web framework: one pipeline, its limits, the batcher, and ``handle(route, body)``.

``bert_core.serve.app`` adapts it to ASGI (body limit, JSON, status codes, metrics); tests can drive it directly.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

from ..backends import distribution_version
from ..batching import _round_up
from ..pipelines.base import PipelineError
from .batcher import BackendFailure, Batcher
from .errors import ServeError, too_large
from .protocol import ROUTE_TASKS, Limits, Plan, make_plan


@dataclass
class ServeConfig:
    """The server's settings (``bert serve`` options of the same names).

    Attributes:
        model_id: the model's name in ``/info`` (the directory or hub id it was loaded from).
        max_batch_tokens: padded tokens (rows x longest row) per model call; at least the longest input.
        max_wait_ms: how long a request waits for others to share its model call.
        max_batch_requests: requests per model call group (None: only the token budget limits it).
        max_client_batch_size: inputs one request may hold.
        max_concurrent_requests: requests queued at once; more get 429.
        max_body_bytes: request body limit; larger bodies get 413 before they are read.
        call_cost_tokens: the fixed cost of one model call, in padded tokens: the batcher cuts a group's rows into
            the calls that minimise calls x this + padded tokens (0: one row per call never pays; large: fill calls
            greedily). See ``bert_core.batching.plan_batches``.
    """

    model_id: str = ""
    max_batch_tokens: int = 16384
    max_wait_ms: float = 2.0
    max_batch_requests: Optional[int] = None
    max_client_batch_size: int = 32
    max_concurrent_requests: int = 512
    max_body_bytes: int = 1 << 20
    call_cost_tokens: int = 64

    def check(self) -> None:
        """ValueError naming the first setting out of range."""
        for name in ("max_batch_tokens", "max_client_batch_size", "max_concurrent_requests", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        if (
            isinstance(self.call_cost_tokens, bool)
            or not isinstance(self.call_cost_tokens, int)
            or self.call_cost_tokens < 0
        ):
            raise ValueError(f"call_cost_tokens must be an int >= 0; got {self.call_cost_tokens!r}")
        if self.max_batch_requests is not None and (
            not isinstance(self.max_batch_requests, int) or self.max_batch_requests < 1
        ):
            raise ValueError(f"max_batch_requests must be an int >= 1 or None; got {self.max_batch_requests!r}")
        if not isinstance(self.max_wait_ms, (int, float)) or not 0 <= self.max_wait_ms <= 10_000:
            raise ValueError(f"max_wait_ms must be a number in [0, 10000]; got {self.max_wait_ms!r}")


def max_input_length(pipe: Any) -> int:
    """Tokens one row may hold: the model's positions, the tokenizer's limit, and sentence-transformers'
    ``max_seq_length`` for sentence-embedding."""
    limit = min(int(pipe.config.max_position_embeddings), int(pipe.tokenizer.model_max_length))
    pooling = getattr(pipe, "pooling", None)
    if pooling is not None and pooling.max_seq_length is not None:
        limit = min(limit, int(pooling.max_seq_length))
    return limit


class Server:
    """One pipeline behind the routes of ``bert serve``.

    Args:
        pipe: the task pipeline (``bert_core.pipelines.pipeline(...)``).
        config: a :class:`ServeConfig`.
        on_call: ``on_call(rows, padded_tokens)`` after each model call (metrics).

    Raises:
        ValueError: a setting out of range, or ``max_batch_tokens`` below the longest input.
    """

    def __init__(self, pipe: Any, config: Optional[ServeConfig] = None, on_call: Optional[Callable] = None):
        self.pipe = pipe
        self.config = config or ServeConfig()
        self.config.check()
        self.limits = Limits(max_input_length(pipe), self.config.max_client_batch_size)
        longest = _round_up(self.limits.max_input_length, pipe.runner.pad_to_multiple_of)
        if self.config.max_batch_tokens < longest:
            raise ValueError(
                f"max_batch_tokens must hold one input of the longest length: >= {longest} "
                f"(max_input_length {self.limits.max_input_length}); got {self.config.max_batch_tokens}"
            )
        self.batcher = Batcher(
            pipe,
            max_batch_tokens=self.config.max_batch_tokens,
            max_wait_ms=self.config.max_wait_ms,
            max_batch_requests=self.config.max_batch_requests,
            call_cost_tokens=self.config.call_cost_tokens,
            on_call=on_call,
        )

    @property
    def routes(self) -> List[str]:
        """The inference routes this task serves."""
        return [r for r, tasks in ROUTE_TASKS.items() if self.pipe.task in tasks]

    def info(self) -> Dict[str, Any]:
        """``/info``: the model, the task, the backend and every limit."""
        pipe = self.pipe
        out: Dict[str, Any] = {
            "model_id": self.config.model_id,
            "model_type": "bert",
            "task": pipe.task,
            "backend": pipe.backend,
            "routes": self.routes,
            "max_input_length": self.limits.max_input_length,
            **{k: v for k, v in asdict(self.config).items() if k != "model_id"},
            "version": distribution_version("multi-bert") or "source tree",
        }
        if pipe.head == "BertForSequenceClassification" or pipe.head == "BertForTokenClassification":
            out["id2label"] = {str(k): v for k, v in pipe.config.id2label.items()}
        if pipe.task == "sentence-embedding":
            out["pooling"] = list(pipe.pooling.modes)
        return out

    async def start(self) -> None:
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    async def handle(self, route: str, body: Any) -> Any:
        """The response body of one request to ``route`` (a key of ``ROUTE_TASKS``) with JSON ``body``.

        Raises:
            ServeError: a bad request (4xx), the model failing on it (424), overload (429), no worker (503).
        """
        if not self.batcher.alive:
            raise ServeError("the inference worker is not running", "Unhealthy")
        if self.batcher.queue_depth >= self.config.max_concurrent_requests:
            raise ServeError(
                f"{self.batcher.queue_depth} requests are queued (--max-concurrent-requests "
                f"{self.config.max_concurrent_requests}); retry later",
                "Overloaded",
            )
        plan = make_plan(route, self.pipe, body, self.limits)
        features = await asyncio.to_thread(self._preprocess, plan)
        flat = [f for item_features in features for f in item_features]
        try:
            rows = await self.batcher.submit(flat)
        except BackendFailure as err:
            raise ServeError(str(err), "Backend") from err
        selected, at = [], 0
        for item_features in features:
            selected.append(rows[at : at + len(item_features)])
            at += len(item_features)
        return await asyncio.to_thread(self._finish, plan, features, selected)

    def _preprocess(self, plan: Plan) -> List[List[Dict[str, Any]]]:
        """Each item's features, each row checked against ``max_input_length``."""
        limit = self.limits.max_input_length
        out = []
        for i, item in enumerate(plan.items):
            try:
                features = self.pipe.preprocess(item, plan.params)
            except (PipelineError, ValueError) as err:  # the tokenizer's errors are ValueErrors naming the cause
                raise ServeError(f"input {i}: {err}", "Tokenizer") from None
            for feature in features:
                n = len(feature["input_ids"])
                if n >= limit and plan.truncate is False and plan.full_length is not None:
                    n = plan.full_length(item)
                if n > limit:
                    hint = "; send truncate=true to cut it to that length" if plan.truncate is False else ""
                    raise too_large(f"input {i} is {n} tokens long; the model takes at most {limit}{hint}")
            out.append(features)
        return out

    @staticmethod
    def _finish(plan: Plan, features: List[List[Dict[str, Any]]], selected: List[List[Any]]) -> Any:
        try:
            return plan.finish(features, selected)
        except PipelineError as err:
            raise ServeError(str(err), "Tokenizer") from None
