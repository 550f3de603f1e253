"""Duplicate answers: one object seen twice shares its volume; two touching objects do not."""

from __future__ import annotations

import numpy as np

from graspstack.frames import ObjectPose
from graspstack.geometry import matrix_to_quat, rot_x, rot_z
from graspstack.predictors.scripted.duplicates import share_inside, suppress_duplicates
from graspstack.predictors.scripted.fit import model_cloud

AT = np.array([0.0, 0.0, 0.6])


def _pose(class_name: str, R: np.ndarray, t: np.ndarray, confidence: float) -> ObjectPose:
    return ObjectPose(class_name, np.asarray(t, float), matrix_to_quat(R), confidence, {})


def test_one_object_answered_twice_keeps_the_more_confident():
    first = _pose("duck", np.eye(3), AT, 0.6)
    again = _pose("duck", rot_z(10.0) @ rot_x(5.0), AT + np.array([0.01, 0.0, 0.0]), 0.9)
    kept = suppress_duplicates([first, again])
    assert kept == [again]
    assert share_inside(first, again) > 0.8


def test_teddies_with_one_origin_and_bodies_apart_are_two_objects():
    # A teddy's origin lies 10 cm from the middle of the bear: turned half about the camera axis
    # through that origin, a second bear stands 19 cm away from the first.
    a = _pose("teddy", np.eye(3), AT, 0.9)
    b = _pose("teddy", rot_z(180.0), AT, 0.8)
    centre = model_cloud("teddy").centre
    assert np.linalg.norm(centre - rot_z(180.0) @ centre) > 0.15
    assert suppress_duplicates([a, b]) == [a, b]


def test_jengas_stacked_flat_are_two_objects():
    # 3 cm apart, one lying on the other: the origin rule (a third of 15 cm) took them for one.
    lower = _pose("jenga", np.eye(3), AT, 0.9)
    upper = _pose("jenga", np.eye(3), AT + np.array([0.0, 0.0, -0.031]), 0.8)
    assert suppress_duplicates([lower, upper]) == [lower, upper]
    assert share_inside(upper, lower) == 0.0


def test_answers_of_different_classes_never_suppress_each_other():
    duck = _pose("duck", np.eye(3), AT, 0.9)
    mug = _pose("mug", np.eye(3), AT, 0.8)
    assert share_inside(duck, mug) > 0.3  # they share volume; the class tells them apart
    assert suppress_duplicates([mug, duck]) == [duck, mug]
