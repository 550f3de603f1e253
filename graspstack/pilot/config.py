"""Pilot stages and their gates. The defaults are the product requirements; a YAML file may override.

A gate is a PromQL expression over the stage's analysis window with a threshold. A stage runs
`checks` evaluations `interval_s` apart while the lab robot drives traffic; more than
`failure_limit` failed checks roll the candidate back, and a stage whose checks never see data holds.
"""

from __future__ import annotations

from pathlib import Path
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

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


def default_gates(within_spec: float, grasp_success: float) -> list[Gate]:
    return [
        Gate(name="within-spec ratio", query=WITHIN_SPEC, op=">=", threshold=within_spec),
        Gate(name="pose p99 latency (s)", query=P99_LATENCY, op="<=", threshold=0.1),
        Gate(name="grasp success ratio", query=GRASP_SUCCESS, op=">=", threshold=grasp_success),
        Gate(name="pose error ratio", query=ERROR_RATIO, op="<=", threshold=0.01),
    ]


class Stage(BaseModel):
    name: Literal["lab", "pilot", "production"]
    slice: Literal["nominal", "hard"] = "nominal"
    seed: int = Field(description="held-out lab seed for this stage's scenes (>= 9000)")
    canary_weight: float = Field(default=1.0, gt=0, le=1, description="share of traffic to the candidate")
    checks: int = Field(default=3, ge=1)
    interval_s: float = Field(default=15.0, gt=0)
    failure_limit: int = Field(default=0, ge=0)
    gates: list[Gate]


class PilotConfig(BaseModel):
    stages: list[Stage]
    candidate_port: int = 50062
    candidate_metrics_port: int = 9062
    robot_metrics_port: int = 9060
    prometheus_url: str = "http://127.0.0.1:9090"
    redis_url: str = "redis://127.0.0.1:6379/0"
    scrape_settle_s: float = Field(default=7.0, description="wait for a scrape before a check")

    @classmethod
    def load(cls, path: str | Path | None = None) -> PilotConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text())) if path else cls.default()

    @classmethod
    def default(cls) -> PilotConfig:
        return cls(
            stages=[
                Stage(name="lab", seed=9201, gates=default_gates(within_spec=0.9, grasp_success=0.85)),
                Stage(name="pilot", seed=9202, gates=default_gates(within_spec=0.9, grasp_success=0.85)),
                Stage(
                    name="production",
                    seed=9203,
                    canary_weight=0.5,
                    gates=default_gates(within_spec=0.9, grasp_success=0.85),
                ),
            ]
        )
