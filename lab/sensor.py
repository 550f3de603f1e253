"""Depth sensor noise of CONTRACTS section 3: range-dependent Gaussian noise and dropped pixels."""

from __future__ import annotations

import cv2
import numpy as np


def add_depth_noise(
    depth_m: np.ndarray, rng: np.random.Generator, factor: float, dropout: float, on_edges: bool
) -> np.ndarray:
    """sigma = factor * 1.5 mm * (z / 0.5 m)^2; `dropout` share of pixels set to 0 (no reading).

    With `on_edges`, dropped pixels come in clusters along depth discontinuities, as structured-light
    and stereo sensors lose them at object borders.
    """
    valid = depth_m > 0
    sigma = factor * 0.0015 * (depth_m / 0.5) ** 2
    noisy = np.where(valid, depth_m + rng.normal(size=depth_m.shape).astype(np.float32) * sigma, 0.0)
    n_drop = round(dropout * depth_m.size)
    drop = np.zeros(depth_m.shape, dtype=bool)
    if on_edges:
        gx = np.abs(np.diff(depth_m, axis=1, prepend=depth_m[:, :1]))
        gy = np.abs(np.diff(depth_m, axis=0, prepend=depth_m[:1, :]))
        edges = ((gx > 0.01) | (gy > 0.01)).astype(np.uint8)
        band = cv2.dilate(edges, np.ones((5, 5), np.uint8)).astype(bool)
        band_idx = np.flatnonzero(band)
        if band_idx.size:
            # Seeds on the edge band grown into 3x3 blobs: about 9 dropped pixels per seed.
            seeds = np.zeros(depth_m.size, dtype=np.uint8)
            seeds[rng.choice(band_idx, size=min(band_idx.size, n_drop // 9 + 1), replace=False)] = 1
            drop = cv2.dilate(seeds.reshape(depth_m.shape), np.ones((3, 3), np.uint8)).astype(bool)
    short = n_drop - int(drop.sum())
    if short > 0:
        drop.reshape(-1)[rng.choice(depth_m.size, size=short, replace=False)] = True
    noisy[drop] = 0.0
    return noisy.astype(np.float32)
