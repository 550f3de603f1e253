"""Dynamic batching: concurrent requests wait at most `max_wait_s` to share one model call.

A small reusable piece: give it a function from a list of inputs to a list of outputs; callers
submit one input and get a future. Queue time (waiting for the batch) and compute time (the call)
are reported per item, so an operator can tell a slow model from an overloaded one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any


@dataclass
class BatchResult:
    value: Any
    queue_s: float
    compute_s: float
    batch_size: int


@dataclass
class _Item:
    value: Any
    future: Future
    enqueued: float


class Batcher:
    def __init__(
        self,
        fn: Callable[[list], list],
        max_batch_size: int = 4,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        name: str = "batcher",
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, value: Any) -> Future:
        """Queue one input. Raises queue.Full when the service is saturated (callers shed load)."""
        fut: Future = Future()
        self._queue.put_nowait(_Item(value, fut, time.perf_counter()))
        return fut

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _collect(self) -> list[_Item] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                # Past the deadline (or with no wait at all), requests already queued still join.
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # finish this batch, then stop
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while (batch := self._collect()) is not None:
            batch = [it for it in batch if it.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            start = time.perf_counter()
            try:
                outputs = self.fn([it.value for it in batch])
            except Exception as err:  # one bad batch fails its callers, never the batcher
                for it in batch:
                    it.future.set_exception(err)
                continue
            compute = time.perf_counter() - start
            for it, out in zip(batch, outputs, strict=True):
                it.future.set_result(BatchResult(out, start - it.enqueued, compute, len(batch)))
