"""What a robot sends (a frame) and what a pose estimator answers (object poses)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graspstack.geometry import pose_to_transform


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, no distortion (CONTRACTS section 2)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def as_matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, scale: float) -> Intrinsics:
        """Intrinsics of the same camera at a resized resolution (pixel centres kept consistent)."""
        return Intrinsics(
            fx=self.fx * scale,
            fy=self.fy * scale,
            cx=(self.cx + 0.5) * scale - 0.5,
            cy=(self.cy + 0.5) * scale - 0.5,
            width=round(self.width * scale),
            height=round(self.height * scale),
        )


@dataclass
class Frame:
    """One RGB-D frame: rgb is HxWx3 uint8, depth_m is HxW float32 metres (0 = no reading)."""

    rgb: np.ndarray
    depth_m: np.ndarray
    intrinsics: Intrinsics


@dataclass
class ObjectPose:
    """A catalogue object's pose T_cam_obj in the OpenCV camera frame."""

    class_name: str
    position_m: np.ndarray
    quaternion_xyzw: np.ndarray
    confidence: float = 1.0
    extras: dict = field(default_factory=dict)

    def as_transform(self) -> np.ndarray:
        return pose_to_transform(self.position_m, self.quaternion_xyzw)

    def to_json(self) -> dict:
        return {
            "class": self.class_name,
            "position_m": [float(v) for v in self.position_m],
            "quaternion_xyzw": [float(v) for v in self.quaternion_xyzw],
            "confidence": float(self.confidence),
        }
