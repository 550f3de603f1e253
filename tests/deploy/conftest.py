"""Shared tools for the deployment checks: promtool, a real Prometheus, dashboard query helpers.

Test modules reach the helpers through fixtures (`grafana`, `start_prometheus`): with pytest's
importlib import mode a conftest is not importable by name.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from graspstack.runtime.prometheus_server import PrometheusServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCE_FILE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

# Grafana's own variables, and what the query checks put in their place.
BUILTIN_VARS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__interval_ms": "60000",
}


def need(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed (`make setup` installs Debian's prometheus, with promtool)")
    return exe


@pytest.fixture(scope="session")
def promtool() -> str:
    return need("promtool")


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


def load_dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


def datasource_uid() -> str:
    (ds,) = yaml.safe_load(DATASOURCE_FILE.read_text())["datasources"]
    return ds["uid"]


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Put concrete values in place of $var, ${var} and [[var]], as Grafana would before querying."""

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return variables.get(name, BUILTIN_VARS.get(name, m.group(0)))

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def panel_queries(dashboard: dict) -> list[tuple[dict, dict, str]]:
    """(panel, target, expr with variables set to match everything) for every query target."""
    all_values = {v["name"]: v.get("allValue") or ".*" for v in dashboard["templating"]["list"]}
    return [
        (p, t, substitute(t["expr"], all_values))
        for p in panels(dashboard)
        for t in p.get("targets", [])
        if "expr" in t
    ]


def metric_names(expr: str) -> set[str]:
    """Metric (and recorded series) names in a PromQL expression: identifiers left once label
    matchers, grouping clauses, strings and function calls are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery windows
    names = set(re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", expr))
    keywords = {"and", "or", "unless", "offset", "bool", "inf", "nan", "by", "without", "on", "ignoring"}
    return {n for n in names if n.lower() not in keywords}


class Prometheus(PrometheusServer):
    """A Debian `prometheus` process on a free port with its own TSDB in a temporary folder."""

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/...; returns the JSON body, error responses (400, 422) included."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as err:
            return json.load(err)


@pytest.fixture(scope="session")
def grafana() -> SimpleNamespace:
    return SimpleNamespace(
        load_dashboards=load_dashboards,
        datasource_uid=datasource_uid,
        panels=panels,
        substitute=substitute,
        panel_queries=panel_queries,
        metric_names=metric_names,
    )


@pytest.fixture(scope="session")
def promql_names():
    return metric_names


@pytest.fixture
def start_prometheus(tmp_path):
    """start_prometheus(config_dict) -> a started Prometheus on a free port, stopped after the test."""
    from graspstack.runtime.redis_server import free_port

    started: list[Prometheus] = []

    def _start(config: dict) -> Prometheus:
        workdir = tmp_path / f"prometheus{len(started)}"
        workdir.mkdir()
        prom = Prometheus(workdir, free_port(), config)
        started.append(prom)
        return prom.start()

    yield _start
    for prom in started:
        prom.stop()
