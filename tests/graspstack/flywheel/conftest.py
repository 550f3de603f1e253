"""A real redis-server with appendfsync always (every acknowledged write on disk), and case makers."""

from __future__ import annotations

import pytest

from graspstack.flywheel.chaos import DurableRedis, make_case
from graspstack.flywheel.store import CaseStore
from graspstack.runtime.redis_server import free_port


@pytest.fixture
def durable_redis(tmp_path):
    server = DurableRedis(tmp_path / "redis", free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path):
    s = CaseStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def cases():
    return [make_case("robot-1", n, payload_bytes=512) for n in range(20)]
