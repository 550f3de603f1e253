"""The planner on hand-built scenes: a camera straight above a table, jengas lying flat on it."""

from __future__ import annotations

import numpy as np

from graspstack.frames import ObjectPose
from graspstack.geometry import invert_transform, make_transform, matrix_to_quat, rot_z
from graspstack.grasping import DEFAULT_GRIPPER, Grasp, TablePlane, plan_grasps
from graspstack.grasping.candidates import surface_samples
from graspstack.object_models import object_model

# Camera 0.7 m above the table centre looking straight down (OpenCV: z forward, y down the image).
T_WORLD_CAM = make_transform(np.diag([1.0, -1.0, -1.0]), [0.0, 0.0, 0.7])
JENGA_HALF_HEIGHT = 0.015


def pose_on_table(class_name: str, xy, yaw_deg: float = 0.0, z: float = JENGA_HALF_HEIGHT) -> ObjectPose:
    T_cam_obj = invert_transform(T_WORLD_CAM) @ make_transform(rot_z(yaw_deg), [*xy, z])
    return ObjectPose(class_name, T_cam_obj[:3, 3], matrix_to_quat(T_cam_obj[:3, :3]))


def gripper_box_contains(grasp: Grasp, points_cam: np.ndarray) -> bool:
    """Whether any point lies inside the gripper's boxes (open, at the planned pose)."""
    local = (points_cam - grasp.T_cam_gripper[:3, 3]) @ grasp.T_cam_gripper[:3, :3]
    return any(
        np.any(np.all((local > lo) & (local < hi), axis=1))
        for lo, hi in DEFAULT_GRIPPER.boxes(grasp.opening_m)
    )


def gripper_corners_cam(grasp: Grasp) -> np.ndarray:
    corners = [
        [x, y, z] for lo, hi in DEFAULT_GRIPPER.boxes(grasp.opening_m) for x in (lo[0], hi[0])
        for y in (lo[1], hi[1]) for z in (lo[2], hi[2])
    ]  # fmt: skip
    return np.asarray(corners) @ grasp.T_cam_gripper[:3, :3].T + grasp.T_cam_gripper[:3, 3]


def test_jenga_best_grasp_closes_across_its_short_side():
    pose = pose_on_table("jenga", (0.02, -0.03), yaw_deg=30)
    grasps = plan_grasps([pose], T_WORLD_CAM, max_grasps=5)
    assert grasps
    best = grasps[0]
    x_in_obj = pose.as_transform()[:3, :3].T @ best.T_cam_gripper[:3, 0]
    assert abs(x_in_obj[0]) < 0.5  # not along the 15 cm length
    assert best.contact_width_m < 0.06  # the 5 cm (or 3 cm) side
    assert best.approach_tilt_deg < 30  # from above
    # The contact centre, at -contact_depth along the gripper z, is inside the jenga.
    centre = best.T_cam_gripper[:3, 3] - best.contact_depth_m * best.T_cam_gripper[:3, 2]
    local = invert_transform(pose.as_transform())[:3] @ np.append(centre, 1.0)
    assert np.all(np.abs(local) <= np.array([0.075, 0.025, 0.015]) + 1e-6)


def test_grasps_keep_the_gripper_above_the_table():
    pose = pose_on_table("jenga", (0.0, 0.0), yaw_deg=-50)
    table = TablePlane.from_T_world_cam(T_WORLD_CAM)
    grasps = plan_grasps([pose], table, max_grasps=20)
    assert grasps
    for g in grasps:
        assert table.height(gripper_corners_cam(g)).min() > 0.0
        assert g.approach_tilt_deg <= 60.0 + 1e-6  # nothing from below or the side


def test_no_grasp_when_the_fingers_would_have_to_go_through_the_table():
    # A jenga sunk into the table, 7 mm sticking out: too little for the pads to reach without the
    # fingertips going below the table top. Standing on the table, it has grasps.
    pose = pose_on_table("jenga", (0.0, 0.0), z=-0.008)
    assert plan_grasps([pose_on_table("jenga", (0.0, 0.0))], T_WORLD_CAM)
    assert plan_grasps([pose], T_WORLD_CAM) == []


def test_a_neighbour_beside_the_target_removes_the_grasps_that_would_hit_it():
    target = pose_on_table("jenga", (0.0, 0.0))
    neighbour = pose_on_table("jenga", (0.0, 0.062))  # parallel, a 12 mm gap along the pinch direction
    alone = plan_grasps([target], T_WORLD_CAM, max_grasps=20)
    together = plan_grasps([target, neighbour], T_WORLD_CAM, max_grasps=20, targets=[0])

    samples, _ = surface_samples(object_model("jenga"), 4000, seed=5)
    neighbour_cam = samples @ neighbour.as_transform()[:3, :3].T + neighbour.position_m
    assert gripper_box_contains(alone[0], neighbour_cam)  # the unobstructed favourite would hit it
    assert all(not gripper_box_contains(g, neighbour_cam) for g in together)
    assert all(g.object_index == 0 for g in together)


def test_grasps_are_ranked_and_carry_unit_quaternions():
    poses = [pose_on_table("jenga", (0.0, 0.0)), pose_on_table("lego", (0.12, 0.0), z=0.0115)]
    grasps = plan_grasps(poses, T_WORLD_CAM, max_grasps=8)
    assert {g.object_index for g in grasps} <= {0, 1}
    scores = [g.score for g in grasps]
    assert scores == sorted(scores, reverse=True)
    for g in grasps:
        assert np.isclose(np.linalg.norm(g.quaternion_xyzw), 1.0)
        assert 0 < g.opening_m <= DEFAULT_GRIPPER.max_opening_m
