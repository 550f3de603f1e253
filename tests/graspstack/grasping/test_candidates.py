"""Antipodal candidates: contacts on the surface, inside the friction cone, openings the gripper has."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.grasping import DEFAULT_GRIPPER, grasp_candidates
from graspstack.grasping.candidates import face_normals, line_hits
from graspstack.object_models import object_model


@pytest.mark.parametrize("class_name", ["jenga", "duck"])
def test_contacts_lie_on_the_surface_inside_the_friction_cone(class_name):
    cand = grasp_candidates(class_name)
    model = object_model(class_name)
    normals = face_normals(model)
    pick = np.random.default_rng(0).choice(len(cand.quality), size=60, replace=False)
    axes = cand.rotation[pick, :, 0]
    cos_cone = np.cos(DEFAULT_GRIPPER.friction_cone_rad)
    for (t, faces), w, axis in zip(
        line_hits(model, cand.centre[pick], axes), cand.contact_width_m[pick], axes, strict=True
    ):
        for contact in (-w / 2, w / 2):
            at = np.abs(t - contact) < 1e-6  # the mesh is met exactly at each contact
            assert at.any()
            assert np.abs(normals[faces[at]] @ axis).max() >= cos_cone - 1e-9


@pytest.mark.parametrize("class_name", ["jenga", "lego", "mug"])
def test_widths_within_the_opening_limits(class_name):
    cand = grasp_candidates(class_name)
    g = DEFAULT_GRIPPER
    assert len(cand.quality) > 0
    assert np.all(cand.contact_width_m >= g.min_opening_m)
    assert np.all(cand.contact_width_m + 2 * g.clearance_m <= g.max_opening_m + 1e-12)
    assert np.all(cand.opening_m > cand.contact_width_m)
    assert np.all(cand.opening_m <= g.max_opening_m)


def test_contact_frames_are_rotations_with_approach_across_the_closing_axis():
    cand = grasp_candidates("jenga")
    R = cand.rotation
    assert np.allclose(np.matmul(R.transpose(0, 2, 1), R), np.eye(3), atol=1e-6)
    assert np.allclose(np.linalg.det(R), 1.0, atol=1e-6)


def test_jenga_is_never_pinched_along_its_15_cm_length():
    cand = grasp_candidates("jenga")
    assert np.all(np.abs(cand.rotation[:, 0, 0]) < 0.5)  # x of the contact frame vs the jenga's long x


def test_candidates_are_deterministic():
    from graspstack.grasping.candidates import compute_candidates

    a, b = compute_candidates("lego"), compute_candidates("lego")
    assert np.array_equal(a.centre, b.centre) and np.array_equal(a.rotation, b.rotation)


@pytest.mark.parametrize("class_name", ["duck", "teddy", "mug", "lego", "jenga"])
def test_shipped_candidates_are_current(class_name):
    """models/grasps/ must match the code; regenerate with `python -m graspstack.grasping`."""
    from graspstack.grasping.candidates import CACHE_DIR, cache_key, load_candidates

    assert load_candidates(class_name, CACHE_DIR / f"{class_name}.npz", cache_key(class_name)) is not None
