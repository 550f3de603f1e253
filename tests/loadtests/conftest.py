"""Reuse the service tests' real-server fixtures (a Redis process, in-process gRPC servers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_services_conftest", Path(__file__).resolve().parents[1] / "services" / "conftest.py"
)
_services_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_services_conftest)

redis_server = _services_conftest.redis_server
serve = _services_conftest.serve
