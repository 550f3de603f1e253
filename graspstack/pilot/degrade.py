"""A deliberately degraded model version, so anyone can watch a pilot roll back.

`graspstack pilot --candidate degraded` makes it on the fly from the active version: the same
architecture with Gaussian noise added to every floating-point weight tensor. It lives in the
registry like any version (models/pose/degraded-<parent>/, not committed) and says so in its card.
"""

from __future__ import annotations

import shutil

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from graspstack.pose_model import registry

NOISE_SCALE = 0.5  # times each tensor's own standard deviation: outputs stay finite, accuracy collapses


def make_degraded(parent: str, noise_scale: float = NOISE_SCALE, seed: int = 0) -> str:
    version = f"degraded-{parent}"
    root = registry._root(None)
    src, dst = root / parent, root / version
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    gen = torch.Generator().manual_seed(seed)
    # Both stages of a two-stage version: the second alone would still rescue much of a noisy first.
    for path in sorted(dst.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        weights = load_file(str(path))
        for name, t in weights.items():
            if t.is_floating_point() and t.numel() > 1 and "running" not in name:
                weights[name] = t + torch.randn(t.shape, generator=gen) * t.std() * noise_scale
        save_file(weights, str(path), metadata=metadata | {"degraded_from": parent})
    (dst / "calibration.json").unlink(missing_ok=True)  # the parent's calibration says nothing here
    card = registry.load_card(parent)
    card.update(
        {
            "version": version,
            "parent": parent,
            "degraded": True,
            "notes": f"{parent} with N(0, ({noise_scale} * std)^2) added to every weight tensor; "
            "for rollback demonstrations only",
            "scores": {},
        }
    )
    registry.write_card(version, card)
    return version
