"""The shared bootstrap's heap settling: what a service loaded before it serves is out of the cyclic
collector's reach, and so is what a reload loads."""

from __future__ import annotations

import gc
import weakref

import pytest

from graspstack.runtime.redis_server import free_port
from services.server import GrpcServer, ServiceSpec
from services.settings import ServerSettings


class _Loaded:
    """Stands for a model: objects in a reference cycle, as module graphs have."""

    def __init__(self) -> None:
        self.self_ref = self


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # leave the rest of the test session's heap as it was


def test_start_and_reload_freeze_what_the_service_holds(unfrozen):
    holder = {"model": _Loaded()}

    def reload() -> None:
        holder["model"] = _Loaded()  # the old one is now garbage in a cycle

    spec = ServiceSpec("test", [], register=lambda server: None, on_reload=reload)
    server = GrpcServer(spec, ServerSettings(port=free_port(), metrics_port=0, host="127.0.0.1"))
    server.start()
    try:
        frozen_at_start = gc.get_freeze_count()
        assert frozen_at_start > 1000  # the interpreter's modules, gRPC's and the held model

        previous = weakref.ref(holder["model"])
        server._reload()
        # The previous model left the permanent generation with everything else and was collected
        # (frozen, its cycle would have lived on); the new one is frozen in its place.
        assert previous() is None
        assert gc.get_freeze_count() > 1000
    finally:
        server.stop(0)
