"""A Debian `prometheus` process owned by us, for tests and tools that need a real one."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml

from graspstack.runtime.processes import stop_popen


def scrape_config(
    targets: dict[str, str], scrape_interval: str = "1s", rule_files: list[str] | None = None
) -> dict:
    """One `graspstack` job scraping each target (service label -> host:port of a /metrics endpoint)."""
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": rule_files or [],
        "scrape_configs": [
            {
                "job_name": "graspstack",
                "static_configs": [{"targets": [t], "labels": {"service": s}} for s, t in targets.items()],
            }
        ],
    }


class PrometheusServer:
    def __init__(self, data_dir: str | Path, port: int, config: dict):
        self.data_dir = Path(data_dir)
        self.port = port
        self.config = config
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "prometheus.log"

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        exe = shutil.which("prometheus")
        if exe is None:
            raise FileNotFoundError("prometheus not found: run `make setup` (installs Debian's prometheus)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.data_dir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config))
        cmd = [
            exe,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_file.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"prometheus on port {self.port} not ready after {timeout_s} s")

    def stop(self) -> None:
        stop_popen(self.proc)
