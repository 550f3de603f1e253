"""Rotation helpers: the symmetry-aware loss and the allocentric ray rotation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graspstack.catalogue import CATALOGUE, CLASS_NAMES
from graspstack.geometry import rot_x, rot_y, rot_z
from graspstack.pose_model.geometry import (
    canonical_symmetric,
    ray_rotation,
    ray_rotation_torch,
    rot6d_to_matrix,
    symmetric_rotation_loss,
)

R_GT = rot_z(31) @ rot_x(-47) @ rot_y(12)


@pytest.mark.parametrize("name", ["lego", "jenga"])
def test_loss_is_zero_for_every_symmetric_equivalent(name):
    syms = CATALOGUE[name].symmetries
    assert len(syms) == 4
    pred = torch.tensor(np.stack([R_GT @ S for S in syms]), dtype=torch.float32)
    gt = torch.tensor(np.stack([R_GT] * len(syms)), dtype=torch.float32)
    cls = torch.full((len(syms),), CLASS_NAMES.index(name))
    assert torch.allclose(symmetric_rotation_loss(pred, gt, cls), torch.zeros(len(syms)), atol=1e-5)


@pytest.mark.parametrize("name", ["duck", "teddy", "mug"])
def test_loss_punishes_turns_of_asymmetric_objects(name):
    pred = torch.tensor(np.stack([R_GT @ rot_z(90), R_GT @ rot_x(180)]), dtype=torch.float32)
    gt = torch.tensor(np.stack([R_GT] * 2), dtype=torch.float32)
    cls = torch.full((2,), CLASS_NAMES.index(name))
    assert (symmetric_rotation_loss(pred, gt, cls) > 1.0).all()


def test_jenga_is_not_symmetric_about_a_quarter_turn():
    pred = torch.tensor(R_GT @ rot_z(90), dtype=torch.float32)[None]
    gt = torch.tensor(R_GT, dtype=torch.float32)[None]
    assert symmetric_rotation_loss(pred, gt, torch.tensor([CLASS_NAMES.index("jenga")]))[0] > 1.0


def test_rot6d_round_trip():
    R = torch.tensor(R_GT, dtype=torch.float32)
    r6 = torch.cat([R[:, 0], R[:, 1]]) * 3.0  # scale does not matter
    assert torch.allclose(rot6d_to_matrix(r6), R, atol=1e-5)


def test_ray_rotation_takes_the_axis_onto_the_ray():
    d = np.array([[0.3, -0.2, 1.0], [0.0, 0.0, 1.0], [-0.5, 0.4, 1.0]])
    R = ray_rotation(d)
    unit = d / np.linalg.norm(d, axis=1, keepdims=True)
    assert np.allclose(R @ np.array([0, 0, 1.0]), unit)
    assert np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(R), 1.0)
    assert np.allclose(ray_rotation_torch(torch.tensor(d)).numpy(), R)


def test_canonical_symmetric_picks_the_nearest_equivalent():
    ref = R_GT
    turned = R_GT @ rot_z(180)
    assert np.allclose(canonical_symmetric(turned, ref, "jenga"), ref, atol=1e-9)
    assert np.allclose(canonical_symmetric(turned, ref, "duck"), turned)


def test_canonical_symmetric_turns_a_stack_as_it_turns_each():
    rng = np.random.default_rng(3)
    Rs = np.stack([R_GT @ rot_z(a) for a in rng.uniform(-180, 180, 20)])
    stacked = canonical_symmetric(Rs, R_GT, "lego")
    assert stacked.shape == Rs.shape
    assert np.allclose(stacked, np.stack([canonical_symmetric(R, R_GT, "lego") for R in Rs]), atol=1e-15)
