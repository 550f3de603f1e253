"""Hard-case triggers: which pose answers are worth a label, under a versioned threshold config.

Each fired trigger names itself and carries the config version, so a case caught under old
thresholds can be told apart from one caught under new ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from graspstack.frames import ObjectPose

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "models" / "flywheel" / "triggers.json"

LOW_CONFIDENCE = "low_confidence"
SHADOW_DISAGREEMENT = "shadow_disagreement"
GRASP_FAILURE = "grasp_failure"
GT_ERROR = "gt_error"
TRIGGERS = (LOW_CONFIDENCE, SHADOW_DISAGREEMENT, GRASP_FAILURE, GT_ERROR)


@dataclass(frozen=True)
class TriggerConfig:
    version: str
    low_confidence: float = 0.5  # an object reported below this confidence
    shadow_position_m: float = 0.02  # model and shadow further apart than this
    shadow_angle_deg: float = 10.0
    shadow_unmatched_fires: bool = False  # the shadow missing an object counts as disagreement
    gt_position_m: float = 0.01  # the requirement (CONTRACTS section 4): out of spec is a hard case
    gt_angle_deg: float = 5.0

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CONFIG) -> TriggerConfig:
        data = json.loads(Path(path).read_text())
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if not fields.get("version"):
            raise ValueError(f"{path}: trigger config needs a non-empty 'version'")
        return cls(**fields)


class Disagreement(Protocol):  # graspstack.serving.shadow.Disagreement
    class_name: str
    position_m: float | None
    angle_deg: float | None


class GroundTruthError(Protocol):  # graspstack.metric.ObjectRecord
    class_name: str
    te_m: float | None
    re_deg: float | None


@dataclass
class Fired:
    trigger: str
    config_version: str
    detail: dict = field(default_factory=dict)


def evaluate(
    config: TriggerConfig,
    poses: Sequence[ObjectPose],
    disagreements: Iterable[Disagreement] | None = None,
    gt_errors: Iterable[GroundTruthError] | None = None,
    grasp_failed: bool = False,
) -> list[Fired]:
    """Every trigger the answer fires, at most once each, with the objects that fired it."""
    fired: list[Fired] = []

    low = [
        {"class": p.class_name, "confidence": round(float(p.confidence), 4)}
        for p in poses
        if p.confidence < config.low_confidence
    ]
    if low:
        fired.append(
            Fired(LOW_CONFIDENCE, config.version, {"objects": low, "threshold": config.low_confidence})
        )

    far = []
    for d in disagreements or ():
        if d.position_m is None:
            if config.shadow_unmatched_fires:
                far.append({"class": d.class_name, "unmatched": True})
        elif d.position_m > config.shadow_position_m or (d.angle_deg or 0.0) > config.shadow_angle_deg:
            far.append(
                {
                    "class": d.class_name,
                    "position_m": round(d.position_m, 5),
                    "angle_deg": round(d.angle_deg or 0, 3),
                }
            )
    if far:
        fired.append(
            Fired(
                SHADOW_DISAGREEMENT,
                config.version,
                {
                    "objects": far,
                    "position_m": config.shadow_position_m,
                    "angle_deg": config.shadow_angle_deg,
                },
            )
        )

    if grasp_failed:
        fired.append(Fired(GRASP_FAILURE, config.version, {}))

    wrong = []
    for r in gt_errors or ():
        if r.te_m is None or r.re_deg is None:
            wrong.append({"class": r.class_name, "missed": True})
        elif r.te_m >= config.gt_position_m or r.re_deg >= config.gt_angle_deg:
            wrong.append({"class": r.class_name, "te_m": round(r.te_m, 5), "re_deg": round(r.re_deg, 3)})
    if wrong:
        fired.append(
            Fired(
                GT_ERROR,
                config.version,
                {"objects": wrong, "position_m": config.gt_position_m, "angle_deg": config.gt_angle_deg},
            )
        )
    return fired
