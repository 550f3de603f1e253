"""A simulated parallel-jaw gripper for the lab robot: a floating palm with two prismatic fingers.

Built from boxes with createMultiBody (no files), shaped after `graspstack.grasping.GripperSpec`, and
moved by a fixed constraint so it follows commanded poses without an arm. Its base frame is the
gripper frame of `graspstack/grasping/gripper.py` (origin between the fingertips, z = approach,
x = closing), so a planned T_world_gripper can be commanded as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as pb

from graspstack.geometry import make_transform, matrix_to_quat
from graspstack.grasping.gripper import DEFAULT_GRIPPER, GripperSpec
from lab.cell import TIME_STEP, LabCell

PRE_GRASP_M = 0.10  # start this far back along -z of the gripper
LIFT_M = 0.10
HOLD_S = 1.0
SUCCESS_LIFT_M = 0.08
GRIP_FORCE_N = 60.0  # per finger; a 1 kg mug at friction 0.5 needs ~10 N
FINGER_FRICTION = 1.0  # PyBullet multiplies it with the object's (0.5 to 1.0)
CONSTRAINT_FORCE_N = 2000.0
SPEED_M_S = 0.15


@dataclass
class GraspOutcome:
    success: bool
    lifted_height_m: float  # rise of the object's centre of mass from rest to the end of the hold
    in_hand: bool  # both fingers touch the object after the hold
    final_opening_m: float
    reason: str = ""


class SimGripper:
    """One gripper body in a cell's PyBullet client; remove() it before the cell is reset."""

    def __init__(self, cell: LabCell, spec: GripperSpec = DEFAULT_GRIPPER) -> None:
        self.cell, self.spec = cell, spec
        c, s = cell.client, spec
        fd, ft = s.finger_depth_m, s.finger_thickness_m
        palm_half = [s.palm_length_m / 2, s.palm_width_m / 2, s.palm_thickness_m / 2]
        palm_at = [0, 0, -fd - s.palm_thickness_m / 2]
        finger_half = [ft / 2, s.finger_width_m / 2, fd / 2]

        def box(half: list[float], at: list[float], grey: float) -> tuple[int, int]:
            col = pb.createCollisionShape(
                pb.GEOM_BOX, halfExtents=half, collisionFramePosition=at, physicsClientId=c
            )
            vis = pb.createVisualShape(
                pb.GEOM_BOX,
                halfExtents=half,
                visualFramePosition=at,
                rgbaColor=[grey] * 3 + [1],
                physicsClientId=c,
            )
            return col, vis

        palm = box(palm_half, palm_at, 0.3)
        # Each finger's link frame sits on its pad (the inner face), so joint value = half the opening;
        # finger 0 slides along +x, finger 1 along -x.
        fingers = [box(finger_half, [sign * ft / 2, 0, -fd / 2], 0.6) for sign in (1, -1)]
        self.body = pb.createMultiBody(
            baseMass=0.5,
            baseCollisionShapeIndex=palm[0],
            baseVisualShapeIndex=palm[1],
            basePosition=[0, 0, 2.0],
            linkMasses=[0.05, 0.05],
            linkCollisionShapeIndices=[f[0] for f in fingers],
            linkVisualShapeIndices=[f[1] for f in fingers],
            linkPositions=[[0, 0, 0], [0, 0, 0]],
            linkOrientations=[[0, 0, 0, 1]] * 2,
            linkInertialFramePositions=[[0, 0, 0]] * 2,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 2,
            linkParentIndices=[0, 0],
            linkJointTypes=[pb.JOINT_PRISMATIC] * 2,
            linkJointAxis=[[1, 0, 0], [-1, 0, 0]],
            physicsClientId=c,
        )
        for link in (-1, 0, 1):
            pb.changeDynamics(self.body, link, lateralFriction=FINGER_FRICTION, physicsClientId=c)
        self.constraint = pb.createConstraint(
            self.body, -1, -1, -1, pb.JOINT_FIXED, [0, 0, 0], [0, 0, 0], [0, 0, 2.0], physicsClientId=c
        )
        self.T_world_gripper = make_transform(np.eye(3), [0, 0, 2.0])

    # -- commands -------------------------------------------------------------------------------
    def teleport(self, T_world_gripper: np.ndarray, opening_m: float) -> None:
        c, q = self.cell.client, matrix_to_quat(T_world_gripper[:3, :3])
        pb.resetBasePositionAndOrientation(self.body, T_world_gripper[:3, 3], q, physicsClientId=c)
        for joint in (0, 1):
            pb.resetJointState(self.body, joint, opening_m / 2, physicsClientId=c)
        self.T_world_gripper = T_world_gripper.copy()
        self._hold_pose()
        self.command_opening(opening_m, force=CONSTRAINT_FORCE_N)

    def _hold_pose(self) -> None:
        T = self.T_world_gripper
        pb.changeConstraint(
            self.constraint,
            jointChildPivot=T[:3, 3],
            jointChildFrameOrientation=matrix_to_quat(T[:3, :3]),
            maxForce=CONSTRAINT_FORCE_N,
            physicsClientId=self.cell.client,
        )

    def command_opening(self, opening_m: float, force: float) -> None:
        pb.setJointMotorControlArray(
            self.body,
            [0, 1],
            pb.POSITION_CONTROL,
            targetPositions=[opening_m / 2] * 2,
            forces=[force] * 2,
            physicsClientId=self.cell.client,
        )

    def move_by(self, offset_world: np.ndarray, speed: float = SPEED_M_S) -> None:
        """Translate in a straight line at constant speed, stepping the physics along."""
        start = self.T_world_gripper[:3, 3].copy()
        steps = max(1, int(np.linalg.norm(offset_world) / speed / TIME_STEP))
        for k in range(1, steps + 1):
            self.T_world_gripper[:3, 3] = start + offset_world * k / steps
            self._hold_pose()
            self.step(1)

    def step(self, n: int) -> None:
        for _ in range(n):
            pb.stepSimulation(physicsClientId=self.cell.client)

    # -- state ----------------------------------------------------------------------------------
    def opening(self) -> float:
        return float(sum(pb.getJointState(self.body, j, physicsClientId=self.cell.client)[0] for j in (0, 1)))

    def touches(self, body_id: int) -> tuple[bool, bool]:
        c = self.cell.client
        return tuple(
            bool(pb.getContactPoints(self.body, body_id, linkIndexA=j, physicsClientId=c)) for j in (0, 1)
        )

    def remove(self) -> None:
        pb.removeConstraint(self.constraint, physicsClientId=self.cell.client)
        pb.removeBody(self.body, physicsClientId=self.cell.client)


def _com_height(cell: LabCell, body_id: int) -> float:
    """Height of the centre of mass: unlike the object origin (a corner of the teddy's box, say), it
    does not rise or sink when the object merely turns in the fingers."""
    return float(pb.getBasePositionAndOrientation(body_id, physicsClientId=cell.client)[0][2])


def execute_grasp(
    cell: LabCell,
    T_world_gripper: np.ndarray,
    width: float,
    object_body_id: int,
    spec: GripperSpec = DEFAULT_GRIPPER,
) -> GraspOutcome:
    """Approach along the gripper's z from PRE_GRASP_M back, close, lift LIFT_M, hold HOLD_S.

    The gripper is removed afterwards; the objects stay where the attempt left them.
    """
    approach = T_world_gripper[:3, 2]
    pre = T_world_gripper.copy()
    pre[:3, 3] -= PRE_GRASP_M * approach
    z_rest = _com_height(cell, object_body_id)
    gripper = SimGripper(cell, spec)
    try:
        gripper.teleport(pre, min(width, spec.max_opening_m))
        gripper.step(24)
        gripper.move_by(PRE_GRASP_M * approach)
        gripper.command_opening(0.0, GRIP_FORCE_N)
        gripper.step(int(0.5 / TIME_STEP))
        gripper.move_by(np.array([0.0, 0.0, LIFT_M]))
        gripper.step(int(HOLD_S / TIME_STEP))
        lifted = _com_height(cell, object_body_id) - z_rest
        in_hand = all(gripper.touches(object_body_id))
        success = lifted >= SUCCESS_LIFT_M and in_hand
        reason = "" if success else ("dropped" if not in_hand else "not lifted")
        return GraspOutcome(success, lifted, in_hand, gripper.opening(), reason)
    finally:
        gripper.remove()
