"""Stopping processes the same way everywhere: SIGTERM, a grace period to drain, then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether pid runs. Our own exited children are reaped here, so they never linger as zombies
    that a plain `kill(pid, 0)` would still report as running."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def stop_pid(pid: int, grace_s: float = 30.0) -> None:
    """SIGTERM, wait up to grace_s for a clean exit, then SIGKILL."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)


def stop_popen(proc: subprocess.Popen | None, grace_s: float = 10.0) -> None:
    """The same for a process we hold a Popen of."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
