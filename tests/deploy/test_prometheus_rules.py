"""Prometheus config, recording and alerting rules: promtool's checks and unit tests, plus the
cross-checks promtool cannot make (every metric a rule names exists, every alert is tested both
firing and silent)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from graspstack import metrics
from services.settings import DEFAULT_PORTS, METRICS_PORT_OFFSET

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
CONFIGS = [PROM / "prometheus.yml", PROM / "prometheus-compose.yml"]
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)


def exported_names() -> set[str]:
    """Every series name graspstack/metrics.py can expose, suffixes included."""
    names = set()
    for obj in vars(metrics).values():
        if not isinstance(obj, MetricWrapperBase):
            continue
        name, kind = obj._name, obj._type
        if kind == "counter":
            names |= {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
        else:
            names.add(name)
    return names


def rules() -> list[dict]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid(promtool, config):
    # Also loads and checks every rule file the config names.
    result = _promtool(promtool, "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_valid(promtool):
    result = _promtool(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_rule_unit_tests_pass(promtool, test_file):
    result = _promtool(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_silent():
    alerts = {r["alert"] for r in rules() if "alert" in r}
    fired, silent = set(), set()
    for f in TEST_FILES:
        for case in yaml.safe_load(f.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (fired if t.get("exp_alerts") else silent).add(t["alertname"])
    assert alerts == {
        "PoseLatencyBudgetFastBurn",
        "PoseLatencyBudgetSlowBurn",
        "PoseAccuracyBudgetFastBurn",
        "PoseAccuracyBudgetSlowBurn",
        "ServiceDown",
        "FlywheelStuck",
    }
    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown silent"


def test_rules_name_only_exported_metrics(promql_names):
    # A typo in a metric name is valid PromQL that silently matches nothing: check names here.
    known = exported_names() | {"up", "vector"} | {r["record"] for r in rules() if "record" in r}
    used = {n for r in rules() for n in promql_names(r["expr"])}
    assert "graspstack_pose_objects_within_spec_total" in used  # the parser finds names at all
    assert used - known == set()


def test_slo_thresholds_follow_the_requirement():
    # The latency SLO's good events are the 0.1 s bucket, which must exist in the histogram.
    assert 0.1 in metrics.LATENCY_BUCKETS_S
    exprs = {r["record"]: r["expr"] for r in rules() if "record" in r}
    slo = {k: e for k, e in exprs.items() if k.startswith("graspstack:pose_latency_slo_errors")}
    assert len(slo) == 4 and all('le="0.1"' in e for e in slo.values())
    windows = {k.rsplit("_", 1)[1] for k in exprs if k.startswith("graspstack:pose_accuracy_slo_errors")}
    assert windows == {"rate5m", "rate30m", "rate1h", "rate6h"}


def test_local_config_scrapes_every_service_and_the_robot():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {
        (job["job_name"], t, sc["labels"]["service"])
        for job in config["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
        if "labels" in sc
    }
    for service, port in DEFAULT_PORTS.items():
        assert ("graspstack", f"127.0.0.1:{port + METRICS_PORT_OFFSET}", service) in targets
    assert ("graspstack-robot", "127.0.0.1:9060", "robot") in targets
    assert config["rule_files"] == ["rules/*.yml"]
