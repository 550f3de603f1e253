"""`graspstack up | down | status`: the whole local system as separate processes on default ports.

State lives in runs/local/: pids.json, logs/, redis/ (append-only file) and prometheus/ (TSDB).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from graspstack.runtime.health import check
from graspstack.runtime.processes import alive, stop_pid
from graspstack.runtime.redis_server import RedisServer
from services.settings import DEFAULT_PORTS, METRICS_PORT_OFFSET

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / "runs" / "local"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_PORT = 9090
REDIS_PORT = 6379
# Start order: dependencies first; the shadow before the pose service that mirrors to it.
SERVICES = ("camera", "grasp", "flywheel", "shadow", "pose")


@dataclass
class Component:
    name: str
    pid: int
    kind: str  # redis | prometheus | service
    port: int


def _state_file() -> Path:
    return STATE_DIR / "pids.json"


def _load() -> list[Component]:
    f = _state_file()
    return [Component(**c) for c in json.loads(f.read_text())] if f.exists() else []


def components() -> list[Component]:
    """What `graspstack up` started (running or not)."""
    return _load()


def _save(components: list[Component]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    _state_file().write_text(json.dumps([c.__dict__ for c in components], indent=1))


def spawn(cmd: list[str], log_name: str, env: dict | None = None) -> int:
    """Start a detached process logging to runs/local/logs/<log_name>.log; returns its pid."""
    logs = STATE_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{log_name}.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
    return proc.pid


def _start_prometheus() -> int | None:
    exe = shutil.which("prometheus")
    if exe is None:
        print("prometheus not installed (make setup installs it); continuing without it", file=sys.stderr)
        return None
    return spawn(
        [
            exe,
            f"--config.file={PROMETHEUS_CONFIG}",
            f"--storage.tsdb.path={STATE_DIR / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
            "--web.enable-lifecycle",
        ],
        "prometheus",
    )


def up(model: str = "", timeout_s: float = 120.0, services: tuple[str, ...] = SERVICES) -> list[Component]:
    if any(alive(c.pid) for c in _load()):
        raise RuntimeError(
            "the local system is already running: `graspstack status`, or `graspstack down` first"
        )
    components: list[Component] = []
    redis = RedisServer(STATE_DIR / "redis", port=REDIS_PORT).start(detach=True)
    components.append(Component("redis", redis.proc.pid, "redis", REDIS_PORT))
    pid = _start_prometheus()
    if pid:
        components.append(Component("prometheus", pid, "prometheus", PROMETHEUS_PORT))
    _save(components)
    exe = str(Path(sys.executable).with_name("graspstack"))
    for name in services:
        cmd = [exe, "serve", name] + (["--model", model] if name == "pose" and model else [])
        # The local system's pose service plays the production fleet's.
        env = {"GRASPSTACK_POSE_STAGE": "production"} if name == "pose" else None
        components.append(Component(name, spawn(cmd, name, env), "service", DEFAULT_PORTS[name]))
        _save(components)
    deadline = time.monotonic() + timeout_s
    waiting = set(services)
    while waiting and time.monotonic() < deadline:
        for c in components:
            if c.name in waiting:
                if not alive(c.pid):
                    raise RuntimeError(f"{c.name} exited during start-up; see {STATE_DIR}/logs/{c.name}.log")
                if check(f"127.0.0.1:{c.port}") == "SERVING":
                    waiting.discard(c.name)
        time.sleep(0.2)
    if waiting:
        raise TimeoutError(f"not SERVING after {timeout_s:.0f} s: {sorted(waiting)}; see {STATE_DIR}/logs/")
    return components


def down(timeout_s: float = 30.0) -> list[str]:
    """SIGTERM in reverse start order (services drain first, Redis flushes last)."""
    stopped = []
    for c in reversed(_load()):
        if alive(c.pid):
            stop_pid(c.pid, timeout_s)
            stopped.append(c.name)
    _state_file().unlink(missing_ok=True)
    return stopped


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def status() -> list[dict]:
    rows = []
    for c in _load():
        if c.kind == "service":
            state = check(f"127.0.0.1:{c.port}") if alive(c.pid) else "DOWN"
            metrics = f"http://127.0.0.1:{c.port + METRICS_PORT_OFFSET}/metrics"
        elif c.kind == "prometheus":
            state = "READY" if _http_ok(f"http://127.0.0.1:{c.port}/-/ready") else "DOWN"
            metrics = f"http://127.0.0.1:{c.port}"
        else:
            state = "UP" if alive(c.pid) else "DOWN"
            metrics = ""
        rows.append({"name": c.name, "pid": c.pid, "port": c.port, "state": state, "metrics": metrics})
    return rows
