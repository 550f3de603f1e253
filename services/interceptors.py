"""One server interceptor for the standard gRPC server metrics, shared by every service."""

from __future__ import annotations

import time

import grpc

from graspstack import metrics


def _split(full_method: str) -> tuple[str, str]:
    # "/graspstack.v1.PoseEstimation/EstimatePoses" -> ("graspstack.v1.PoseEstimation", "EstimatePoses")
    _, service, method = full_method.split("/")
    return service, method


class MetricsInterceptor(grpc.ServerInterceptor):
    """grpc_server_started/handled_total and grpc_server_handling_seconds, by method and code."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _split(handler_call_details.method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(handler.unary_unary, service, method, "unary"),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap(handler.stream_unary, service, method, "client_stream"),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # streaming responses (health Watch, reflection) pass through unmeasured

    @staticmethod
    def _wrap(behaviour, service: str, method: str, rpc_type: str):
        labels = (service, method, rpc_type)

        def wrapped(request, context: grpc.ServicerContext):
            metrics.GRPC_STARTED.labels(*labels).inc()
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return behaviour(request, context)
            except Exception:
                # context.abort() raises; the status it set is what the client gets.
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                if code == grpc.StatusCode.OK and context.code() is not None:
                    code = context.code()
                metrics.GRPC_HANDLING_SECONDS.labels(*labels).observe(time.perf_counter() - start)
                metrics.GRPC_HANDLED.labels(*labels, code.name).inc()

        return wrapped
