"""Training of the lego studs net (studs.py) on the cached training crops (crops.py).

Every cached lego crop gives one sample a step it is drawn: cut upright around the true box centre,
then turned in the image plane by any angle (the target turned with it, so the net learns the face
and not the image's directions), with the jitter a fitted pose brings (centre, scale). One crop in
ten of each folder is held out to report how often the net's axis lands within 45 deg of the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graspstack.catalogue import CLASS_NAMES
from graspstack.frames import Intrinsics
from graspstack.pose_model.budget import frame_net_info, train_for
from graspstack.pose_model.crops import load_crops
from graspstack.pose_model.frame_net_data import held_out_outputs, jittered, window_at
from graspstack.pose_model.studs import StudsNet, box_centre_px, in_crop_frame, studs_crop

LEGO = CLASS_NAMES.index("lego") + 1
MIN_MASK_PIXELS = 30
JITTER_MM = 3.0  # a fitted lego's box centre is a few millimetres off
JITTER_SCALE = 0.08
HOLD_OUT_EVERY = 10


@dataclass
class StudSamples:
    rgb: np.ndarray  # (N, C, C, 3) cached windows
    depth_m: np.ndarray  # (N, C, C)
    window: np.ndarray  # (N, 3) x0, y0, step
    fx: np.ndarray  # (N,)
    centre_px: np.ndarray  # (N, 2) the box centre, full-resolution px
    z: np.ndarray  # (N,) the box centre's depth
    axis: np.ndarray  # (N, 3) the stud axis in the camera frame

    def __len__(self) -> int:
        return len(self.z)

    def subset(self, idx: np.ndarray) -> StudSamples:
        return StudSamples(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def stud_samples(roots: list[Path]) -> tuple[StudSamples, StudSamples]:
    """(training, held-out) lego crops of the folders' caches."""
    parts: dict[str, list] = {f: [] for f in StudSamples.__dataclass_fields__}
    held: list[np.ndarray] = []
    for root in roots:
        c = load_crops(root)
        keep = np.nonzero((c.cls == LEGO) & (c.mask.reshape(len(c), -1).sum(1) >= MIN_MASK_PIXELS))[0]
        if not len(keep):
            continue
        centres, zs = [], []
        for i in keep:
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = c.rot[i], c.pos[i]
            fx, fy, cx, cy = (float(v) for v in c.intr[i])
            centre, z = box_centre_px(T, Intrinsics(fx, fy, cx, cy, 0, 0))
            centres.append(centre), zs.append(z)
        parts["rgb"].append(c.rgb[keep])
        parts["depth_m"].append(c.depth_mm[keep].astype(np.float32) / 1000.0)
        parts["window"].append(c.window[keep])
        parts["fx"].append(c.intr[keep, 0])
        parts["centre_px"].append(np.array(centres))
        parts["z"].append(np.array(zs))
        parts["axis"].append(c.rot[keep][:, :, 2])
        held.append(np.arange(len(keep)) % HOLD_OUT_EVERY == 0)
        del c
    if not held:
        raise ValueError(f"no lego in the crops of {', '.join(map(str, roots))}")
    s = StudSamples(**{k: np.concatenate(v) for k, v in parts.items()})
    h = np.concatenate(held)
    return s.subset(np.nonzero(~h)[0]), s.subset(np.nonzero(h)[0])


def make_batch(
    s: StudSamples, idx: np.ndarray, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Crops and targets (B, 3), the stud axis in each crop's frame. rng=None: upright, no jitter."""
    xs, ys = [], []
    for i in idx:
        centre, z, turn = s.centre_px[i], float(s.z[i]), 0.0
        if rng is not None:
            turn = rng.uniform(0.0, 2.0 * np.pi)
            centre, z = jittered(centre, z, float(s.fx[i]), rng, JITTER_MM, JITTER_SCALE)
        axis = np.array([np.cos(turn), np.sin(turn)])
        xs.append(studs_crop(s.rgb[i], s.depth_m[i], window_at(s, i), centre, axis, z, float(s.fx[i])))
        ys.append(in_crop_frame(s.axis[i], axis))
    return np.stack(xs), np.array(ys, np.float32)


def held_out_scores(net: StudsNet, held: StudSamples) -> dict:
    """On the held-out crops, upright: the share whose axis lands within 45 deg of the truth, the
    median angle off, and the median sureness (the answer's length)."""
    out, y = held_out_outputs(net, held, make_batch)
    n = np.linalg.norm(out, axis=1)
    a = np.degrees(np.arccos(np.clip((out * y).sum(1) / np.maximum(n, 1e-9), -1, 1)))
    return {
        "held_out_within_45_deg": round(float((a < 45).mean()), 4),
        "held_out_angle_p50_deg": round(float(np.median(a)), 2),
        "held_out_sureness_p50": round(float(np.median(n)), 3),
    }


def train_studs(roots: list[Path], minutes: float, seed: int = 0, batch: int = 128) -> tuple[StudsNet, dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, held = stud_samples(roots)
    net = StudsNet()

    def step(_elapsed: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = make_batch(train, rng.integers(len(train), size=batch), rng)
        loss = ((net(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).sum(1).mean()
        return loss, {"axis": loss}

    run = train_for(net, step, minutes, 2e-3, "studs net")
    info = frame_net_info(roots, len(train), len(held), run, batch) | held_out_scores(net, held)
    return net.eval(), info
