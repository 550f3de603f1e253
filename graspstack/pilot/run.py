"""`graspstack pilot --candidate VERSION`: promote a model through lab, pilot cell and production.

Each stage starts a pose service for the candidate (labelled with the stage), lets the lab robot
drive traffic at it (in production: a canary share beside the current version), and evaluates the
stage's gates against Prometheus every `interval_s`. Too many failed checks roll back (the
candidate service stops, the registry keeps the current version); a stage without data holds;
passing every stage promotes: the registry's active version changes and the running pose service
reloads it without a restart (SIGHUP).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from graspstack.pilot.config import Gate, PilotConfig, Stage
from graspstack.pilot.prometheus import Prometheus, PrometheusError
from graspstack.runtime import local
from graspstack.runtime.health import check
from graspstack.runtime.processes import stop_pid


@dataclass
class GateResult:
    gate: str
    query: str
    value: float | None
    threshold: float
    op: str
    passed: bool | None  # None: no data yet, or a miss within the noise
    verdict: str = ""  # pass | fail | inconclusive | no data
    count: float | None = None  # events the value rests on (gates with a count query)
    evidence_queries: tuple[str, ...] = ()  # count and share queries, run to weigh a miss


@dataclass
class StageResult:
    stage: str
    decision: str  # promote | rollback | hold
    started: float
    ended: float
    checks: list[list[GateResult]] = field(default_factory=list)
    robot: dict = field(default_factory=dict)
    settle_s: float = 0.0  # traffic before the analysis window opened
    planned_checks: int = 0  # checks beyond these gathered evidence for an inconclusive stage


def evaluate(
    prom: Prometheus, gates: list[Gate], version: str, stage: str, window_s: int, service: str
) -> list[GateResult]:
    def render(q: str) -> str:
        return q.format(version=version, stage=stage, window=f"{window_s}s", service=service)

    def query(q: str, gate: str) -> tuple[str, float | None]:
        expr = render(q)
        try:
            return expr, prom.scalar(expr)
        except PrometheusError as err:
            raise PrometheusError(f"gate {gate!r}: {err}\n{expr}") from err

    results = []
    for g in gates:
        expr, value = query(g.query, g.name)
        verdict = "no data" if value is None else "pass" if g.passes(value) else "fail"
        count = None
        if verdict == "fail" and g.count_query:
            count = query(g.count_query, g.name)[1]
            share = value if g.share_query is None else query(g.share_query, g.name)[1]
            if count is None or share is None or not g.significant_miss(share, count):
                verdict = "inconclusive"
        passed = {"pass": True, "fail": False}.get(verdict)  # None: no data, or a miss within the noise
        evidence = tuple(render(q) for q in (g.count_query, g.share_query) if q)
        results.append(GateResult(g.name, expr, value, g.threshold, g.op, passed, verdict, count, evidence))
    return results


class Traffic:
    """The lab robot in a thread, picking scene after scene until stopped."""

    def __init__(self, stage: Stage, pose_target: str, canary: str | None, redis_url: str):
        from graspstack.flywheel.producer import CaseProducer
        from lab.robot import LabRobot, Targets

        self.producer = CaseProducer.from_url(redis_url)
        self.robot = LabRobot(
            Targets(pose=pose_target),
            stage=stage.name,
            canary=canary,
            canary_weight=stage.canary_weight if canary else 0.0,
            hard_cases=self.producer,
        )
        self.stage = stage
        self.reports: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"robot-{stage.name}", daemon=True)

    def _run(self) -> None:
        from lab.scenes import render_scene

        index = 0
        while not self._stop.is_set():
            rendered = render_scene(self.robot.cell, self.stage.slice, self.stage.seed, index)
            self.reports.append(self.robot.pick(rendered, index))
            index += 1

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.robot.close()
        self.producer.close()

    def summary(self) -> dict:
        from lab.robot import summarize

        s = summarize(list(self.reports), self.stage.slice, self.stage.seed, "service")
        s.pop("scenes_detail")
        return s


def _start_candidate(candidate: str, stage: str, config: PilotConfig) -> int:
    exe = str(Path(sys.executable).with_name("graspstack"))
    env = {"GRASPSTACK_POSE_METRICS_PORT": str(config.candidate_metrics_port), "GRASPSTACK_POSE_STAGE": stage}
    pid = local.spawn(
        [exe, "serve", "pose", "--port", str(config.candidate_port), "--model", candidate],
        f"pose-candidate-{stage}",
        env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if check(f"127.0.0.1:{config.candidate_port}") == "SERVING":
            return pid
        time.sleep(0.3)
    stop_pid(pid)
    raise TimeoutError(f"candidate {candidate} not SERVING; see runs/local/logs/pose-candidate-{stage}.log")


def stage_decision(stage: Stage, checks: list[list[GateResult]]) -> str | None:
    """What the checks so far decide: promote, rollback or hold; None while the stage checks again.

    More than `failure_limit` failed checks roll back at once. After the planned checks, a clean last
    check promotes; a last check with a miss (within the noise, or a failure the limit allows) asks
    for more evidence, up to the stage's check limit, after which the stage holds for an operator.
    A stage whose last check has no data holds: no traffic reached the candidate.
    """
    failures = sum(any(c.passed is False for c in check) for check in checks)
    if failures > stage.failure_limit:
        return "rollback"
    if len(checks) < stage.checks:
        return None
    last = checks[-1]
    if all(c.passed for c in last):
        return "promote"
    unsettled = any(c.verdict in ("inconclusive", "fail") for c in last)
    return None if unsettled and len(checks) < stage.check_limit else "hold"


def run_stage(
    stage: Stage, candidate: str, current_target: str, prom: Prometheus, config: PilotConfig, log=print
) -> StageResult:
    pid = _start_candidate(candidate, stage.name, config)
    target = f"127.0.0.1:{config.candidate_port}"
    result = StageResult(
        stage.name, "hold", time.time(), 0.0, settle_s=stage.settle_s, planned_checks=stage.checks
    )
    try:
        canary = target if stage.canary_weight < 1.0 else None
        with Traffic(stage, current_target if canary else target, canary, config.redis_url) as traffic:
            time.sleep(stage.settle_s)
            opened = time.time()
            # From the stage's start the series' first (zero) sample must fall inside the window;
            # after a settle the window starts mid-traffic and increase() extrapolates to its edge.
            lead = 0.0 if stage.settle_s else config.scrape_settle_s
            decision = None
            while decision is None:
                time.sleep(stage.interval_s)
                window = int(time.time() - opened + lead)
                checks = evaluate(prom, stage.gates, candidate, stage.name, window, "pose-candidate")
                result.checks.append(checks)
                decision = stage_decision(stage, result.checks)
                log(
                    f"[{stage.name}] check {len(result.checks)}/{stage.checks}"
                    + (f" (of at most {stage.check_limit})" if len(result.checks) >= stage.checks else "")
                    + ": "
                    + ", ".join(
                        f"{c.gate}={'no data' if c.value is None else f'{c.value:.4g}'}"
                        + (" (within the noise)" if c.verdict == "inconclusive" else "")
                        for c in checks
                    )
                )
            result.decision = decision
            result.robot = traffic.summary()
    finally:
        stop_pid(pid)
        result.ended = time.time()
    return result


def await_candidate_alert(
    prom: Prometheus, candidate: str, wait_s: float, since: float | None = None, log=print
) -> dict | None:
    """After a rollback, the page an on-call engineer would get: the first alert that fires for the
    candidate's model version, and how long after the rollback at `since` (epoch seconds, default
    now) it was seen; None if none fired within wait_s.

    The gates act on seconds of evidence, the burn-rate alerts on minutes (and `for: 2m`), so the
    rollback comes first; this shows that monitoring, independently of the gates, caught the model.
    """
    started, since = time.monotonic(), since or time.time()
    log(f"rolled back; waiting up to {wait_s:.0f} s for an alert on {candidate}")
    while True:
        firing = [
            a
            for a in prom.alerts()
            if a["state"] == "firing" and a["labels"].get("model_version") == candidate
        ]
        waited = time.monotonic() - started
        if firing:
            name = firing[0]["labels"].get("alertname")
            after = time.time() - since
            log(f"{name} firing for {candidate}, {after:.0f} s after the rollback")
            return {"name": name, "labels": firing[0]["labels"], "seconds_after_rollback": round(after, 1)}
        if waited >= wait_s:
            log(f"no alert fired for {candidate} within {wait_s:.0f} s")
            return None
        time.sleep(5.0)


def run_pilot(
    candidate: str, config: PilotConfig | None = None, out_dir: str | Path | None = None, log=print
) -> dict:
    from prometheus_client import start_http_server

    from graspstack.pilot.report import write_report
    from graspstack.pose_model import registry

    config = config or PilotConfig.default()
    if not all(r["state"] in ("SERVING", "READY", "UP") for r in local.status() or [{"state": "DOWN"}]):
        log("starting the local system (graspstack up)")
        local.up()
    current = registry.active_version()
    if candidate == "degraded":
        from graspstack.pilot.degrade import make_degraded

        candidate = make_degraded(current)
        log(f"made degraded candidate {candidate} from {current}")
    if candidate not in registry.list_versions():
        raise ValueError(f"unknown candidate {candidate!r}; registry has {registry.list_versions()}")
    prom = Prometheus(config.prometheus_url)
    start_http_server(config.robot_metrics_port)  # the robot's accuracy and grasp metrics
    started = time.time()
    stages: list[StageResult] = []
    for stage in config.stages:
        log(f"stage {stage.name}: candidate {candidate}, current {current}")
        result = run_stage(stage, candidate, "127.0.0.1:50052", prom, config, log)
        stages.append(result)
        log(f"stage {stage.name}: {result.decision}")
        if result.decision != "promote":
            break
    promoted = len(stages) == len(config.stages) and stages[-1].decision == "promote"
    if promoted:
        registry.activate(candidate)
        for c in local.components():
            if c.name == "pose":
                os.kill(c.pid, signal.SIGHUP)  # the fleet's pose service reloads the active version
    outcome = {
        "candidate": candidate,
        "current": current,
        "promoted": promoted,
        "final_decision": "promoted" if promoted else stages[-1].decision if stages else "hold",
        "active_version": registry.active_version(),
        "started": started,
        "ended": time.time(),
        "stages": [asdict(s) for s in stages],
    }
    time.sleep(config.scrape_settle_s)
    try:
        if outcome["final_decision"] == "rollback":
            wait, rolled_back = config.alert_wait_s, stages[-1].ended
            outcome["rollback_alert"] = await_candidate_alert(prom, candidate, wait, rolled_back, log)
        outcome["alerts"] = [
            {"name": a["labels"].get("alertname"), "state": a["state"], "labels": a["labels"]}
            for a in prom.alerts()
        ]
    except PrometheusError as err:
        outcome["alerts_error"] = str(err)
    outcome["report"] = str(write_report(outcome, prom, out_dir))
    return outcome
