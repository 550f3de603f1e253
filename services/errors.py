"""Map core exceptions to gRPC status codes, in one place, so every service answers alike."""

from __future__ import annotations

import queue
from contextlib import contextmanager

import grpc

from graspstack.ingest import FrameError, FrameStoreUnavailable

# Below this much time left a call cannot do useful work: answer DEADLINE_EXCEEDED at once.
MIN_TIME_LEFT_S = 0.005


class NotFound(LookupError):
    """A referenced thing (frame, model version) does not exist (any more)."""


class Unavailable(RuntimeError):
    """A dependency is down; the caller may retry."""


_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (FrameError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (FrameStoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (queue.Full, grpc.StatusCode.RESOURCE_EXHAUSTED),
]


_DEFAULT_MESSAGES = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: "service saturated: too many frames waiting; retry with backoff",
}


@contextmanager
def grpc_errors(context: grpc.ServicerContext):
    """Turn known core errors into the matching status with the error's message."""
    try:
        yield
    except tuple(cls for cls, _ in _CODES) as err:
        for cls, code in _CODES:
            if isinstance(err, cls):
                context.abort(code, str(err) or _DEFAULT_MESSAGES.get(code, code.name))


def check_deadline(context: grpc.ServicerContext, what: str) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining < MIN_TIME_LEFT_S:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"deadline expired before {what}")
