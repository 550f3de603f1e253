"""Pilot stages and their gates. The defaults are the product requirements; a YAML file may override.

A gate is a PromQL expression over the stage's analysis window with a threshold. A stage runs
`checks` evaluations `interval_s` apart while the lab robot drives traffic; more than
`failure_limit` failed checks roll the candidate back, and a stage whose checks never see data holds.
With a count query a gate fails only on a miss that sampling noise does not explain; a smaller miss
is "inconclusive": it fails no check. A stage whose planned checks end inconclusive goes on checking
(its window, and so its evidence, keeps growing) up to `max_checks`, and holds if that does not
settle it. The analysis window opens `settle_s` after the stage's traffic starts: the first seconds
of a new candidate (and of a system just brought up) say nothing about how it serves.
"""

from __future__ import annotations

from math import sqrt
from pathlib import Path
from statistics import NormalDist
from typing import Literal

import yaml
from pydantic import BaseModel, Field

# {version}, {stage}, {window} and {service} are filled in per stage and check.
_SELECT = '{{model_version="{version}",stage="{stage}"}}[{window}]'
WITHIN_SPEC = (
    f"sum(increase(graspstack_pose_objects_within_spec_total{_SELECT}))"
    f" / sum(increase(graspstack_pose_objects_evaluated_total{_SELECT}))"
)
P99_LATENCY = (
    f"histogram_quantile(0.99, sum by (le) (increase(graspstack_pose_latency_seconds_bucket{_SELECT})))"
)
GRASP_SUCCESS = (
    f"sum(increase(graspstack_grasp_successes_total{_SELECT}))"
    f" / sum(increase(graspstack_grasp_attempts_total{_SELECT}))"
)
# What each gate's value rests on: the events counted in the window. A miss on a handful of events
# is not evidence (one slow request in 50 is "p99 over budget"), so with a count a gate fails only on
# a statistically significant miss; a miss within the noise is "inconclusive" (see significant_miss).
EVALUATED = f"sum(increase(graspstack_pose_objects_evaluated_total{_SELECT}))"
REQUESTS = f"sum(increase(graspstack_pose_latency_seconds_count{_SELECT}))"
# p99 under 0.1 s means at most 1% of requests over 0.1 s: the p99 gate's evidence is that share.
SLOW_SHARE = (
    f'1 - sum(increase(graspstack_pose_latency_seconds_bucket{{{{model_version="{{version}}",'
    f'stage="{{stage}}",le="0.1"}}}}[{{window}}])) / {REQUESTS}'
)
ATTEMPTS = f"sum(increase(graspstack_grasp_attempts_total{_SELECT}))"
HANDLED = (
    'sum(increase(grpc_server_handled_total{{service="{service}",grpc_method="EstimatePoses"}}[{window}]))'
)
ERROR_RATIO = (
    '(sum(increase(grpc_server_handled_total{{service="{service}",grpc_method="EstimatePoses",grpc_code!="OK"}}'
    "[{window}])) or vector(0)) / sum(increase(grpc_server_handled_total"
    '{{service="{service}",grpc_method="EstimatePoses"}}[{window}]))'
)


class Gate(BaseModel):
    name: str
    query: str
    op: Literal[">=", "<="]
    threshold: float
    count_query: str | None = Field(default=None, description="events behind the value; none: any miss fails")
    share_query: str | None = Field(
        default=None, description="for a quantile gate: share of events beyond the limit (else the value)"
    )
    share_threshold: float | None = Field(default=None, description="the share allowed (else threshold)")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="a miss must be this certain to fail")

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def significant_miss(self, share: float, count: float) -> bool:
        """Whether a share observed over `count` events misses the gate beyond sampling noise."""
        limit = self.threshold if self.share_threshold is None else self.share_threshold
        return significant_miss(share, count, limit, self.op, self.confidence)


def significant_miss(share: float, count: float, limit: float, op: str, confidence: float) -> bool:
    """One-sided Wilson score test: is the true share on the wrong side of `limit`?

    op ">=": the share must reach `limit`; it is a significant miss when even the interval's upper
    bound is below it. op "<=": when even the lower bound is above it. Within-spec at 0.897 over 150
    objects (upper bound 0.94) is no evidence that a model is under 0.90; 0.4 over 50 objects is.
    """
    if count <= 0:
        return False
    z = NormalDist().inv_cdf(confidence)
    n = float(count)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre + half < limit if op == ">=" else centre - half > limit


def default_gates(within_spec: float, grasp_success: float) -> list[Gate]:
    return [
        Gate(
            name="within-spec ratio", query=WITHIN_SPEC, op=">=", threshold=within_spec, count_query=EVALUATED
        ),
        Gate(
            name="pose p99 latency (s)",
            query=P99_LATENCY,
            op="<=",
            threshold=0.1,
            count_query=REQUESTS,
            share_query=SLOW_SHARE,
            share_threshold=0.01,
        ),
        Gate(
            name="grasp success ratio",
            query=GRASP_SUCCESS,
            op=">=",
            threshold=grasp_success,
            count_query=ATTEMPTS,
        ),
        Gate(name="pose error ratio", query=ERROR_RATIO, op="<=", threshold=0.01, count_query=HANDLED),
    ]


class Stage(BaseModel):
    name: Literal["lab", "pilot", "production"]
    slice: Literal["nominal", "hard"] = "nominal"
    seed: int = Field(description="held-out lab seed for this stage's scenes (>= 9000)")
    canary_weight: float = Field(default=1.0, gt=0, le=1, description="share of traffic to the candidate")
    checks: int = Field(default=3, ge=1)
    max_checks: int | None = Field(
        default=None, description="while the last check is inconclusive, check again up to this (2 x checks)"
    )
    interval_s: float = Field(default=15.0, gt=0)
    settle_s: float = Field(default=10.0, ge=0, description="traffic before the analysis window opens")
    failure_limit: int = Field(default=0, ge=0)
    gates: list[Gate]

    @property
    def check_limit(self) -> int:
        return max(self.checks, self.max_checks if self.max_checks is not None else 2 * self.checks)


class PilotConfig(BaseModel):
    stages: list[Stage]
    candidate_port: int = 50062
    candidate_metrics_port: int = 9062
    robot_metrics_port: int = 9060
    prometheus_url: str = "http://127.0.0.1:9090"
    redis_url: str = "redis://127.0.0.1:6379/0"
    scrape_settle_s: float = Field(default=7.0, description="wait for a scrape before a check")
    alert_wait_s: float = Field(
        default=180.0, ge=0, description="after a rollback, how long to wait for the candidate's alert"
    )

    @classmethod
    def load(cls, path: str | Path | None = None) -> PilotConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text())) if path else cls.default()

    @classmethod
    def default(cls) -> PilotConfig:
        return cls(
            stages=[
                Stage(name="lab", seed=9201, gates=default_gates(within_spec=0.9, grasp_success=0.85)),
                Stage(name="pilot", seed=9202, gates=default_gates(within_spec=0.9, grasp_success=0.85)),
                # The canary sees half the robot's traffic: twice the checks gather the same evidence.
                Stage(
                    name="production",
                    seed=9203,
                    canary_weight=0.5,
                    checks=6,
                    gates=default_gates(within_spec=0.9, grasp_success=0.85),
                ),
            ]
        )
