"""gRPC plumbing for locust: a User whose channels report every call to locust's event system.

Locust only knows what users report through `events.request.fire` (its documented pattern for
non-HTTP clients). A client interceptor fires it for every unary and client-streaming call, so the
locustfile reads like the robot's own code and no call can go unmeasured.
"""

from __future__ import annotations

import time

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User

# Locust runs users as gevent greenlets; without this a blocking gRPC call holds the whole process
# and every other user's latency would include it.
grpc_gevent.init_gevent()

CHANNEL_OPTIONS = [  # as lab/robot.py: frames are up to ~10 MB at 1920x1080
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class GrpcFailure(Exception):
    """A short 'CODE: details' for locust's failure table (RpcError's repr is a page long)."""


def method_name(full_method: str) -> str:
    """'/graspstack.v1.PoseEstimation/EstimatePoses' -> 'PoseEstimation/EstimatePoses'."""
    service, _, method = full_method.lstrip("/").partition("/")
    return f"{service.rsplit('.', 1)[-1]}/{method}"


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
    def __init__(self, environment):
        self.environment = environment

    def _measured(self, continuation, details, request):
        start = time.perf_counter()
        # On a blocking call the continuation returns once the call is done, with its outcome.
        call = continuation(details, request)
        exception, length = None, 0
        try:
            length = call.result().ByteSize()
        except grpc.RpcError as err:
            exception = GrpcFailure(f"{err.code().name}: {err.details()}")
        self.environment.events.request.fire(
            request_type="grpc",
            name=method_name(details.method),
            response_time=(time.perf_counter() - start) * 1e3,
            response_length=length,
            response=call,
            context={},
            exception=exception,
        )
        return call  # the caller still sees the RpcError, as without the interceptor

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return self._measured(continuation, client_call_details, request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return self._measured(continuation, client_call_details, request_iterator)


class GrpcUser(User):
    """Base for gRPC users: `self.channel(target)` gives a measured channel, closed when the user stops."""

    abstract = True

    def __init__(self, environment):
        super().__init__(environment)
        self._interceptor = LocustInterceptor(environment)
        self._raw_channels: list[grpc.Channel] = []

    def channel(self, target: str) -> grpc.Channel:
        # One connection per user and service: each robot holds its own, as in the lab.
        raw = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._raw_channels.append(raw)
        return grpc.intercept_channel(raw, self._interceptor)

    def on_stop(self) -> None:
        for raw in self._raw_channels:
            raw.close()
        self._raw_channels.clear()
