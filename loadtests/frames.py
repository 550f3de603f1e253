"""Real lab frames for the load test: scene folders (CONTRACTS section 2) read once per process.

The PNG bytes go on the wire exactly as they are on disk, as a robot's camera driver would send
them; re-encoding would measure our encoder instead of the services.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from graspstack.geometry import pose_to_transform
from graspstack.grasping.planner import TablePlane
from graspstack.scene_io import DEPTH_FILE, RGB_FILE, SCENE_FILE, SceneFile
from graspstack.v1 import frames_pb2

ROOT = Path(__file__).resolve().parents[1]
FRAMES_ENV = "GRASPSTACK_LOAD_FRAMES"
DEFAULT_FRAMES = ROOT / "runs" / "load" / "frames"  # what `make load` renders


@dataclass(frozen=True)
class LabFrame:
    name: str
    rgb: bytes
    depth: bytes
    depth_scale: float
    intrinsics: frames_pb2.Intrinsics
    table_plane: tuple[float, float, float, float]  # [nx, ny, nz, d] in the camera frame

    def proto(self, robot_id: str) -> frames_pb2.Frame:
        return frames_pb2.Frame(
            rgb=self.rgb,
            depth=self.depth,
            depth_scale=self.depth_scale,
            intrinsics=self.intrinsics,
            robot_id=robot_id,
        )


def frames_dir() -> Path:
    return Path(os.environ.get(FRAMES_ENV) or DEFAULT_FRAMES)


def read_frame(folder: Path) -> LabFrame:
    meta = SceneFile.model_validate_json((folder / SCENE_FILE).read_text())
    i = meta.intrinsics
    # The robot knows its camera's calibration, hence the table plane, as lab/robot.py does.
    T_world_cam = pose_to_transform(meta.T_world_cam.position_m, meta.T_world_cam.quaternion_xyzw)
    plane = TablePlane.from_T_world_cam(T_world_cam)
    return LabFrame(
        name=folder.name,
        rgb=(folder / RGB_FILE).read_bytes(),
        depth=(folder / DEPTH_FILE).read_bytes(),
        depth_scale=meta.depth_scale,
        intrinsics=frames_pb2.Intrinsics(
            fx=i.fx, fy=i.fy, cx=i.cx, cy=i.cy, width=meta.width, height=meta.height
        ),
        table_plane=(*(float(v) for v in plane.normal), float(plane.offset)),
    )


@functools.cache
def load_frames(folder: Path) -> tuple[LabFrame, ...]:
    """Every scene folder under `folder`, sorted; cached so all users of a process share one copy."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no lab frames at {folder}: render them (`make load` does) or set {FRAMES_ENV}"
        )
    scenes = sorted(p for p in folder.iterdir() if (p / SCENE_FILE).is_file())
    if not scenes:
        raise FileNotFoundError(f"{folder} holds no scene folders (rgb.png, depth.png, scene.json)")
    return tuple(read_frame(p) for p in scenes)
