"""Pilot gates evaluated by a real Prometheus scraping real metrics."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from graspstack.pilot.config import PilotConfig
from graspstack.pilot.prometheus import Prometheus
from graspstack.pilot.run import evaluate

pytestmark = pytest.mark.integration


@pytest.fixture
def scraped(scraped_registry):
    """Our metric names in a private registry, exposed over HTTP and scraped every second."""
    registry = CollectorRegistry()
    labels = ["model_version", "stage", "class_name"]
    m = {
        "evaluated": Counter("graspstack_pose_objects_evaluated_total", "", labels, registry=registry),
        "within": Counter("graspstack_pose_objects_within_spec_total", "", labels, registry=registry),
        "attempts": Counter(
            "graspstack_grasp_attempts_total", "", ["model_version", "stage"], registry=registry
        ),
        "successes": Counter(
            "graspstack_grasp_successes_total", "", ["model_version", "stage"], registry=registry
        ),
        "latency": Histogram(
            "graspstack_pose_latency_seconds",
            "",
            ["service", "model_version", "stage"],
            buckets=(0.05, 0.1, 0.2),
            registry=registry,
        ),
        "handled": Counter("grpc_server_handled_total", "", ["grpc_method", "grpc_code"], registry=registry),
    }
    yield m, scraped_registry(registry, "pose-candidate")


def _wait_for_scrapes(prom: Prometheus, metric: str, minimum: int = 2) -> None:
    deadline = time.time() + 20
    while time.time() < deadline:
        result = prom.query(f"count_over_time({metric}[1m])")
        if result and float(result[0]["value"][1]) >= minimum:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{metric} not scraped")


def _start_series(m: dict, prom: Prometheus, versions: tuple[str, ...]) -> None:
    """Initialise the series at zero first, as a running service would, so increase() sees it all."""
    for version in versions:
        for k in ("evaluated", "within"):
            m[k].labels(version, "lab", "duck").inc(0)
        m["attempts"].labels(version, "lab").inc(0)
        m["successes"].labels(version, "lab").inc(0)
        m["latency"].labels("pose", version, "lab")
    m["handled"].labels("EstimatePoses", "OK").inc(0)
    _wait_for_scrapes(prom, "graspstack_pose_objects_evaluated_total")


def test_good_candidate_passes_and_bad_one_fails(scraped):
    m, prom = scraped
    _start_series(m, prom, ("good", "bad"))
    for version, ok_share, latency in (("good", 0.95, 0.03), ("bad", 0.4, 0.15)):
        m["evaluated"].labels(version, "lab", "duck").inc(100)
        m["within"].labels(version, "lab", "duck").inc(100 * ok_share)
        m["attempts"].labels(version, "lab").inc(20)
        m["successes"].labels(version, "lab").inc(20 * ok_share)
        for _ in range(50):
            m["latency"].labels("pose", version, "lab").observe(latency)
    m["handled"].labels("EstimatePoses", "OK").inc(100)
    time.sleep(3)
    gates = PilotConfig.default().stages[0].gates
    good = {r.gate: r for r in evaluate(prom, gates, "good", "lab", 60, "pose-candidate")}
    bad = {r.gate: r for r in evaluate(prom, gates, "bad", "lab", 60, "pose-candidate")}
    assert all(r.passed for r in good.values()), {k: (r.value, r.passed) for k, r in good.items()}
    assert abs(good["within-spec ratio"].value - 0.95) < 0.02
    assert good["pose p99 latency (s)"].value <= 0.1
    assert good["pose error ratio"].value == 0.0
    assert bad["within-spec ratio"].passed is False and bad["pose p99 latency (s)"].passed is False
    assert bad["grasp success ratio"].passed is False


def test_a_version_without_traffic_has_no_data(scraped):
    _, prom = scraped
    results = evaluate(prom, PilotConfig.default().stages[0].gates, "absent", "lab", 60, "pose-candidate")
    assert results[0].value is None and results[0].passed is None


def test_a_miss_within_the_noise_is_inconclusive_and_a_clear_one_fails(scraped):
    m, prom = scraped
    _start_series(m, prom, ("edge", "worse"))
    # edge: 88 of 100 within spec and 1 request in 50 over 0.1 s, just under the 0.9 and p99 gates;
    # worse: 75 of 100 and 10 in 50, which no sampling noise explains.
    for version, within, slow in (("edge", 88, 1), ("worse", 75, 10)):
        m["evaluated"].labels(version, "lab", "duck").inc(100)
        m["within"].labels(version, "lab", "duck").inc(within)
        m["attempts"].labels(version, "lab").inc(20)
        m["successes"].labels(version, "lab").inc(20)
        for k in range(50):
            m["latency"].labels("pose", version, "lab").observe(0.15 if k < slow else 0.03)
    m["handled"].labels("EstimatePoses", "OK").inc(100)
    time.sleep(3)
    gates = PilotConfig.default().stages[0].gates
    edge = {r.gate: r for r in evaluate(prom, gates, "edge", "lab", 60, "pose-candidate")}
    worse = {r.gate: r for r in evaluate(prom, gates, "worse", "lab", 60, "pose-candidate")}
    for name in ("within-spec ratio", "pose p99 latency (s)"):
        assert edge[name].verdict == "inconclusive" and edge[name].passed is None, edge[name]
        # increase() extrapolates to the window edges, so the count is only near the events sent
        assert edge[name].count == pytest.approx(100 if name.startswith("within") else 50, rel=0.25)
        assert worse[name].verdict == "fail" and worse[name].passed is False, worse[name]
    assert edge["grasp success ratio"].verdict == "pass"
    # The report shows what a miss was weighed by: the count query, and for p99 the slow share.
    assert len(edge["pose p99 latency (s)"].evidence_queries) == 2
    assert all('model_version="edge"' in q for q in edge["pose p99 latency (s)"].evidence_queries)
