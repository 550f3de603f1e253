"""Scripted baseline: plane fit, colour classification and segmentation on synthetic data, and one
end-to-end check on two freshly rendered nominal lab scenes."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.catalogue import CLASS_NAMES
from graspstack.frames import Frame, Intrinsics
from graspstack.metric import angular_error_deg
from graspstack.predictors.scripted import ScriptedPredictor
from graspstack.predictors.scripted.classify import UNKNOWN
from graspstack.predictors.scripted.priors import load_priors
from graspstack.predictors.scripted.segment import segment_objects
from graspstack.predictors.scripted.table import back_project, fit_plane

INTR = Intrinsics(fx=550.0, fy=550.0, cx=320.0, cy=240.0, width=640, height=480)


def _tilted_table_depth(tilt_deg: float = 30.0, distance: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Depth of a plane seen by INTR, tilted about the camera x axis; returns (depth, unit normal)."""
    t = np.radians(tilt_deg)
    normal = np.array([0.0, -np.sin(t), -np.cos(t)])  # towards the camera
    u, v = np.meshgrid(np.arange(INTR.width), np.arange(INTR.height))
    rays = np.stack([(u - INTR.cx) / INTR.fx, (v - INTR.cy) / INTR.fy, np.ones_like(u, float)], -1)
    # Plane normal . p + distance = 0 along each ray p = z * ray.
    depth = -distance / (rays @ normal)
    return depth.astype(np.float32), normal


def test_plane_fit_recovers_tilted_table_despite_objects_and_noise():
    depth, normal = _tilted_table_depth()
    rng = np.random.default_rng(0)
    depth = depth + rng.normal(scale=0.002, size=depth.shape).astype(np.float32)
    depth[200:300, 250:400] -= 0.06  # a box standing on the table
    depth[rng.random(depth.shape) < 0.02] = 0.0  # dropped pixels
    pts = back_project(depth, INTR)[depth > 0]
    sample = pts[rng.integers(0, len(pts), 5000)]
    plane, inliers = fit_plane(sample, threshold_m=0.008)
    angle = np.degrees(np.arccos(np.clip(plane.normal @ normal, -1, 1)))
    assert angle < 0.5
    assert plane.offset == pytest.approx(0.7, abs=0.002)
    assert 0.85 < inliers.mean() < 0.97  # the box is not table
    assert plane.height(np.zeros(3)) > 0  # the camera is above the table


def _shade(chromaticity: np.ndarray, peak: float) -> np.ndarray:
    """An RGB colour of the given chromaticity whose brightest channel is `peak`."""
    return np.round(chromaticity / chromaticity.max() * peak).astype(np.uint8)


def _synthetic_frame() -> Frame:
    """Flat table straight below the camera with a mug-red block and a lego-yellow block on it."""
    priors = load_priors()
    depth = np.full((INTR.height, INTR.width), 0.6, dtype=np.float32)
    rgb = np.full((INTR.height, INTR.width, 3), (200, 175, 140), dtype=np.uint8)  # the nominal table
    colour = {c: priors.colour.centres[i] for i, c in enumerate(priors.colour.classes)}
    depth[100:200, 100:200] = 0.52  # 8 cm tall, 11 cm wide: mug-sized
    rgb[100:200, 100:200] = _shade(colour["mug"], 200)
    depth[300:330, 400:430] = 0.58  # 2 cm tall, 3 cm wide: lego-sized
    rgb[300:330, 400:430] = _shade(colour["lego"], 220)
    rgb[310:315, 410:415] = 10  # a dark speck (printed text, shadow) carries no colour
    return Frame(rgb, depth, INTR)


def test_colour_classifies_each_class_and_rejects_dark_pixels():
    colours = load_priors().colour
    for i, cls in enumerate(colours.classes):
        for peak in (90, 170, 250):  # dim to bright light: chromaticity does not move
            rgb = _shade(colours.centres[i], peak)
            assert colours.classes[int(colours.classify_pixels(rgb[None])[0])] == cls
    assert colours.classify_pixels(np.array([[5, 5, 8]], np.uint8))[0] == UNKNOWN
    assert colours.classify_pixels(np.array([[90, 160, 230]], np.uint8))[0] == UNKNOWN  # sky blue


def test_segments_synthetic_blocks_by_height_and_colour():
    frame = _synthetic_frame()
    points = back_project(frame.depth_m, INTR)
    valid = frame.depth_m > 0
    plane, _ = fit_plane(points[valid][::37], threshold_m=0.008)
    colours = load_priors().colour
    segs = segment_objects(frame.rgb, frame.depth_m, points, valid, plane, colours, INTR.fx)
    found = sorted((colours.classes[s.class_index], s.mask.sum()) for s in segs)
    assert [c for c, _ in found] == ["lego", "mug"]
    lego_px, mug_px = found[0][1], found[1][1]
    assert 700 < lego_px <= 900  # 30x30 block, the dark speck filled in, borders may erode
    assert 9000 < mug_px <= 10000


def test_priors_cover_every_class_without_the_simulator():
    priors = load_priors()
    assert set(priors.resting) == set(CLASS_NAMES)
    assert set(priors.colour.classes) == set(CLASS_NAMES)
    for poses in priors.resting.values():
        assert poses and abs(sum(p.frequency for p in poses) - 1.0) < 0.05
        for p in poses:
            R0 = p.rotation()
            assert np.allclose(R0 @ p.up_obj, [0, 0, 1], atol=1e-6)


@pytest.fixture(scope="module")
def rendered_scenes():
    from lab.cell import LabCell
    from lab.scenes import render_scene

    cell = LabCell()
    try:
        yield [render_scene(cell, "nominal", 500, i) for i in (0, 1)]
    finally:
        cell.close()


def test_end_to_end_on_rendered_nominal_scenes(rendered_scenes):
    predictor = ScriptedPredictor()
    for r in rendered_scenes:
        frame = Frame(r.rgb, r.depth_m, r.scene.intrinsics_obj())
        preds = predictor.predict(frame)
        gts = [g for g in r.scene.ground_truth() if g.extras["visible_fraction"] >= 0.3]
        assert len(preds) == len(gts)  # no false positives on these easy scenes
        for g in gts:
            same = [p for p in preds if p.class_name == g.class_name]
            assert same, f"missed a {g.class_name}"
            p = min(same, key=lambda p: np.linalg.norm(p.position_m - g.position_m))
            # Measured: under 1 mm, and under 0.3 deg but for the lego (about 3 deg); spec 10 mm, 5 deg.
            assert np.linalg.norm(p.position_m - g.position_m) < 0.005
            err = angular_error_deg(g.class_name, g.as_transform()[:3, :3], p.as_transform()[:3, :3])
            assert err < 5.0
            assert 0.3 < p.confidence <= 1.0
