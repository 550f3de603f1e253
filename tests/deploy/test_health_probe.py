"""`python -m graspstack.runtime.health`, the containers' healthcheck: exit 1 unless SERVING, and a
service name resolves to the port that service was configured with."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graspstack.runtime import health
from graspstack.runtime.redis_server import free_port


def test_nothing_listening_is_unhealthy(capsys):
    port = free_port()
    assert health.main([f"127.0.0.1:{port}", "--timeout", "0.2"]) == 1
    assert capsys.readouterr().out.strip() == f"127.0.0.1:{port} DOWN"


def test_service_name_uses_the_service_port_setting(monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("GRASPSTACK_FLYWHEEL_PORT", str(port))
    assert health.main(["flywheel", "--timeout", "0.2"]) == 1
    assert capsys.readouterr().out.startswith(f"127.0.0.1:{port} ")


def test_unknown_service_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        health.main(["nonsense"])
    assert info.value.code == 2


def test_runs_as_a_module():
    # The exact command compose and the Dockerfile run.
    result = subprocess.run(
        [sys.executable, "-m", "graspstack.runtime.health", f"127.0.0.1:{free_port()}", "--timeout", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout.endswith("DOWN\n")
