"""Grasp planning for a parallel-jaw gripper: antipodal candidates per class, ranked per scene.

Pure numpy; no network and no physics engine, so the grasp service and the lab share it.
"""

from graspstack.grasping.candidates import GraspCandidates, grasp_candidates
from graspstack.grasping.gripper import DEFAULT_GRIPPER, GripperSpec
from graspstack.grasping.planner import Grasp, TablePlane, plan_grasps

__all__ = [
    "DEFAULT_GRIPPER",
    "Grasp",
    "GraspCandidates",
    "GripperSpec",
    "TablePlane",
    "grasp_candidates",
    "plan_grasps",
]
