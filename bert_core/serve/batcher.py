"""Dynamic batching: requests that arrive within ``max_wait_ms`` of each other share model calls.

Each request hands over its features (token-id rows, already checked against the model's length limit). One asyncio
task gathers pending requests until ``max_wait_ms`` has passed since the first, or the pending rows fill
``max_batch_tokens`` (or ``max_batch_requests``), then runs them in ONE worker thread: the rows of all requests are
sorted by length and cut into model calls of at most ``max_batch_tokens`` padded tokens (rows x longest row,
``bert_core.batching.plan_batches``; with ``call_cost_tokens`` the cut of least calls x cost + padded tokens, so a
few long rows do not pad a call of short ones), and each request gets its own rows back. The event loop never blocks on the
model; requests that arrive while a group runs form the next group (so under load batches fill without waiting).

A model call that raises fails none of the requests in it by itself: every request with a row in a failed call is
run again alone, and only a request that fails alone gets the error.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

from ..batching import _round_up, collate, plan_batches


class BackendFailure(Exception):
    """The model failed on one request's rows (run alone); ``__cause__`` holds the model's exception."""


@dataclass
class _Pending:
    features: List[Dict[str, Any]]
    tokens: int
    future: "asyncio.Future[List[Any]]"


class Batcher:
    """Runs the features of concurrent requests through ``pipe``'s model in shared, length-bucketed calls.

    Args:
        pipe: a :class:`bert_core.pipelines.Pipeline` (its ``runner``, ``tokenizer``, ``token_outputs``, ``select``).
        max_batch_tokens: padded tokens (rows x padded length) per model call.
        max_wait_ms: how long the first pending request waits for others (0: only requests already queued join).
        max_batch_requests: requests per group (None: no limit besides the token budget).
        call_cost_tokens: cut each group's sorted rows into the calls of least ``calls x call_cost_tokens + padded
            tokens`` (None: fill calls greedily up to the budget).
        on_call: ``on_call(rows, padded_tokens)`` after every model call (metrics; called from the worker thread).

    Use inside a running event loop: ``await batcher.start()``, ``await batcher.submit(features)``, ``await
    batcher.stop()``.
    """

    def __init__(
        self,
        pipe: Any,
        *,
        max_batch_tokens: int = 16384,
        max_wait_ms: float = 2.0,
        max_batch_requests: Optional[int] = None,
        call_cost_tokens: Optional[int] = None,
        on_call: Optional[Callable[[int, int], None]] = None,
    ):
        self.pipe = pipe
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.max_batch_requests = max_batch_requests
        self.call_cost_tokens = call_cost_tokens
        self.on_call = on_call
        self.multiple = pipe.runner.pad_to_multiple_of
        self._pending: Deque[_Pending] = collections.deque()
        self._wakeup: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bert-serve-model")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="bert-serve-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for pending in self._pending:
            pending.future.cancel()
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def alive(self) -> bool:
        """The batching task is running (requests will be answered)."""
        return self._task is not None and not self._task.done()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a model call (the group running now not counted)."""
        return len(self._pending)

    # ---------------------------------------------------------------- requests
    async def submit(self, features: List[Dict[str, Any]]) -> List[Any]:
        """``pipe.select`` of each feature's model outputs, in the order of ``features``.

        Raises:
            BackendFailure: the model failed on these features alone.
        """
        if not features:
            return []
        future = asyncio.get_running_loop().create_future()
        tokens = sum(_round_up(len(f["input_ids"]), self.multiple) for f in features)
        self._pending.append(_Pending(features, tokens, future))
        self._wakeup.set()
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = loop.time() + self.max_wait
            while not self._full() and (remaining := deadline - loop.time()) > 0:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            group = self._take()
            outcomes = await loop.run_in_executor(self._executor, self.run_group, [p.features for p in group])
            for pending, outcome in zip(group, outcomes):
                if pending.future.done():  # the client went away
                    continue
                if isinstance(outcome, BaseException):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)

    def _full(self) -> bool:
        if self.max_batch_requests is not None and len(self._pending) >= self.max_batch_requests:
            return True
        return sum(p.tokens for p in self._pending) >= self.max_batch_tokens

    def _take(self) -> List[_Pending]:
        """The next group: pending requests in arrival order while they fit the budget (always at least one)."""
        group = [self._pending.popleft()]
        tokens = group[0].tokens
        while self._pending and (self.max_batch_requests is None or len(group) < self.max_batch_requests):
            if tokens + self._pending[0].tokens > self.max_batch_tokens:
                break
            tokens += self._pending[0].tokens
            group.append(self._pending.popleft())
        return [p for p in group if not p.future.done()]

    # ---------------------------------------------------------------- the worker thread
    def run_group(self, groups: Sequence[List[Dict[str, Any]]]) -> List[Any]:
        """Per request of ``groups`` (each a list of features): its selected outputs, or a BackendFailure.

        Runs in the worker thread. The rows of all requests share length-bucketed model calls; the requests with a
        row in a call that raised are run again, each alone.
        """
        owners = [g for g, features in enumerate(groups) for _ in features]
        flat = [f for features in groups for f in features]
        selected: List[Any] = [None] * len(flat)
        failed = set()
        for indices in self._plan(flat):
            try:
                rows = self._call([flat[i] for i in indices])
            except Exception:  # noqa: BLE001 - isolated below, request by request
                failed.update(owners[i] for i in indices)
                continue
            for i, row in zip(indices, rows):
                selected[i] = row
        outcomes: List[Any] = []
        at = 0
        for g, features in enumerate(groups):
            mine = selected[at : at + len(features)]
            at += len(features)
            if g in failed:
                try:
                    mine = self.run_alone(features)
                except Exception as err:  # noqa: BLE001 - this request's own failure
                    failure = BackendFailure(f"the model failed on this request: {type(err).__name__}: {err}")
                    failure.__cause__ = err
                    mine = failure
            outcomes.append(mine)
        return outcomes

    def run_alone(self, features: List[Dict[str, Any]]) -> List[Any]:
        """One request's features, in their own model calls."""
        out: List[Any] = [None] * len(features)
        for indices in self._plan(features):
            for i, row in zip(indices, self._call([features[i] for i in indices])):
                out[i] = row
        return out

    def _plan(self, features: Sequence[Dict[str, Any]]) -> List[Any]:
        lengths = [len(f["input_ids"]) for f in features]
        return plan_batches(
            lengths,
            batch_size=len(lengths),
            max_tokens=self.max_batch_tokens,
            pad_to_multiple_of=self.multiple,
            call_cost_tokens=self.call_cost_tokens,
        )

    def _call(self, features: List[Dict[str, Any]]) -> List[Any]:
        """One model call over ``features``: each row cut to its length and passed through ``pipe.select``."""
        pipe = self.pipe
        ids = [f["input_ids"] for f in features]
        types = [f.get("token_type_ids") or [0] * len(f["input_ids"]) for f in features]
        pad_id = pipe.tokenizer.pad_token_id if pipe.tokenizer.pad_token_id is not None else 0
        batch = collate(
            ids, list(range(len(ids))), pad_token_id=pad_id, pad_to_multiple_of=self.multiple, token_type_ids=types
        )
        outputs = pipe.runner(batch)
        if self.on_call is not None:
            self.on_call(len(ids), int(batch["input_ids"].size))
        rows = []
        for r, feature in enumerate(features):
            n = len(feature["input_ids"])
            row = {k: (v[r, :n] if k in pipe.token_outputs else v[r]) for k, v in outputs.items()}
            rows.append(pipe.select(feature, row))
        return rows
