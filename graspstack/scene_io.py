"""Scenes on disk (CONTRACTS section 2): rgb.png, depth.png, scene.json, plus our annotations.

`annotations.json` and `masks.png` sit beside the contract files; they carry what training and
evaluation need beyond the contract (slice, seed, instance masks, 2D keypoints).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from graspstack.frames import Frame, Intrinsics, ObjectPose

RGB_FILE = "rgb.png"
DEPTH_FILE = "depth.png"
SCENE_FILE = "scene.json"
ANNOTATIONS_FILE = "annotations.json"
MASKS_FILE = "masks.png"


class PinholeModel(BaseModel):
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float


class PoseModel(BaseModel):
    position_m: list[float] = Field(min_length=3, max_length=3)
    quaternion_xyzw: list[float] = Field(min_length=4, max_length=4)


class SceneObject(PoseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_name: str = Field(alias="class")
    visible_fraction: float = Field(ge=0.0, le=1.0)


class SceneFile(BaseModel):
    """scene.json exactly as CONTRACTS section 2 defines it."""

    width: int = Field(ge=1)
    height: int = Field(ge=1)
    intrinsics: PinholeModel
    depth_scale: float = Field(default=0.001, gt=0)
    T_world_cam: PoseModel
    objects: list[SceneObject]

    def intrinsics_obj(self) -> Intrinsics:
        i = self.intrinsics
        return Intrinsics(i.fx, i.fy, i.cx, i.cy, self.width, self.height)

    def ground_truth(self) -> list[ObjectPose]:
        return [
            ObjectPose(
                o.class_name,
                np.array(o.position_m),
                np.array(o.quaternion_xyzw),
                1.0,
                {"visible_fraction": o.visible_fraction},
            )
            for o in self.objects
        ]


class Scene:
    """A scene folder, loaded lazily."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = SceneFile.model_validate_json((self.path / SCENE_FILE).read_text())
        ann = self.path / ANNOTATIONS_FILE
        self.annotations: dict = json.loads(ann.read_text()) if ann.exists() else {}

    @property
    def slice(self) -> str:
        return self.annotations.get("slice", "unknown")

    @property
    def name(self) -> str:
        return self.path.name

    def frame(self) -> Frame:
        rgb = read_rgb(self.path / RGB_FILE)
        depth = read_depth(self.path / DEPTH_FILE, self.meta.depth_scale)
        return Frame(rgb=rgb, depth_m=depth, intrinsics=self.meta.intrinsics_obj())

    def ground_truth(self) -> list[ObjectPose]:
        return self.meta.ground_truth()

    def masks(self) -> np.ndarray | None:
        """Instance ids: 0 background, k = index k-1 into scene.json objects."""
        p = self.path / MASKS_FILE
        return cv2.imread(str(p), cv2.IMREAD_UNCHANGED) if p.exists() else None


def read_rgb(path: str | Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode colour image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_depth(path: str | Path, depth_scale: float = 0.001) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path} is not a 16-bit single-channel depth PNG")
    return raw.astype(np.float32) * np.float32(depth_scale)


def encode_depth(depth_m: np.ndarray, depth_scale: float = 0.001) -> np.ndarray:
    """Metres to uint16 counts; readings outside the uint16 range become 0 (no reading)."""
    counts = np.round(np.nan_to_num(depth_m, nan=0.0) / depth_scale)
    counts[(counts < 0) | (counts > 65535)] = 0
    return counts.astype(np.uint16)


def write_scene(
    out: str | Path,
    rgb: np.ndarray,
    depth_m: np.ndarray,
    scene: SceneFile,
    annotations: dict | None = None,
    masks: np.ndarray | None = None,
) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / RGB_FILE), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(out / DEPTH_FILE), encode_depth(depth_m, scene.depth_scale))
    (out / SCENE_FILE).write_text(scene.model_dump_json(by_alias=True, indent=1))
    if annotations is not None:
        (out / ANNOTATIONS_FILE).write_text(json.dumps(annotations, indent=1))
    if masks is not None:
        cv2.imwrite(str(out / MASKS_FILE), masks.astype(np.uint8))
    return out


def iter_scene_dirs(root: str | Path) -> Iterator[Path]:
    """Every folder under root (root included) that holds a scene.json, in sorted order."""
    root = Path(root)
    if (root / SCENE_FILE).exists():
        yield root
        return
    for p in sorted(root.rglob(SCENE_FILE)):
        yield p.parent
