"""The simulated gripper picks a jenga with a planned grasp and misses with one beside it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from graspstack.frames import ObjectPose
from graspstack.geometry import invert_transform, matrix_to_quat
from graspstack.grasping import plan_grasps
from lab.cell import LabCell
from lab.envelope import DropSpec, sample_scene
from lab.gripper import execute_grasp


@pytest.fixture(scope="module")
def lab_cell():
    """A cell of our own: these tests rebuild its scene, which others sharing one should not see."""
    cell = LabCell()
    yield cell
    cell.close()


@pytest.fixture()
def jenga_on_table(lab_cell):
    """A jenga dropped flat and settled on the table, with the nominal camera of scene 0."""
    spec = sample_scene("nominal", 3, 0)
    drop = DropSpec("object", "jenga", (0.02, -0.01), 0.04, (0.0, 0.0, 0.3826834, 0.9238795))
    spec = dataclasses.replace(spec, drops=[drop])
    lab_cell.reset(spec)
    lab_cell.settle()
    body = lab_cell.bodies_of_kind("object")[0].body_id
    T_world_cam = lab_cell.camera_pose(spec)
    T_cam_obj = invert_transform(T_world_cam) @ lab_cell.T_world_obj(body)
    pose = ObjectPose("jenga", T_cam_obj[:3, 3], matrix_to_quat(T_cam_obj[:3, :3]))
    return body, T_world_cam, pose


def test_planned_grasp_lifts_the_jenga(lab_cell, jenga_on_table):
    body, T_world_cam, pose = jenga_on_table
    grasp = plan_grasps([pose], T_world_cam, max_grasps=1)[0]
    outcome = execute_grasp(lab_cell, T_world_cam @ grasp.T_cam_gripper, grasp.opening_m, body)
    assert outcome.success, outcome
    assert outcome.lifted_height_m >= 0.08
    assert outcome.in_hand
    assert 0.02 < outcome.final_opening_m < 0.06  # closed on the jenga, not on nothing


def test_grasp_beside_the_jenga_fails(lab_cell, jenga_on_table):
    body, T_world_cam, pose = jenga_on_table
    grasp = plan_grasps([pose], T_world_cam, max_grasps=1)[0]
    T = T_world_cam @ grasp.T_cam_gripper
    # Slide along the pads' y (the jenga's long side) until they are 5 cm past its end.
    T[:3, 3] += (0.075 + 0.05 + 0.011) * T[:3, 1]
    outcome = execute_grasp(lab_cell, T, grasp.opening_m, body)
    assert not outcome.success
    assert not outcome.in_hand
    assert abs(outcome.lifted_height_m) < 0.01
    assert outcome.final_opening_m < 0.01  # closed on air


def test_gripper_is_removed_after_the_attempt(lab_cell, jenga_on_table):
    import pybullet as pb

    body, T_world_cam, pose = jenga_on_table
    before = pb.getNumBodies(physicsClientId=lab_cell.client)
    grasp = plan_grasps([pose], T_world_cam, max_grasps=1)[0]
    execute_grasp(lab_cell, T_world_cam @ grasp.T_cam_gripper, grasp.opening_m, body)
    assert pb.getNumBodies(physicsClientId=lab_cell.client) == before
    assert np.isfinite(lab_cell.T_world_obj(body)).all()
