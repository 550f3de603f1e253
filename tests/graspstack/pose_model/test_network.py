"""PoseNet shapes and the input encoding."""

from __future__ import annotations

import numpy as np
import torch

from graspstack.pose_model.network import (
    IN_CHANNELS,
    INPUT_HW,
    N_CLASSES,
    OUT_CHANNELS,
    OUTPUT_STRIDE,
    PoseNet,
    make_input,
    split_outputs,
)


def test_output_shape_is_input_over_stride():
    net = PoseNet().eval()
    h, w = INPUT_HW
    with torch.inference_mode():
        out = net(torch.zeros(2, IN_CHANNELS, h, w))
    assert out.shape == (2, OUT_CHANNELS, h // OUTPUT_STRIDE, w // OUTPUT_STRIDE)
    parts = split_outputs(out)
    assert parts["logits"].shape[1] == N_CLASSES
    assert parts["offset"].shape[1] == 2 and parts["rot6"].shape[1] == 6
    assert parts["dz"].shape == (2, h // OUTPUT_STRIDE, w // OUTPUT_STRIDE)


def test_training_crops_are_fully_convolutional():
    out = PoseNet()(torch.zeros(1, IN_CHANNELS, 160, 192))
    assert out.shape[-2:] == (40, 48)


def test_weights_stay_small():
    n = sum(p.numel() for p in PoseNet().parameters())
    assert n * 4 < 5e6  # float32 bytes: far under the 50 MB budget


def test_make_input_channels_and_rays():
    rgb = np.full((4, 6, 3), 128, np.uint8)
    depth = np.zeros((4, 6), np.float32)
    depth[0, 0] = 0.7
    x = make_input(rgb, depth, np.array([100.0, 100.0, 2.5, 1.5], np.float32))
    assert x.shape == (IN_CHANNELS, 4, 6) and x.dtype == np.float32
    assert x[4, 0, 0] == 1.0 and x[4, 1, 1] == 0.0  # valid-depth flag
    assert x[3, 0, 0] == 0.0  # mean depth normalises to zero
    # Ray channels: zero at the principal point, growing to the right and downwards.
    assert x[5, 0, 3] > 0 > x[5, 0, 2] and x[6, 3, 0] > 0 > x[6, 0, 0]
