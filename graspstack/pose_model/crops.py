"""Object crops: the square windows the second stage (CropNet) looks at, and their training cache.

A crop is a square window of the full-resolution frame centred on one object proposal, its side a
fixed metric size for the class (so an object fills about the same share of every crop whatever its
distance), resampled to CROP_PX pixels. Every crop pixel keeps its exact full-resolution coordinate
(`CropWindow.pixel_coords`), so its depth back-projects to a camera-frame point: the network predicts
where on the object model that point lies, and the pose follows from 3D-3D correspondences.

Training crops are cut once from the rendered scenes into a cache with CACHE_MARGIN more context than
the network sees; each training step then cuts a jittered window (centre and scale) out of it, so the
network learns to cope with the stage-1 proposals' centre and depth errors.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from graspstack.catalogue import CATALOGUE, CLASS_NAMES
from graspstack.frames import Intrinsics
from graspstack.geometry import quat_to_matrix
from graspstack.pose_model.geometry import bbox_centre_obj
from graspstack.scene_io import Scene, iter_scene_dirs

CROP_PX = 64
CACHE_PX = 96
CACHE_MARGIN = 1.5  # cached window side / nominal crop side
MIN_CROP_SIDE_M = 0.08  # a lego's crop keeps some context around it
MIN_TRAIN_VISIBLE = 0.1  # objects less visible than this are not trained on (metric counts >= 0.3)
MIN_TRAIN_PIXELS = 30


@cache
def crop_side_m(class_name: str) -> float:
    """Metric side of a class's crop: the object's largest extent plus room for centre errors."""
    return max(1.4 * max(CATALOGUE[class_name].size_m), MIN_CROP_SIDE_M)


@dataclass(frozen=True)
class CropWindow:
    """Crop pixel (i, j) (row, col) looks at full-resolution pixel (x0 + j*step, y0 + i*step)."""

    x0: float
    y0: float
    step: float
    size: int

    @staticmethod
    def around(centre_px: np.ndarray, side_px: float, size: int) -> CropWindow:
        step = side_px / size
        # Pixel centres of a window [c - side/2, c + side/2) in pixel-centre coordinates.
        return CropWindow(
            float(centre_px[0] - side_px / 2 + 0.5 * step),
            float(centre_px[1] - side_px / 2 + 0.5 * step),
            step,
            size,
        )

    def pixel_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution (x, y) of each crop pixel, each (size,)."""
        k = np.arange(self.size, dtype=np.float32) * self.step
        return self.x0 + k, self.y0 + k

    def cut(self, rgb: np.ndarray, depth_m: np.ndarray, *extra: np.ndarray) -> list[np.ndarray]:
        """Resampled colour (area average), depth and extra label images (nearest: no blended depths)."""
        m = np.array([[self.step, 0.0, self.x0], [0.0, self.step, self.y0]], np.float32)
        flags = cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST
        shape = (self.size, self.size)
        if self.step > 1.5:  # downsampling: average colour first so thin edges do not alias
            k = round(self.step) | 1
            rgb = cv2.blur(rgb, (k, k))
        out = [cv2.warpAffine(rgb, m, shape, flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)]
        out.append(cv2.warpAffine(depth_m, m, shape, flags=flags, borderValue=0.0))
        out.extend(cv2.warpAffine(e, m, shape, flags=flags, borderValue=0) for e in extra)
        return out

    def sub(self, cx: float, cy: float, side: float, size: int) -> CropWindow:
        """A window inside this one: centre (cx, cy) and side in this window's pixels."""
        inner = CropWindow.around(np.array([cx, cy]), side, size)
        return CropWindow(
            self.x0 + inner.x0 * self.step, self.y0 + inner.y0 * self.step, inner.step * self.step, size
        )


def back_project_crop(depth_m: np.ndarray, window: CropWindow, intr: np.ndarray) -> np.ndarray:
    """(S, S, 3) camera-frame points of a crop's depth; intr = fx, fy, cx, cy (full resolution)."""
    xs, ys = window.pixel_coords()
    fx, fy, cx, cy = intr
    rx = (xs - cx) / fx
    ry = (ys - cy) / fy
    return np.stack([depth_m * rx[None, :], depth_m * ry[:, None], depth_m], axis=-1).astype(np.float32)


def window_for(centre_px: np.ndarray, z_m: float, side_m: float, intr: Intrinsics, size: int) -> CropWindow:
    return CropWindow.around(centre_px, side_m * intr.fx / max(z_m, 0.1), size)


# ---- training cache -------------------------------------------------------------------------------


def scene_objects(scene: Scene) -> list[tuple]:
    """(class name, R_cam_obj, t_cam_obj, visible fraction) of a lab scene's objects, in its order."""
    return [
        (o.class_name, quat_to_matrix(o.quaternion_xyzw), np.asarray(o.position_m), o.visible_fraction)
        for o in scene.meta.objects
    ]


def _object_crops(path: Path) -> list[dict]:
    """Cached crops of one scene folder."""
    scene = Scene(path)
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    return scene_crops(scene.frame(), scene.masks(), scene_objects(scene), rng)


def turned_crop(
    rgb: np.ndarray,
    depth_m: np.ndarray,
    window: CropWindow,
    centre_px: np.ndarray,
    axis: np.ndarray,
    centre_z: float,
    fx: float,
    px: int,
    side_mm: float,
    depth_scale_m: float,
) -> np.ndarray:
    """(5, px, px) float32 from a cut window (rgb, depth at the window's pixels), side_mm of metric
    side at centre_z: centred on centre_px (full-resolution px) and turned so that `axis` (a unit
    image direction) is the crop's +u. Channels: colour standardised per crop (light and table colour
    vary), depth relative to centre_z in units of depth_scale_m (clipped to +-3), valid depth.
    The small nets that judge one pose hypothesis (wayround.py, handle.py) look at such crops."""
    s = (side_mm / 1000.0 / px) * fx / centre_z / window.step  # window px per crop px
    cos, sin = axis[0] * s, axis[1] * s
    ox = (centre_px[0] - window.x0) / window.step
    oy = (centre_px[1] - window.y0) / window.step
    h = (px - 1) / 2.0
    # Crop pixel (j, i) -> window pixel: centre + turn * scale * (j - h, i - h).
    m = np.array([[cos, -sin, ox - h * (cos - sin)], [sin, cos, oy - h * (sin + cos)]], np.float32)
    shape = (px, px)
    colour = cv2.warpAffine(rgb, m, shape, flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR).astype(np.float32)
    depth = cv2.warpAffine(depth_m, m, shape, flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST)
    valid = depth > 0
    colour = (colour - colour.mean()) / (colour.std() + 1.0)
    rel = np.where(valid, np.clip((depth - centre_z) / depth_scale_m, -3.0, 3.0), 0.0)
    x = np.concatenate([colour, rel[..., None], valid[..., None]], axis=-1)
    return np.ascontiguousarray(np.moveaxis(x, -1, 0), dtype=np.float32)


def trainable(masks: np.ndarray, k: int, visible: float) -> bool:
    """Whether object k (mask id k + 1) shows enough to get a training crop (scene_crops keeps these,
    in object order, then its one negative)."""
    return visible >= MIN_TRAIN_VISIBLE and int((masks == k + 1).sum()) >= MIN_TRAIN_PIXELS


def negative_pixels(masks: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
    """(N, 2) row, column of the pixels a negative crop may centre on: table and distractors (no
    catalogue object) with a depth reading. scene_crops cuts one negative where there is any."""
    return np.argwhere((masks == 0) & (depth_m > 0))


def scene_crops(frame, masks: np.ndarray, objects: list[tuple], rng: np.random.Generator) -> list[dict]:
    """Crops of one frame: one per sufficiently visible object, plus one negative.

    objects[k] = (class name, R_cam_obj, t_cam_obj, visible fraction) for mask id k + 1; the flywheel
    passes labelled hard cases through here too (their masks come from the labelled poses).
    """
    intr = frame.intrinsics
    k_arr = np.array([intr.fx, intr.fy, intr.cx, intr.cy], np.float32)
    out = []
    for k, (name, R, t, visible) in enumerate(objects):
        if not trainable(masks, k, visible):
            continue
        c = R @ bbox_centre_obj(name) + t
        centre = np.array([intr.fx * c[0] / c[2] + intr.cx, intr.fy * c[1] / c[2] + intr.cy])
        side_m = crop_side_m(name)
        w = window_for(centre, c[2], side_m * CACHE_MARGIN, intr, CACHE_PX)
        rgb, depth, mask = w.cut(frame.rgb, frame.depth_m, (masks == k + 1).astype(np.uint8))
        out.append(_record(rgb, depth, mask, w, k_arr, CLASS_NAMES.index(name) + 1, R, t, c[2], side_m))
    free = negative_pixels(masks, frame.depth_m)
    if len(free):
        y, x = free[rng.integers(len(free))]
        z = float(frame.depth_m[y, x])
        side_m = crop_side_m(CLASS_NAMES[rng.integers(len(CLASS_NAMES))])
        w = window_for(np.array([x, y], float), z, side_m * CACHE_MARGIN, intr, CACHE_PX)
        rgb, depth, mask = w.cut(frame.rgb, frame.depth_m, np.zeros_like(masks, np.uint8))
        out.append(_record(rgb, depth, mask, w, k_arr, 0, np.eye(3), np.zeros(3), z, side_m))
    return out


def _record(rgb, depth, mask, w: CropWindow, k_arr, cls, R, t, z, side_m) -> dict:
    return {
        "rgb": rgb,
        "depth_mm": np.round(depth * 1000.0).astype(np.uint16),
        "mask": mask.astype(bool),
        "window": np.array([w.x0, w.y0, w.step], np.float32),
        "intr": k_arr,
        "cls": np.int64(cls),
        "rot": R.astype(np.float32),
        "pos": np.asarray(t, np.float32),
        "centre_z": np.float32(z),
        "side_m": np.float32(side_m),
    }


@dataclass
class CropArrays:
    rgb: np.ndarray  # (N, C, C, 3) uint8, C = CACHE_PX
    depth_mm: np.ndarray  # (N, C, C) uint16
    mask: np.ndarray  # (N, C, C) bool: the centred object's visible pixels
    window: np.ndarray  # (N, 3) x0, y0, step of the cached window
    intr: np.ndarray  # (N, 4)
    cls: np.ndarray  # (N,) 0 = no object, k = CLASS_NAMES[k-1]
    rot: np.ndarray  # (N, 3, 3) R_cam_obj
    pos: np.ndarray  # (N, 3) t_cam_obj
    centre_z: np.ndarray  # (N,) camera z of the object's bbox centre (of the point, for negatives)
    side_m: np.ndarray  # (N,) nominal crop side

    def __len__(self) -> int:
        return len(self.cls)

    def subset(self, idx: np.ndarray) -> CropArrays:
        return CropArrays(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def per_scene_cache(
    root: Path, name: str, per_scene: Callable[[Path], list[dict]], workers: int = 2
) -> dict[str, np.ndarray] | None:
    """Arrays stacked from per_scene(scene folder) (a list of same-keyed dicts a scene) over root's
    scenes, kept in root/<name>.npz beside <name>.json: built on first use and again when the scene
    count changed. None where no scene gave anything. per_scene runs in `workers` processes."""
    path = root / f"{name}.npz"
    meta = path.with_suffix(".json")
    dirs = [d for d in iter_scene_dirs(root) if d.name.isdigit()]
    if not dirs:
        raise FileNotFoundError(f"no scenes under {root}")
    known = json.loads(meta.read_text()) if meta.exists() else {}
    if known.get("scenes") != len(dirs) or (known.get("items") != 0 and not path.exists()):
        with ProcessPoolExecutor(workers) as pool:
            scenes = pool.map(per_scene, dirs, chunksize=16)
            items = [it for scene in tqdm(scenes, total=len(dirs), desc=f"{name} {root}") for it in scene]
        if items:
            np.savez(path, **{k: np.stack([it[k] for it in items]) for k in items[0]})
        known = {"root": str(root), "scenes": len(dirs), "items": len(items)}
        meta.write_text(json.dumps(known))
    if known.get("items") == 0:
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def load_crops(root: str | Path, workers: int = 2) -> CropArrays:
    """The crop cache of a scene folder (per_scene_cache)."""
    arrays = per_scene_cache(Path(root), f"crops_{CACHE_PX}", _object_crops, workers)
    if arrays is None:  # every scene gives at least its negative crop; a folder of empty frames does not
        raise ValueError(f"no crops in the scenes of {root}")
    return CropArrays(**arrays)


def stack_crops(records: list[dict]) -> CropArrays:
    return CropArrays(**{k: np.stack([r[k] for r in records]) for k in records[0]})


def concat_crops(parts: list[CropArrays]) -> CropArrays:
    return CropArrays(
        **{f: np.concatenate([getattr(p, f) for p in parts]) for f in CropArrays.__dataclass_fields__}
    )
