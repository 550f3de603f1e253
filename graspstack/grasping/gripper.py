"""The parallel-jaw gripper the planner plans for and the lab simulates.

Gripper frame (what a `Grasp.T_cam_gripper` places):
  - origin: midway between the two fingertips (the free ends of the fingers);
  - z: approach direction, from the palm towards the object (the fingers point along +z);
  - x: closing direction, the fingers open and close along x, symmetrically about the origin;
  - y = z cross x, across the finger pads.
The fingers occupy z in [-finger_depth, 0]; the palm sits behind them, z in
[-finger_depth - palm_thickness, -finger_depth]. A grasp's contact centre lies on the z axis at
z = -contact_depth (inside the finger pads), not at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GripperSpec:
    # 11 cm (Robotiq 2F-140 class, not 2F-85): the mug's body (8.2 cm) and the teddy's (8.4 cm) must fit
    # with clearance; 8.5 cm left only rim and handle grasps on the mug.
    max_opening_m: float = 0.110  # distance between the finger pads fully open
    min_opening_m: float = 0.004  # thinner parts cannot be pinched reliably
    finger_depth_m: float = 0.045  # finger length along z
    finger_width_m: float = 0.022  # pad size along y
    finger_thickness_m: float = 0.010  # finger size along x
    palm_width_m: float = 0.040  # along y (the palm's x size spans both fully opened fingers)
    palm_thickness_m: float = 0.030  # along z
    friction: float = 0.5  # Coulomb coefficient assumed for the friction cone (conservative)
    clearance_m: float = 0.006  # free space left each side between pad and object before closing

    @property
    def palm_length_m(self) -> float:
        return self.max_opening_m + 2 * self.finger_thickness_m

    @property
    def friction_cone_rad(self) -> float:
        return float(np.arctan(self.friction))

    def opening_for(self, contact_width_m: float) -> float:
        """Pre-grasp opening for an object this wide at the contacts (capped at the maximum)."""
        return min(self.max_opening_m, contact_width_m + 2 * self.clearance_m)

    def fits(self, contact_width_m: np.ndarray | float) -> np.ndarray | bool:
        """Widths the gripper can open around with clearance and still close on."""
        w = np.asarray(contact_width_m)
        return (w >= self.min_opening_m) & (w + 2 * self.clearance_m <= self.max_opening_m)

    def boxes(self, opening_m: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """(lower corner, upper corner) of each axis-aligned box in the gripper frame: fingers, palm."""
        h, t, fw, fd = opening_m / 2, self.finger_thickness_m, self.finger_width_m / 2, self.finger_depth_m
        pl, pw = self.palm_length_m / 2, self.palm_width_m / 2
        return [
            (np.array([h, -fw, -fd]), np.array([h + t, fw, 0.0])),
            (np.array([-h - t, -fw, -fd]), np.array([-h, fw, 0.0])),
            (np.array([-pl, -pw, -fd - self.palm_thickness_m]), np.array([pl, pw, -fd])),
        ]


DEFAULT_GRIPPER = GripperSpec()
