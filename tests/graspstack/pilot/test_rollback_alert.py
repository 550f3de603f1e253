"""After a rollback the pilot waits for monitoring's own verdict: the project's burn-rate alerts,
evaluated by a real Prometheus over real scraped metrics, fire for the bad version and not the good."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter

from graspstack.pilot.run import await_candidate_alert

pytestmark = pytest.mark.integration
RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules"


@pytest.fixture
def robot_metrics(tmp_path, scraped_registry):
    """The robot's accuracy counters, scraped every second under the shipped rules. The alerts'
    `for: 2m` is shortened to 0s so the test takes seconds; their expressions are as shipped."""
    alerts = yaml.safe_load((RULES / "alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(alerts))
    registry = CollectorRegistry()
    labels = ["model_version", "stage", "class_name"]
    evaluated = Counter("graspstack_pose_objects_evaluated_total", "", labels, registry=registry)
    within = Counter("graspstack_pose_objects_within_spec_total", "", labels, registry=registry)
    rule_files = [str(RULES / "recording.yml"), str(tmp_path / "alerts.yml")]
    yield evaluated, within, scraped_registry(registry, "robot", rule_files)


def test_the_bad_versions_accuracy_alert_is_awaited_and_the_good_one_gets_none(robot_metrics):
    evaluated, within = robot_metrics[:2]
    prom = robot_metrics[2]
    for version in ("bad", "good"):
        evaluated.labels(version, "lab", "duck").inc(0)
        within.labels(version, "lab", "duck").inc(0)
    time.sleep(2)  # the zero samples first, so rate() sees the traffic that follows
    for _ in range(5):
        evaluated.labels("bad", "lab", "duck").inc(20)
        evaluated.labels("good", "lab", "duck").inc(20)
        within.labels("good", "lab", "duck").inc(20)
        time.sleep(1)

    page = await_candidate_alert(prom, "bad", wait_s=30, log=lambda _: None)
    assert page is not None and page["name"] == "PoseAccuracyBudgetFastBurn", page
    assert page["labels"]["stage"] == "lab"
    assert await_candidate_alert(prom, "good", wait_s=3, log=lambda _: None) is None
