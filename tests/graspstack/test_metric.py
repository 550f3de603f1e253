"""Pin the accuracy metric (CONTRACTS section 4) on hand-built cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graspstack.frames import ObjectPose
from graspstack.geometry import matrix_to_quat, rot_x, rot_y, rot_z
from graspstack.metric import angular_error_deg, match_scene, summarize

# A generic, non-axis-aligned ground-truth orientation, so symmetries are not hidden by it.
R0 = rot_z(30) @ rot_y(-20) @ rot_x(50)


def pose(cls: str, pos, R=R0, visible: float | None = None) -> ObjectPose:
    extras = {} if visible is None else {"visible_fraction": visible}
    return ObjectPose(cls, np.asarray(pos, dtype=float), matrix_to_quat(R), 1.0, extras)


@pytest.mark.parametrize("k", range(4))
def test_lego_rz90_symmetries_give_zero_error(k):
    assert angular_error_deg("lego", R0, R0 @ rot_z(90 * k)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("S", [np.eye(3), rot_x(180), rot_y(180), rot_z(180)])
def test_jenga_symmetries_give_zero_error(S):
    assert angular_error_deg("jenga", R0, R0 @ S) == pytest.approx(0.0, abs=1e-5)


def test_non_symmetries_give_large_error():
    assert angular_error_deg("lego", R0, R0 @ rot_x(90)) == pytest.approx(90.0, abs=1e-6)
    assert angular_error_deg("lego", R0, R0 @ rot_z(45)) == pytest.approx(45.0, abs=1e-6)
    assert angular_error_deg("jenga", R0, R0 @ rot_z(90)) == pytest.approx(90.0, abs=1e-6)
    # Asymmetric classes: a 180 deg flip is a 180 deg error.
    assert angular_error_deg("duck", R0, R0 @ rot_z(180)) == pytest.approx(180.0, abs=1e-4)


def test_symmetry_applies_in_object_frame():
    # R_gt * S rotates about the object's own z; rotating about the camera z is a real error.
    assert angular_error_deg("lego", R0, rot_z(90) @ R0) > 30


@pytest.mark.parametrize("deg, ok", [(4.0, True), (6.0, False)])
def test_angular_threshold(deg, ok):
    gt = [pose("duck", [0, 0, 0.6])]
    res = match_scene(gt, [pose("duck", [0, 0, 0.6], R0 @ rot_x(deg))])
    (r,) = res.records
    assert r.matched and r.re_deg == pytest.approx(deg, abs=1e-6)
    assert r.within_spec is ok


def test_angular_threshold_with_symmetry():
    # 4 deg off a symmetric equivalent still passes.
    gt = [pose("lego", [0, 0, 0.6])]
    (r,) = match_scene(gt, [pose("lego", [0, 0, 0.6], R0 @ rot_z(270) @ rot_y(4))]).records
    assert r.re_deg == pytest.approx(4.0, abs=1e-6) and r.within_spec


@pytest.mark.parametrize("mm, ok", [(9.0, True), (11.0, False)])
def test_position_threshold(mm, ok):
    gt = [pose("mug", [0.1, -0.05, 0.7])]
    offset = np.array([3.0, -4.0, 12.0]) / 13.0 * mm / 1000  # unit direction, not along an axis
    (r,) = match_scene(gt, [pose("mug", gt[0].position_m + offset)]).records
    assert r.te_m == pytest.approx(mm / 1000, abs=1e-9)
    assert r.within_spec is ok


def test_quaternion_sign_does_not_matter():
    gt = [pose("teddy", [0, 0, 0.5])]
    p = pose("teddy", [0, 0, 0.5])
    p.quaternion_xyzw = -p.quaternion_xyzw
    (r,) = match_scene(gt, [p]).records
    assert r.re_deg == pytest.approx(0.0, abs=1e-5) and r.within_spec


def test_swapped_pair_is_matched_by_position():
    Ra, Rb = R0, rot_x(120) @ R0
    gt = [pose("duck", [-0.1, 0, 0.6], Ra), pose("duck", [0.1, 0, 0.6], Rb)]
    pred = [pose("duck", [0.102, 0, 0.6], Rb), pose("duck", [-0.099, 0, 0.6], Ra)]
    res = match_scene(gt, pred)
    assert [r.within_spec for r in res.records] == [True, True]
    assert res.n_false_positives == 0


def test_matching_is_optimal_not_greedy():
    # Greedy nearest-first would pair gt[1] with pred[0] (1 mm) and leave gt[0] with pred[1] far
    # away; least total distance pairs gt[0]-pred[0] and gt[1]-pred[1] (8 mm + 9 mm).
    gt = [pose("jenga", [0.0, 0, 0.6]), pose("jenga", [0.009, 0, 0.6])]
    pred = [pose("jenga", [0.008, 0, 0.6]), pose("jenga", [0.018, 0, 0.6])]
    res = match_scene(gt, pred)
    assert [r.within_spec for r in res.records] == [True, True]


def test_unmatched_object_fails():
    gt = [pose("duck", [0, 0, 0.6]), pose("lego", [0.1, 0, 0.6])]
    res = match_scene(gt, [pose("duck", [0, 0, 0.6])])
    by_cls = {r.class_name: r for r in res.records}
    assert by_cls["duck"].within_spec
    lego = by_cls["lego"]
    assert not lego.matched and not lego.within_spec and lego.te_m is None and lego.re_deg is None
    assert res.n_false_positives == 0


def test_prediction_of_absent_class_is_false_positive():
    gt = [pose("duck", [0, 0, 0.6])]
    res = match_scene(gt, [pose("duck", [0, 0, 0.6]), pose("mug", [0, 0, 0.6])])
    assert res.false_positives == {"mug": 1}
    assert [r.within_spec for r in res.records] == [True]


def test_extra_prediction_of_present_class_is_false_positive():
    gt = [pose("lego", [0, 0, 0.6])]
    res = match_scene(gt, [pose("lego", [0.2, 0, 0.6]), pose("lego", [0, 0, 0.6])])
    assert res.false_positives == {"lego": 1}
    assert res.records[0].within_spec


def test_occluded_object_not_counted_and_its_prediction_not_false_positive():
    gt = [pose("duck", [0, 0, 0.6], visible=0.9), pose("duck", [0.15, 0, 0.6], visible=0.2)]
    pred = [pose("duck", [0, 0, 0.6]), pose("duck", [0.15, 0, 0.6])]
    res = match_scene(gt, pred)
    assert len(res.records) == 1 and res.records[0].visible_fraction == 0.9 and res.records[0].within_spec
    assert res.n_false_positives == 0 and res.ignored_predictions == 1


def test_occluded_object_missed_is_not_a_failure():
    gt = [pose("duck", [0, 0, 0.6], visible=0.9), pose("duck", [0.15, 0, 0.6], visible=0.2)]
    res = match_scene(gt, [pose("duck", [0, 0, 0.6])])
    assert [r.within_spec for r in res.records] == [True]


def test_visible_fraction_threshold_is_inclusive():
    gt = [pose("duck", [0, 0, 0.6], visible=0.3)]
    assert len(match_scene(gt, []).records) == 1


def test_invalid_prediction_is_false_positive():
    gt = [pose("duck", [0, 0, 0.6])]
    bad = pose("duck", [np.nan, 0, 0.6])
    res = match_scene(gt, [bad])
    assert res.false_positives == {"duck": 1}
    assert not res.records[0].matched


def test_summarize():
    gt = [pose("duck", [0, 0, 0.6]), pose("lego", [0.1, 0, 0.6]), pose("lego", [0.2, 0, 0.6])]
    pred = [pose("duck", [0, 0, 0.605]), pose("lego", [0.1, 0, 0.6], R0 @ rot_x(10)), pose("mug", [0, 0, 1])]
    res = match_scene(gt, pred)
    s = summarize(res.records, res.false_positives, [10.0, 20.0])
    assert s["n_objects"] == 3 and s["within_spec"] == 1
    assert s["within_spec_rate"] == pytest.approx(1 / 3)
    assert s["matched_rate"] == pytest.approx(2 / 3)
    assert s["false_positives"] == 1
    assert s["te_m"]["p50"] == pytest.approx(0.0025)
    assert s["re_deg"]["p99"] == pytest.approx(9.9, abs=1e-3)
    assert list(s["classes"]) == ["duck", "mug", "lego"]  # catalogue order
    assert s["classes"]["lego"]["n_objects"] == 2 and s["classes"]["lego"]["within_spec"] == 0
    assert s["classes"]["mug"] == {**s["classes"]["mug"], "n_objects": 0, "false_positives": 1}
    assert s["classes"]["mug"]["within_spec_rate"] is None
    assert s["latency_ms"]["n"] == 2 and s["latency_ms"]["mean"] == pytest.approx(15.0)
    json.dumps(s, allow_nan=False)  # JSON-able, no NaN/inf


def test_summarize_empty():
    s = summarize([], {})
    assert s["n_objects"] == 0 and s["within_spec_rate"] is None and s["te_m"]["p50"] is None
    assert s["classes"] == {}
