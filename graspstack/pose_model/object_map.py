"""Per-object work of one frame spread over the CPU's cores: the objects' depth refinements are
independent of each other, and a cluttered frame holds 7-12 of them.

Threads, not processes: the work reads the frame's arrays in place (nothing to copy or send), and
the compiled kernels it spends much of its time in (predictors/scripted/kernels.py, edges.py,
edges_free.py, correspond.py) release the GIL (`nogil=True`), as do OpenCV and NumPy's larger
operations. The Python between them does not, which is why two workers give less than twice.

Torch stays on the thread that called `map`: a forward pass a worker needs (the handle and
way-round nets inside a refinement) is handed to that thread, which runs it between waiting for
results. Torch run on the workers themselves, even on one thread each, left the frame's own
forward passes (detector, CropNet) 30-50% slower for the rest of the process (crops stage
22 -> 29-36 ms a hard frame in five runs).

Results come back in the order of the items, and each item's work is the same as run alone (seeded
per item, no shared mutable state), so answers do not depend on the number of workers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# How a component that runs inside a worker asks for one of its functions to run elsewhere:
# ObjectMap.on_caller, or `here` (run it where it is called).
Dispatch = Callable[[Callable[..., R]], Callable[..., R]]


def here(fn: Callable[..., R]) -> Callable[..., R]:
    return fn


class ObjectMap:
    """map(fn, items) over `workers` threads (in the calling thread when workers <= 1 or there is at
    most one item); on_caller(fn) for what must run on the thread that called map. One per
    predictor; concurrent requests may share it (their maps queue). Its idle threads end with it."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, "object-map") if workers > 1 else None
        self._local = threading.local()  # on a worker: the queue of its map's calling thread

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]
        # One queue per map: the workers' requests to run something here, and a None per item done.
        requests: queue.SimpleQueue = queue.SimpleQueue()

        def run(item: T) -> R:
            self._local.requests = requests
            try:
                return fn(item)
            finally:
                self._local.requests = None
                requests.put(None)

        futures = [self._pool.submit(run, item) for item in items]
        remaining = len(futures)
        while remaining:
            request = requests.get()
            if request is None:
                remaining -= 1
            else:
                _resolve(*request)
        return [f.result() for f in futures]

    def on_caller(self, fn: Callable[..., R]) -> Callable[..., R]:
        """fn, run on the thread that called map when called from one of its workers (else here)."""

        def call(*args):
            requests = getattr(self._local, "requests", None)
            if requests is None:
                return fn(*args)
            answer: Future = Future()
            requests.put((fn, args, answer))
            return answer.result()

        return call


def _resolve(call: Callable, args: tuple, answer: Future) -> None:
    try:
        answer.set_result(call(*args))
    except BaseException as exc:  # the worker that asked re-raises it
        answer.set_exception(exc)
