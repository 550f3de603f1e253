"""Training of the mug handle net (handle.py) on windows cut around the training scenes' mugs.

The windows (handle.mug_window, finer than CropNet's crop cache) are cut once per scene folder into
`mug_windows_<px>.npz` there. Every mug whose frame is defined gives one sample an epoch, cut with
the jitter a fitted pose brings (the image turn of e2, the centre, the scale) and mirrored across
the crop's u axis half the time (a mug is mirror-symmetric about its handle's plane: the mirrored
crop is a mug whose azimuth is the negative). One mug in ten of each folder is held out to report
the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graspstack.geometry import quat_to_matrix
from graspstack.pose_model.budget import frame_net_info, train_for
from graspstack.pose_model.crops import per_scene_cache
from graspstack.pose_model.frame_net_data import held_out_outputs, jittered, window_at
from graspstack.pose_model.handle import (
    WINDOW_PX,
    HandleNet,
    crop_geometry,
    handle_crop,
    mug_window,
)
from graspstack.pose_model.wayround import turn_axis
from graspstack.scene_io import Scene

MIN_MASK_PIXELS = 30
JITTER_TURN_DEG = 3.0  # the fitted axis is a few degrees off at most: the body fixes it
JITTER_MM = 3.0
JITTER_SCALE = 0.06
HOLD_OUT_EVERY = 10


@dataclass
class MugSamples:
    rgb: np.ndarray  # (N, C, C, 3) cached windows, C = handle.WINDOW_PX
    depth_m: np.ndarray  # (N, C, C)
    window: np.ndarray  # (N, 3) x0, y0, step
    fx: np.ndarray  # (N,)
    centre_px: np.ndarray  # (N, 2) the body's middle, full-resolution px
    axis: np.ndarray  # (N, 2) unit image direction of e2
    z: np.ndarray  # (N,)
    azimuth_deg: np.ndarray  # (N,) the true handle azimuth

    def __len__(self) -> int:
        return len(self.z)

    def subset(self, idx: np.ndarray) -> MugSamples:
        return MugSamples(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def _scene_mugs(path: Path) -> list[dict]:
    """The windows of one scene folder's mugs, with where each one's frame puts it."""
    scene = Scene(path)
    frame, masks = scene.frame(), scene.masks()
    intr = frame.intrinsics
    out = []
    for k, o in enumerate(scene.meta.objects):
        if o.class_name != "mug" or int((masks == k + 1).sum()) < MIN_MASK_PIXELS:
            continue
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = quat_to_matrix(o.quaternion_xyzw), np.asarray(o.position_m)
        geometry = crop_geometry(T, intr)
        if geometry is None:
            continue
        centre, axis, z, azimuth = geometry
        w = mug_window(centre, z, intr)
        rgb, depth = w.cut(frame.rgb, frame.depth_m.astype(np.float32))
        out.append(
            {
                "rgb": rgb,
                "depth_mm": np.round(depth * 1000.0).astype(np.uint16),
                "window": np.array([w.x0, w.y0, w.step], np.float32),
                "fx": np.float32(intr.fx),
                "centre_px": centre.astype(np.float32),
                "axis": axis.astype(np.float32),
                "z": np.float32(z),
                "azimuth_deg": np.float32(azimuth),
            }
        )
    return out


def load_mug_windows(root: Path, workers: int = 2) -> MugSamples | None:
    """The mug windows of a scene folder (crops.per_scene_cache), None where it holds no mug."""
    arrays = per_scene_cache(root, f"mug_windows_{WINDOW_PX}", _scene_mugs, workers)
    if arrays is None:
        return None
    arrays["depth_m"] = arrays.pop("depth_mm").astype(np.float32) / 1000.0
    return MugSamples(**arrays)


def mug_samples(roots: list[Path]) -> tuple[MugSamples, MugSamples]:
    """(training, held-out) mug windows of the folders: one in HOLD_OUT_EVERY of each held out."""
    parts = [p for root in roots if (p := load_mug_windows(Path(root))) is not None]
    if not parts:
        raise ValueError(f"no mug in the scenes of {', '.join(map(str, roots))}")
    fields = MugSamples.__dataclass_fields__
    s = MugSamples(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})
    held = np.concatenate([np.arange(len(p)) % HOLD_OUT_EVERY == 0 for p in parts])
    return s.subset(np.nonzero(~held)[0]), s.subset(np.nonzero(held)[0])


def make_batch(
    s: MugSamples, idx: np.ndarray, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Crops and targets (B, 2) = (cos, sin) of the azimuth. rng=None: no jitter, no mirror."""
    xs, ys = [], []
    for i in idx:
        axis, centre, z = s.axis[i], s.centre_px[i], float(s.z[i])
        azimuth = np.radians(s.azimuth_deg[i])
        if rng is not None:
            axis = turn_axis(axis, rng.uniform(-JITTER_TURN_DEG, JITTER_TURN_DEG))
            centre, z = jittered(centre, z, float(s.fx[i]), rng, JITTER_MM, JITTER_SCALE)
        x = handle_crop(s.rgb[i], s.depth_m[i], window_at(s, i), centre, axis, z, float(s.fx[i]))
        if rng is not None and rng.random() < 0.5:
            x, azimuth = np.ascontiguousarray(x[:, :, ::-1]), -azimuth
        xs.append(x)
        ys.append((np.cos(azimuth), np.sin(azimuth)))
    return np.stack(xs), np.array(ys, np.float32)


def held_out_errors(net: HandleNet, held: MugSamples) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out crop: the net's azimuth error (degrees) and its sureness (the answer's length)."""
    out, y = held_out_outputs(net, held, make_batch)
    diff = np.arctan2(out[:, 1], out[:, 0]) - np.arctan2(y[:, 1], y[:, 0])
    return np.abs(np.degrees(np.angle(np.exp(1j * diff)))), np.hypot(out[:, 0], out[:, 1])


def error_summary(errors: np.ndarray, sure: np.ndarray) -> dict:
    """Median / 90th-percentile error and share within 5 deg, over all held-out crops and over
    those the net is sure of (length >= 0.8)."""

    def part(mask: np.ndarray) -> dict:
        e = errors[mask]
        if not len(e):
            return {"n": 0}
        return {
            "n": len(e),
            "p50_deg": round(float(np.median(e)), 2),
            "p90_deg": round(float(np.percentile(e, 90)), 2),
            "within_5_deg": round(float((e < 5.0).mean()), 4),
        }

    return {"all": part(np.ones_like(sure, bool)), "sure": part(sure >= 0.8)}


def train_handle(roots: list[Path], minutes: float, seed: int = 0, batch: int = 64) -> tuple[HandleNet, dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, held = mug_samples(roots)
    net = HandleNet()

    def step(_elapsed: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = make_batch(train, rng.integers(len(train), size=batch), rng)
        loss = torch.nn.functional.mse_loss(net(torch.from_numpy(x)), torch.from_numpy(y))
        return loss, {"mse": loss}

    run = train_for(net, step, minutes, 2e-3, "handle net")
    errors, sure = held_out_errors(net, held)
    info = frame_net_info(roots, len(train), len(held), run, batch) | {
        "held_out_error": error_summary(errors, sure),
    }
    return net.eval(), info
