"""Real servers for service tests: a Redis process and in-process gRPC servers on free ports."""

from __future__ import annotations

import grpc
import pytest

from graspstack.runtime.redis_server import RedisServer, free_port


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def serve():
    """Start a service from its (spec, settings) on a free port; yields a function returning a channel."""
    started = []

    def _serve(spec, settings):
        from services.server import GrpcServer

        settings = settings.model_copy(
            update={"port": free_port(), "metrics_port": 0, "host": "127.0.0.1", "grace_s": 1.0}
        )
        server = GrpcServer(spec, settings)
        server.start()
        channel = grpc.insecure_channel(
            f"127.0.0.1:{server.port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
        )
        started.append((server, channel))
        return server, channel

    yield _serve
    for server, channel in started:
        channel.close()
        server.stop(0.5)
