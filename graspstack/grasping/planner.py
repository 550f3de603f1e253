"""Per scene: place each class's candidates at the estimated poses, drop those that cannot be reached
or would collide, and rank the rest.

Everything is in the camera frame (OpenCV), like the poses. The table is a plane n.p + offset = 0 with
n pointing up, out of the table; `TablePlane.from_T_world_cam` makes it from the lab's camera pose
(world z up, table top at z = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from graspstack.frames import ObjectPose
from graspstack.geometry import invert_transform, make_transform, matrix_to_quat
from graspstack.grasping.candidates import (
    MIN_CONTACT_DEPTH_M,
    GraspCandidates,
    column_depth_limit,
    compute_candidates,
    grasp_candidates,
)
from graspstack.grasping.gripper import DEFAULT_GRIPPER, GripperSpec

TABLE_CLEARANCE_M = 0.004  # lowest any gripper corner may come above the table top
MAX_APPROACH_TILT_DEG = 60.0  # approaches further from straight down than this are not offered
NEIGHBOUR_REACH_M = 0.20  # neighbour points further than this from the target cannot touch the gripper
CHUNK = 96  # candidates checked against neighbours at a time, best first
# Ranking: pose-independent quality, plus top-down approaches (they keep the palm off the table and
# the fingers off neighbours best), deeper pads (more contact, less lever) and little gravity torque
# about the contacts (friction at two small pads resists it poorly).
W_DOWN, W_DEPTH, W_TORQUE = 0.6, 0.3, 0.6
TORQUE_ARM_SCALE_M = 0.03


@dataclass(frozen=True)
class TablePlane:
    normal: np.ndarray  # unit, pointing up from the table, camera frame
    offset: float  # normal . p + offset = height of p above the table

    @staticmethod
    def from_T_world_cam(T_world_cam: np.ndarray) -> TablePlane:
        T_cam_world = invert_transform(T_world_cam)
        normal = T_cam_world[:3, 2]
        return TablePlane(normal, float(-normal @ T_cam_world[:3, 3]))

    def height(self, points: np.ndarray) -> np.ndarray:
        return points @ self.normal + self.offset


@dataclass
class Grasp:
    """A ranked grasp. T_cam_gripper places the gripper frame of `gripper.py` in the camera frame."""

    T_cam_gripper: np.ndarray
    opening_m: float  # open the fingers this wide before the approach
    contact_width_m: float  # expected distance between the pads once closed
    contact_depth_m: float  # the contact centre lies at z = -contact_depth in the gripper frame
    quality: float  # pose-independent candidate quality in [0, 1]
    score: float  # what the ranking sorts by (quality plus approach and depth preferences)
    object_index: int  # index into the poses that were planned for
    class_name: str
    approach_tilt_deg: float  # angle between the approach and straight down

    @property
    def position_m(self) -> np.ndarray:
        return self.T_cam_gripper[:3, 3]

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        return matrix_to_quat(self.T_cam_gripper[:3, :3])


@cache
def candidates_for(class_name: str, gripper: GripperSpec) -> GraspCandidates:
    """The shipped candidates for the default gripper; another gripper gets its own, computed once."""
    return (
        grasp_candidates(class_name)
        if gripper == DEFAULT_GRIPPER
        else compute_candidates(class_name, gripper)
    )


def _box_corners(opening: np.ndarray, gripper: GripperSpec) -> np.ndarray:
    """(K, 24, 3) corners of the gripper boxes with the fingertips at the origin, per opening."""
    out = []
    for w in opening:
        corners = [
            np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
            for lo, hi in gripper.boxes(float(w))
        ]
        out.append(np.vstack(corners))
    return np.asarray(out)


def _corner_template(gripper: GripperSpec) -> tuple[np.ndarray, np.ndarray]:
    """Corners as base + opening * scale, so corners for any openings are one multiply-add."""
    c0, c1 = _box_corners(np.array([0.0]), gripper)[0], _box_corners(np.array([1.0]), gripper)[0]
    return c0, c1 - c0


def plan_for_object(
    index: int,
    poses: list[ObjectPose],
    table: TablePlane,
    max_grasps: int,
    gripper: GripperSpec = DEFAULT_GRIPPER,
    candidates: GraspCandidates | None = None,
) -> list[Grasp]:
    pose = poses[index]
    cand = candidates if candidates is not None else candidates_for(pose.class_name, gripper)
    if len(cand.quality) == 0:
        return []
    T = pose.as_transform()
    # Approach first: it is the cheapest test and removes half the candidates or more.
    z_all = cand.rotation[:, :, 2] @ T[:3, :3].T
    cos_all = -(z_all @ table.normal)
    keep = np.nonzero(cos_all >= np.cos(np.radians(MAX_APPROACH_TILT_DEG)))[0]
    if len(keep) == 0:
        return []
    R = np.matmul(T[:3, :3], cand.rotation[keep])  # contact frames in the camera frame
    c = cand.centre[keep] @ T[:3, :3].T + T[:3, 3]
    z, cos_down, opening = z_all[keep], cos_all[keep], cand.opening_m[keep]

    # Table: a gripper corner q (fingertips at the contact centre) sits at height h0(q); pushing the
    # fingertips d further along z lowers it by d * cos_down, so the table bounds d from above.
    base, per_open = _corner_template(gripper)
    corners = base[None] + opening[:, None, None] * per_open[None]
    h0 = table.height(np.matmul(corners, R.transpose(0, 2, 1)) + c[:, None]).min(axis=1)
    table_limit = (h0 - TABLE_CLEARANCE_M) / cos_down
    preferred = gripper.finger_depth_m - 0.010  # contact 1 cm below the palm: deep but not jammed
    depth = np.minimum(np.minimum(cand.max_depth_m[keep], table_limit), preferred)
    # Lever arm of gravity about the contact centre: the horizontal distance to the centre of mass.
    # Weight pulling off to the side twists the object in the pads (in the lab's mug also: its physics
    # is a solid cylinder, so a rim pinch on it is doubly wrong).
    arm = np.linalg.norm(np.cross(cand.com_offset[keep] @ T[:3, :3].T, table.normal), axis=1)
    base_score = cand.quality[keep] + W_DOWN * cos_down + W_TORQUE * np.exp(-arm / TORQUE_ARM_SCALE_M)

    neighbours = [
        grasp_candidates(p.class_name).neighbour_points @ p.as_transform()[:3, :3].T + p.position_m
        for i, p in enumerate(poses)
        if i != index
    ]
    cloud = np.vstack(neighbours) if neighbours else np.zeros((0, 3))
    cloud = cloud[np.linalg.norm(cloud - T[:3, 3], axis=1) < NEIGHBOUR_REACH_M]

    # Neighbours only for the best candidates, a chunk at a time, until enough grasps survive: depth
    # can only shrink, so a candidate's score is at most its score before this test.
    score = base_score + W_DEPTH * depth / gripper.finger_depth_m
    order = np.nonzero(depth >= MIN_CONTACT_DEPTH_M)[0]
    order = order[np.argsort(-score[order], kind="stable")]
    found_idx, found_depth = [], []
    for s in range(0, len(order), CHUNK):
        idx = order[s : s + CHUNK]
        d = depth[idx]
        if len(cloud):
            local = np.matmul(cloud[None] - c[idx, None], R[idx])
            d = np.minimum(d, column_depth_limit(local, opening[idx], gripper))
        good = d >= MIN_CONTACT_DEPTH_M
        found_idx.extend(idx[good])
        found_depth.extend(d[good])
        if len(found_idx) >= max_grasps:
            break
    found_idx, found_depth = np.asarray(found_idx, dtype=int), np.asarray(found_depth)
    final = base_score[found_idx] + W_DEPTH * found_depth / gripper.finger_depth_m
    grasps = []
    for j in np.argsort(-final, kind="stable")[:max_grasps]:
        k, dk, kc = found_idx[j], float(found_depth[j]), keep[found_idx[j]]
        grasps.append(
            Grasp(
                T_cam_gripper=make_transform(R[k], c[k] + dk * z[k]),
                opening_m=float(opening[k]),
                contact_width_m=float(cand.contact_width_m[kc]),
                contact_depth_m=dk,
                quality=float(cand.quality[kc]),
                score=float(final[j]),
                object_index=index,
                class_name=pose.class_name,
                approach_tilt_deg=float(np.degrees(np.arccos(min(cos_down[k], 1.0)))),
            )
        )
    return grasps


def plan_grasps(
    poses: list[ObjectPose],
    table: TablePlane | np.ndarray,
    max_grasps: int = 10,
    targets: list[int] | None = None,
    gripper: GripperSpec = DEFAULT_GRIPPER,
) -> list[Grasp]:
    """Ranked collision-free grasps on the target objects (all by default), best first.

    table: a `TablePlane` in the camera frame, or T_world_cam (4x4) of a camera over the lab table.
    Every pose, target or not, is an obstacle for the others' grasps.
    """
    plane = table if isinstance(table, TablePlane) else TablePlane.from_T_world_cam(np.asarray(table))
    indices = range(len(poses)) if targets is None else targets
    grasps = [g for i in indices for g in plan_for_object(i, poses, plane, max_grasps, gripper)]
    grasps.sort(key=lambda g: -g.score)
    return grasps[:max_grasps]
