"""A Debian `redis-server` process owned by us, with append-only persistence on.

Used by `graspstack up` and by the integration tests (never fakeredis): the tests kill and restart
it to prove queued data survives.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from graspstack.runtime.processes import stop_popen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, data_dir: str | Path, port: int = 6379, host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir)
        self.port = port
        self.host = host
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError(
                "redis-server not found: run `make setup` (installs Debian's redis-server)"
            )
        # appendfsync everysec: at most one second of acknowledged writes lost on a power cut;
        # a killed process loses nothing that reached the kernel.
        return [
            exe,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]

    def start(self, timeout_s: float = 10.0, detach: bool = False) -> RedisServer:
        """Start and wait until it answers. detach: outlive this process (`graspstack up`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=detach
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.2)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}; see {self.data_dir}/redis.log"
                )
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} not answering after {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: the crash case, nothing flushed on the way out."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        stop_popen(self.proc)

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()
