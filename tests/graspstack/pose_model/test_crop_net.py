"""CropNet's input: colour, points relative to the proposal, reading flag, channels last in memory."""

from __future__ import annotations

import numpy as np
import torch

from graspstack.pose_model.crop_net import crop_input


def _crop_input_as_arrays(rgb, points, ref, side_m):
    """The input's definition in whole-array NumPy (how it was first written)."""
    valid = points[..., 2] > 0
    rel = (points - ref[:, None, None, :]) / (0.5 * side_m[:, None, None, None])
    rel = np.where(valid[..., None], np.clip(rel, -3.0, 3.0), 0.0)
    colour = (rgb.astype(np.float32) / 255.0 - 0.45) / 0.25
    x = np.concatenate([colour, rel, valid[..., None]], axis=-1)
    return np.ascontiguousarray(np.moveaxis(x, -1, 1), dtype=np.float32)


def test_crop_input_matches_its_array_definition_to_the_bit_and_is_channels_last():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    points = (rng.normal(0.0, 0.1, (5, 64, 64, 3)) + np.array([0.0, 0.0, 0.8])).astype(np.float32)
    points[rng.random((5, 64, 64)) < 0.1] = 0.0  # no reading
    ref = (rng.normal(0.0, 0.05, (5, 3)) + np.array([0.0, 0.0, 0.8])).astype(np.float32)
    side = rng.uniform(0.05, 0.3, 5).astype(np.float32)
    got = crop_input(rgb, points, ref, side)
    want = _crop_input_as_arrays(rgb, points, ref, side)
    assert got.dtype == np.float32 and got.shape == (5, 7, 64, 64)
    assert np.array_equal(got, want)
    assert torch.from_numpy(got).is_contiguous(memory_format=torch.channels_last)
