"""A Debian `prometheus` process owned by us, for tests and tools that need a real one."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml


class PrometheusServer:
    def __init__(
        self,
        data_dir: str | Path,
        port: int,
        targets: dict[str, str],
        scrape_interval: str = "1s",
        rule_files: list[str] | None = None,
    ):
        """targets: service label -> host:port of a /metrics endpoint."""
        self.data_dir = Path(data_dir)
        self.port = port
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.rule_files = rule_files or []
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": self.rule_files,
            "scrape_configs": [
                {
                    "job_name": "graspstack",
                    "static_configs": [
                        {"targets": [t], "labels": {"service": s}} for s, t in self.targets.items()
                    ],
                }
            ],
        }
        path = self.data_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        exe = shutil.which("prometheus")
        if exe is None:
            raise FileNotFoundError("prometheus not found: run `make setup` (installs Debian's prometheus)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            exe,
            f"--config.file={self._config()}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"prometheus on port {self.port} not ready after {timeout_s} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
