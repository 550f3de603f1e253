"""widen.py: a wider CropNet starts as the trained one it widens."""

from __future__ import annotations

import pytest
import torch

from graspstack.pose_model.crop_net import CropNet
from graspstack.pose_model.widen import widen_crop_net


def _trained_like(width: int) -> CropNet:
    """A CropNet with non-trivial batch-norm statistics, as a trained one has."""
    torch.manual_seed(0)
    net = CropNet(width).train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 7, 64, 64))
    return net.eval()


def test_widened_net_computes_what_the_narrow_one_does():
    narrow = _trained_like(8)
    wide = widen_crop_net(narrow, 12, noise=0.0).eval()
    assert sum(p.numel() for p in wide.parameters()) == sum(p.numel() for p in CropNet(12).parameters())
    x = torch.randn(4, 7, 64, 64)
    with torch.no_grad():
        (la, da), (lb, db) = narrow(x), wide(x)
    torch.testing.assert_close(lb, la, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(db, da, atol=1e-4, rtol=1e-4)


def test_noise_moves_only_the_copies_and_barely_the_output():
    narrow = _trained_like(8)
    wide = widen_crop_net(narrow, 12, noise=0.001).eval()
    # The first layer reads the unwidened input: its first 8 filters are the narrow net's exactly,
    # the 4 copies are some of them plus noise, so training can pull copies and originals apart.
    old, new = narrow.enc1[0][0].weight, wide.enc1[0][0].weight
    torch.testing.assert_close(new[:8], old, atol=0, rtol=0)
    copied = [min(range(8), key=lambda k: (new[j] - old[k]).abs().max().item()) for j in range(8, 12)]
    for j, k in zip(range(8, 12), copied, strict=True):
        assert not torch.equal(new[j], old[k])
        torch.testing.assert_close(new[j], old[k], atol=0.01 * old.std().item(), rtol=0)
    x = torch.randn(4, 7, 64, 64)
    with torch.no_grad():
        da, db = narrow(x)[1], wide(x)[1]
    assert (da - db).abs().mean() < 0.01 * da.abs().mean()


def test_cannot_narrow():
    with pytest.raises(ValueError, match="cannot widen"):
        widen_crop_net(CropNet(12), 8)
