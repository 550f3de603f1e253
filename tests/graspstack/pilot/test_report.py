"""The pilot report says why a stage held: misses within the noise are named, not shown as failures."""

from __future__ import annotations

import json

from graspstack.pilot.prometheus import Prometheus
from graspstack.pilot.report import write_report
from graspstack.runtime.redis_server import free_port


def _gate(name: str, value: float, verdict: str, count: float | None = None) -> dict:
    passed = {"pass": True, "fail": False}.get(verdict)
    return {
        "gate": name,
        "query": "q",
        "value": value,
        "threshold": 0.9,
        "op": ">=",
        "passed": passed,
        "verdict": verdict,
        "count": count,
        "evidence_queries": ["n"] if count is not None else [],
    }


def test_held_stage_names_the_inconclusive_gates(tmp_path):
    outcome = {
        "candidate": "v9",
        "current": "v8",
        "promoted": False,
        "final_decision": "hold",
        "active_version": "v8",
        "started": 0.0,
        "ended": 60.0,
        "stages": [
            {
                "stage": "lab",
                "decision": "hold",
                "started": 0.0,
                "ended": 60.0,
                "robot": {"scenes": 10},
                "settle_s": 10.0,
                "planned_checks": 1,
                "checks": [
                    [_gate("within-spec ratio", 0.93, "pass")],
                    [_gate("within-spec ratio", 0.884, "inconclusive", 428)],
                ],
            }
        ],
        "alerts": [],
    }
    # Nothing listens on this port: the overview's queries fail and the report goes on without it.
    report = write_report(outcome, Prometheus(f"http://127.0.0.1:{free_port()}", timeout_s=0.5), tmp_path)
    text = report.read_text()
    assert "| 2 | within-spec ratio | 0.884 | >= 0.9 | miss within the noise (428 events) |" in text
    assert "Held: the last check's misses (within-spec ratio) are within sampling noise" in text
    assert "- within-spec ratio: `q`\n  - evidence: `n`" in text  # the query the miss was weighed by
    assert "opened after 10 s of traffic; 2 checks (1 beyond the 1 planned, for evidence)" in text
    assert "FAIL" not in text
    assert json.loads((report.parent / "pilot.json").read_text())["final_decision"] == "hold"


def test_a_rollback_report_says_whether_monitoring_paged(tmp_path):
    stage = {"stage": "lab", "decision": "rollback", "started": 0.0, "ended": 30.0, "robot": {}, "checks": []}
    outcome = {
        "candidate": "bad",
        "current": "v8",
        "promoted": False,
        "final_decision": "rollback",
        "active_version": "v8",
        "started": 0.0,
        "ended": 30.0,
        "stages": [stage],
        "alerts": [],
        "rollback_alert": {"name": "PoseAccuracyBudgetFastBurn", "labels": {}, "seconds_after_rollback": 84},
    }
    prom = Prometheus(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    text = write_report(outcome, prom, tmp_path / "paged").read_text()
    assert "PoseAccuracyBudgetFastBurn fired for `bad` 84 s after the rollback" in text
    outcome["rollback_alert"] = None
    text = write_report(outcome, prom, tmp_path / "silent").read_text()
    assert "no alert fired for `bad`" in text
