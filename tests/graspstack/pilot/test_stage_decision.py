"""When a stage promotes, rolls back, holds or checks again (no network: the checks are given)."""

from __future__ import annotations

from graspstack.pilot.config import PilotConfig, Stage
from graspstack.pilot.run import GateResult, stage_decision


def _check(*verdicts: str) -> list[GateResult]:
    passed = {"pass": True, "fail": False}
    return [GateResult(f"gate {k}", "q", 0.5, 0.9, ">=", passed.get(v), v) for k, v in enumerate(verdicts)]


def _stage(**kw) -> Stage:
    return Stage(name="lab", seed=9201, gates=[], **kw)


PASS, NOISE = _check("pass", "pass"), _check("pass", "inconclusive")
FAIL, EMPTY = _check("fail"), _check("no data")


def test_the_planned_checks_run_before_a_clean_stage_promotes():
    stage = _stage(checks=3)
    assert stage_decision(stage, [PASS]) is None
    assert stage_decision(stage, [PASS, PASS]) is None
    assert stage_decision(stage, [PASS, PASS, PASS]) == "promote"


def test_a_significant_miss_rolls_back_at_once():
    assert stage_decision(_stage(checks=3), [FAIL]) == "rollback"
    assert stage_decision(_stage(checks=3), [PASS, FAIL]) == "rollback"


def test_a_failure_within_the_limit_asks_for_more_checks():
    stage = _stage(checks=2, failure_limit=1)
    assert stage_decision(stage, [PASS, FAIL]) is None
    assert stage_decision(stage, [PASS, FAIL, PASS]) == "promote"
    assert stage_decision(stage, [PASS, FAIL, FAIL]) == "rollback"


def test_an_inconclusive_end_gathers_evidence_up_to_the_check_limit_then_holds():
    stage = _stage(checks=3)
    assert stage.check_limit == 6  # twice the planned checks unless max_checks says otherwise
    assert stage_decision(stage, [PASS, PASS, NOISE]) is None
    assert stage_decision(stage, [PASS, PASS, NOISE, PASS]) == "promote"
    assert stage_decision(stage, [PASS, PASS, NOISE, NOISE, NOISE, NOISE]) == "hold"
    # ... and a miss that the growing window makes significant rolls back.
    assert stage_decision(stage, [PASS, PASS, NOISE, FAIL]) == "rollback"


def test_max_checks_bounds_the_extension():
    assert stage_decision(_stage(checks=3, max_checks=3), [PASS, PASS, NOISE]) == "hold"
    assert stage_decision(_stage(checks=3, max_checks=4), [PASS, PASS, NOISE]) is None
    assert _stage(checks=3, max_checks=1).check_limit == 3  # never fewer than planned


def test_no_traffic_holds():
    assert stage_decision(_stage(checks=2), [EMPTY, EMPTY]) == "hold"


def test_the_production_canary_gets_checks_for_the_evidence_of_a_full_stage():
    stages = {s.name: s for s in PilotConfig.default().stages}
    canary = stages["production"]
    assert canary.checks * canary.canary_weight >= stages["lab"].checks
    assert all(s.settle_s > 0 for s in stages.values())
