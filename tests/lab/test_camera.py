"""The renderer and our pinhole model must agree to a fraction of a pixel, principal point included."""

import numpy as np

from graspstack.object_models import object_model
from lab.annotate import silhouette
from lab.camera import look_at


def _unoccluded_objects(scenes):
    for r in scenes:
        intr = r.scene.intrinsics_obj()
        for k, (obj, pose) in enumerate(zip(r.scene.objects, r.scene.ground_truth(), strict=True)):
            if obj.visible_fraction > 0.95:
                yield r.masks == k + 1, silhouette(object_model(obj.class_name), pose.as_transform(), intr)


def test_projected_silhouettes_match_rendered_masks(nominal_scenes):
    offsets, ious = [], []
    for rendered, projected in _unoccluded_objects(nominal_scenes):
        ious.append((rendered & projected).sum() / (rendered | projected).sum())
        ry, rx = np.nonzero(rendered)
        py, px = np.nonzero(projected)
        offsets.append([rx.mean() - px.mean(), ry.mean() - py.mean()])
    assert len(ious) >= 5
    assert min(ious) > 0.93
    # A half-pixel convention slip (OpenGL vs OpenCV pixel centres) would show as a 0.5 px bias.
    assert np.abs(np.mean(offsets, axis=0)).max() < 0.15


def test_look_at_points_the_optical_axis_at_the_target():
    T = look_at([0.3, -0.2, 0.6], [0.0, 0.05, 0.0], roll_deg=37.0)
    z = T[:3, 2]
    to_target = np.array([0.0, 0.05, 0.0]) - T[:3, 3]
    assert np.allclose(z, to_target / np.linalg.norm(to_target))
    assert np.allclose(T[:3, :3].T @ T[:3, :3], np.eye(3))
    assert np.isclose(np.linalg.det(T[:3, :3]), 1.0)
