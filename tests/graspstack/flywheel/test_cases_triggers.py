"""The hard-case record on the wire, and when triggers fire."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graspstack.flywheel.cases import CaseError, HardCase
from graspstack.flywheel.triggers import (
    GRASP_FAILURE,
    GT_ERROR,
    LOW_CONFIDENCE,
    SHADOW_DISAGREEMENT,
    TriggerConfig,
    evaluate,
)
from graspstack.frames import ObjectPose
from graspstack.metric import ObjectRecord
from graspstack.serving.shadow import Disagreement


def _pose(conf: float, cls: str = "duck") -> ObjectPose:
    return ObjectPose(cls, np.array([0.0, 0.0, 0.6]), np.array([0.0, 0.0, 0.0, 1.0]), conf)


def test_case_round_trips_through_stream_fields(cases):
    case = cases[0]
    case.ground_truth = [_pose(1.0)]
    back = HardCase.from_fields({k.encode(): v for k, v in case.to_fields().items()})
    assert back.case_id == case.case_id
    assert back.rgb == case.rgb and back.depth == case.depth
    assert back.meta() == case.meta()


def test_case_id_is_content_trigger_and_model(cases):
    a = cases[0]
    b = HardCase.from_meta(a.meta(), a.rgb, a.depth)
    b.robot_id, b.created_at = "other-robot", 0.0  # who or when does not make another case
    assert a.case_id == b.case_id
    b.trigger = GRASP_FAILURE
    assert a.case_id != b.case_id


@pytest.mark.parametrize(
    "fields",
    [{}, {b"meta": b"not json"}, {b"meta": b"[]"}, {b"meta": json.dumps({"frame_id": "x"}).encode()}],
)
def test_malformed_entries_raise_case_error(fields):
    with pytest.raises(CaseError):
        HardCase.from_fields(fields)


def test_shipped_config_loads_with_a_version():
    config = TriggerConfig.load()
    assert config.version and config.gt_position_m == 0.01 and config.gt_angle_deg == 5.0


def test_each_trigger_fires_under_its_condition_only():
    config = TriggerConfig(version="t1", low_confidence=0.5, shadow_position_m=0.02, shadow_angle_deg=10)
    assert evaluate(config, [_pose(0.9)]) == []
    fired = evaluate(
        config,
        [_pose(0.3), _pose(0.9, "mug")],
        disagreements=[Disagreement("duck", 0.05, 1.0), Disagreement("mug", 0.001, 2.0)],
        gt_errors=[
            ObjectRecord("duck", 0.004, 7.0, False, True, 1.0),
            ObjectRecord("mug", 0.002, 1.0, True, True, 1.0),
        ],
        grasp_failed=True,
    )
    assert [f.trigger for f in fired] == [LOW_CONFIDENCE, SHADOW_DISAGREEMENT, GRASP_FAILURE, GT_ERROR]
    assert all(f.config_version == "t1" for f in fired)
    assert fired[0].detail["objects"] == [{"class": "duck", "confidence": 0.3}]
    assert [o["class"] for o in fired[1].detail["objects"]] == ["duck"]
    assert [o["class"] for o in fired[3].detail["objects"]] == ["duck"]


def test_unmatched_shadow_fires_only_when_configured():
    quiet = TriggerConfig(version="t", shadow_unmatched_fires=False)
    loud = TriggerConfig(version="t", shadow_unmatched_fires=True)
    d = [Disagreement("duck", None, None)]
    assert evaluate(quiet, [_pose(0.9)], disagreements=d) == []
    assert evaluate(loud, [_pose(0.9)], disagreements=d)[0].trigger == SHADOW_DISAGREEMENT
