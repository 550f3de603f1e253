"""What the frame nets' trainers (wayround_train, handle_train, studs_train) share: a sample's cached
window, the jitter a fitted pose brings to where a crop is cut, and the nets' answers over held-out
samples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from graspstack.pose_model.crops import CropWindow

HELD_OUT_CHUNK = 256


def window_at(samples, i: int) -> CropWindow:
    """Sample i's cached window (samples: any of the trainers' sample sets, window (N, 3) x0, y0, step)."""
    x0, y0, step = (float(v) for v in samples.window[i])
    return CropWindow(x0, y0, step, samples.rgb.shape[1])


def jittered(
    centre_px: np.ndarray,
    z: float,
    fx: float,
    rng: np.random.Generator,
    jitter_mm: float,
    jitter_scale: float,
) -> tuple[np.ndarray, float]:
    """(centre, depth) moved as a fitted pose's are off the truth: the centre up to jitter_mm either
    way in the image, the depth (so the crop's scale) by up to jitter_scale of itself."""
    centre = centre_px + rng.uniform(-1, 1, 2) * jitter_mm / 1000.0 * fx / z
    return centre, z * (1.0 + rng.uniform(-jitter_scale, jitter_scale))


def held_out_outputs(
    net: torch.nn.Module,
    held,
    make_batch: Callable[..., tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The net's outputs and the targets over every held-out sample, in chunks, in eval mode (the net
    is left in training mode after)."""
    net.eval()
    outs, targets = [], []
    with torch.inference_mode():
        for start in range(0, len(held), HELD_OUT_CHUNK):
            x, y = make_batch(held, np.arange(start, min(start + HELD_OUT_CHUNK, len(held))), rng)
            outs.append(net(torch.from_numpy(x)).numpy())
            targets.append(y)
    net.train()
    return np.concatenate(outs), np.concatenate(targets)
