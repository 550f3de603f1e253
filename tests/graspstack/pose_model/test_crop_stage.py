"""The second stage's proposals beyond stage 1: uncovered blobs sized to what they could be, the
second look at pixels that no fitted object explains, and crops cut again on a weak fit's object; the
depth smoothing the rigid fit takes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from graspstack.catalogue import CATALOGUE
from graspstack.frames import Frame, Intrinsics
from graspstack.geometry import project_points, quat_to_matrix
from graspstack.pose_model.correspond import RigidFit
from graspstack.pose_model.crop_stage import (
    GENERIC_CLASS,
    RECENTRE_BELOW_INLIERS,
    RECENTRE_MIN_SHIFT,
    UNCOVERED_MIN_PIXELS,
    CropResult,
    Proposal,
    _smoothed_depth,
    dropout_proposals,
    explained_pixels,
    recentred_proposals,
    smooth_on_mask,
    uncovered_proposals,
)
from graspstack.pose_model.crops import crop_side_m
from graspstack.pose_model.geometry import bbox_centre_obj
from graspstack.pose_model.infer import (
    DROPOUT_MIN_INLIERS,
    MAX_RESIDUAL_LEGO_PROPOSALS,
    MAX_RESIDUAL_PROPOSALS,
    SMALL_CROP_MAY_ANSWER,
    _second_look_budget,
    _second_look_class_holds,
    _second_look_fit_holds,
    _small_crops_answering,
)
from graspstack.predictors.scripted.table import Plane, back_project

INTR = Intrinsics(600.0, 600.0, 319.5, 239.5, 640, 480)
Z = 0.6  # metres: 1 px is 1 mm at this depth and focal length


def _flat_points() -> np.ndarray:
    return back_project(np.full((480, 640), Z, np.float32), INTR)


def test_blobs_get_a_crop_sized_to_their_extent_largest_first():
    above = np.zeros((480, 640), bool)
    above[100:130, 100:130] = True  # 3 cm across: a lego
    above[200:300, 300:400] = True  # 10 cm across
    above[400:405, 600:605] = True  # 25 px: noise, no proposal
    proposals = uncovered_proposals(above, np.zeros_like(above), _flat_points(), INTR)
    assert [p.class_name for p in proposals] == [GENERIC_CLASS, "lego"]
    assert np.allclose(proposals[1].centre_px, [114.5, 114.5], atol=0.5)
    assert abs(proposals[1].z_m - (Z + 0.01)) < 1e-6  # pushed behind the surface, to the centre
    assert {p.source for p in proposals} == {"uncovered"}


def test_covered_pixels_are_not_proposed_again():
    above = np.zeros((480, 640), bool)
    above[100:130, 100:130] = True
    covered = np.zeros_like(above)
    covered[90:140, 90:140] = True
    assert uncovered_proposals(above, covered, _flat_points(), INTR, source="residual") == []


def _result_over(rows: slice, cols: slice) -> CropResult:
    points = _flat_points()[rows, cols][::2, ::2].reshape(-1, 3)  # CropNet's cells: every other pixel
    fit = RigidFit(np.eye(3), np.zeros(3), 1.0, 0.001)
    proposal = Proposal(np.array([0.0, 0.0]), Z, "duck", "detector")
    return CropResult(proposal, "duck", 0.99, np.eye(4), fit, points, 0.9)


def test_explained_pixels_cover_a_fitted_objects_mask_and_nothing_else():
    explained = explained_pixels([_result_over(slice(200, 260), slice(300, 380))], (480, 640), INTR)
    assert explained[200:260, 300:380].all()  # the cell grid is closed
    assert not explained[:190].any() and not explained[:, :290].any()
    # A lego pressed against that duck is what the second look is for.
    above = np.zeros((480, 640), bool)
    above[200:260, 300:380] = True
    above[230:258, 380:408] = True
    residual = uncovered_proposals(above, explained, _flat_points(), INTR, source="residual")
    assert len(residual) == 1 and residual[0].class_name == "lego" and residual[0].source == "residual"


def _crop(
    source: str = "residual", class_prob: float = 0.99, class_name: str = "teddy", inliers: float = 0.9
) -> SimpleNamespace:
    return SimpleNamespace(
        proposal=SimpleNamespace(source=source),
        class_prob=class_prob,
        class_name=class_name,
        fit=SimpleNamespace(inlier_ratio=inliers),
    )


def _fit(score: float = 0.5, free_space: float = 0.02) -> SimpleNamespace:
    return SimpleNamespace(score=score, free_space_violation=free_space)


def test_a_second_look_answer_must_explain_the_depth():
    assert _second_look_class_holds(_crop()) and _second_look_fit_holds(_crop(), _fit())
    assert not _second_look_class_holds(_crop(class_prob=0.8))  # refused before its refinement
    assert not _second_look_fit_holds(_crop(), _fit(score=0.9))  # the model's surface misses the depth
    assert not _second_look_fit_holds(_crop(), _fit(free_space=0.3))  # where the camera sees through
    # Stage 1's own proposals are not held to it.
    assert _second_look_class_holds(_crop("detector", 0.5)) and _second_look_fit_holds(
        _crop("detector"), _fit(2.0)
    )


def test_a_jenga_from_a_second_look_may_be_less_sure_of_its_class():
    """A block seen end-on or edge-on looks like little else; CropNet gives it 0.92-0.95."""
    assert _second_look_class_holds(_crop("uncovered", 0.92, "jenga"))
    assert not _second_look_class_holds(_crop("uncovered", 0.92, "teddy"))
    assert not _second_look_class_holds(_crop("uncovered", 0.92, "lego"))
    assert not _second_look_class_holds(_crop("uncovered", 0.85, "jenga"))


def test_a_lego_from_a_depth_hole_must_keep_most_of_its_correspondences():
    lego = dict(class_name="lego", class_prob=0.99)
    assert _second_look_class_holds(_crop("dropout", inliers=DROPOUT_MIN_INLIERS + 0.05, **lego))
    assert not _second_look_class_holds(_crop("dropout", inliers=DROPOUT_MIN_INLIERS - 0.05, **lego))
    assert _second_look_class_holds(_crop("residual", inliers=0.3, **lego))  # the others are not held to it


def test_a_lego_sized_crop_answers_a_small_class_only():
    large, small = Proposal(np.zeros(2), Z, "teddy", "residual"), Proposal(np.zeros(2), Z, "lego", "residual")
    answers = {
        (p.class_name, name): SimpleNamespace(proposal=p, class_name=name)
        for p in (large, small)
        for name in ("lego", "jenga", "duck", "teddy", "mug")
    }
    kept = {id(r) for r in _small_crops_answering(list(answers.values()), [small])}
    assert {k for k, r in answers.items() if id(r) in kept} == {
        ("teddy", n) for n in ("lego", "jenga", "duck", "teddy", "mug")
    } | {("lego", n) for n in SMALL_CROP_MAY_ANSWER}


def _table_depth(plane: Plane) -> np.ndarray:
    """The depth image of nothing but the table: each pixel's ray to where it meets the plane."""
    u, v = np.meshgrid(np.arange(INTR.width), np.arange(INTR.height))
    rays = np.stack([(u - INTR.cx) / INTR.fx, (v - INTR.cy) / INTR.fy, np.ones(u.shape)], -1)
    return (-plane.offset / (rays @ plane.normal)).astype(np.float32)


def test_a_lego_sized_hole_in_the_depth_gets_a_lego_crop_at_a_resting_legos_depth():
    normal = np.array([0.0, -np.sin(np.radians(30.0)), -np.cos(np.radians(30.0))])  # tilted camera
    plane = Plane(normal, 0.6, 0.001)  # the table 0.6 m from the camera along its normal
    depth = _table_depth(plane)
    region = np.zeros(depth.shape, bool)
    region[100:400, 100:500] = True  # inside stage-1 instances, explained by no fit
    depth[200:220, 300:320] = 0.0  # a lego the sensor dropped (20 x 20 px, ~2.5 cm at 0.75 m)
    depth[300:305, 150:155] = 0.0  # a few dropped pixels: no object
    depth[120:260, 400:480] = 0.0  # a hole far larger than a lego
    depth[20:40, 20:40] = 0.0  # a lego-sized hole outside the region
    (prop,) = dropout_proposals(depth, region, plane, INTR, limit=4)
    assert prop.class_name == "lego" and prop.source == "dropout"
    np.testing.assert_allclose(prop.centre_px, [309.5, 209.5], atol=1e-6)
    ray = np.array([(309.5 - INTR.cx) / INTR.fx, (209.5 - INTR.cy) / INTR.fy, 1.0])
    on_table = ray * -plane.offset / (ray @ normal)
    centre = on_table + 0.5 * min(CATALOGUE["lego"].size_m) * normal
    assert prop.z_m == pytest.approx(centre[2], abs=1e-9)
    assert UNCOVERED_MIN_PIXELS > 5 * 5  # why the few dropped pixels are no proposal
    assert dropout_proposals(depth, region, plane, INTR, limit=0) == []


@pytest.mark.parametrize(
    ("class_name", "source", "score", "free_space", "kept"),
    [
        ("lego", "detector", 1.5, 0.5, True),  # stage 1 proposed it: the confidence decides
        ("lego", "residual", 0.5, 0.02, True),
        ("lego", "residual", 0.65, 0.0, False),  # a teddy or mug with this score is kept
        ("lego", "residual", 0.4, 0.08, False),
        ("teddy", "residual", 0.65, 0.08, True),
        ("teddy", "residual", 0.75, 0.0, False),
        ("mug", "uncovered", 0.5, 0.12, False),
        # A half-hidden jenga's surface score runs high, but it takes up no free space the camera sees.
        ("jenga", "residual", 1.1, 0.0, True),
        ("jenga", "uncovered", 1.1, 0.07, False),
        ("jenga", "residual", 1.6, 0.0, False),
    ],
)
def test_second_look_legos_and_jengas_have_their_own_bounds(class_name, source, score, free_space, kept):
    assert _second_look_fit_holds(_crop(source, class_name=class_name), _fit(score, free_space)) is kept


def test_second_look_budget_takes_the_largest_blobs_then_only_lego_sized_ones():
    sizes = ["teddy", "teddy", "teddy", "lego", "teddy", "lego", "lego", "lego", "lego", "lego"]
    blobs = [Proposal(np.array([float(i), 0.0]), 0.8, c, "residual") for i, c in enumerate(sizes)]
    any_class, lego_only = _second_look_budget(blobs)
    assert any_class == blobs[:MAX_RESIDUAL_PROPOSALS]  # the largest, any size
    assert all(b.class_name == "lego" for b in lego_only)
    assert len(any_class) + len(lego_only) == MAX_RESIDUAL_LEGO_PROPOSALS
    assert _second_look_budget(blobs[:1]) == (blobs[:1], [])


def _crop_points(z: np.ndarray) -> np.ndarray:
    """(S, S, 3) camera points of a crop's depth, pixel (i, j) on the ray through (j, i) of a
    500 px focal length camera centred on the crop."""
    s = z.shape[0]
    xs = (np.arange(s, dtype=np.float32) - s / 2) / 500.0
    return np.stack([z * xs[None, :], z * xs[:, None], z], axis=-1).astype(np.float32)


def test_smoothing_cuts_the_noise_on_the_object_and_keeps_points_on_their_rays():
    rng = np.random.default_rng(0)
    clean = np.full((64, 64), 0.7, np.float32)
    noisy = clean + rng.normal(0, 0.004, clean.shape).astype(np.float32)
    pts = _crop_points(noisy)
    out = smooth_on_mask(pts, np.ones((32, 32), bool), 5, np.full(clean.shape, 0.05, np.float32))
    assert np.std(out[8:-8, 8:-8, 2] - 0.7) < 0.4 * np.std(noisy[8:-8, 8:-8] - 0.7)
    # Each point only moves along its own ray: x / z and y / z are unchanged.
    np.testing.assert_allclose(out[..., 0] / out[..., 2], pts[..., 0] / pts[..., 2], rtol=1e-5)
    np.testing.assert_allclose(out[..., 1] / out[..., 2], pts[..., 1] / pts[..., 2], rtol=1e-5)


def test_smoothing_keeps_depth_steps_and_ignores_pixels_off_the_object():
    z = np.full((64, 64), 0.70, np.float32)
    z[:, 32:] = 0.72  # a 2 cm step on the object (a lego's top against its side), beyond the tolerance
    z[:, :8] = 0.75  # a neighbour, outside the object's mask
    mask = np.ones((32, 32), bool)
    mask[:, :4] = False
    out = smooth_on_mask(_crop_points(z), mask, 5, np.full(z.shape, 0.005, np.float32))
    np.testing.assert_allclose(out[:, 8:32, 2], 0.70, atol=1e-6)  # not pulled towards 0.72 or 0.75
    np.testing.assert_allclose(out[:, 32:, 2], 0.72, atol=1e-6)
    np.testing.assert_array_equal(out[:, :8, 2], z[:, :8])  # off-mask pixels left as they were


def test_smoothing_leaves_pixels_without_depth_at_zero():
    z = np.full((64, 64), 0.7, np.float32)
    z[10:20, 10:20] = 0.0
    out = smooth_on_mask(_crop_points(z), np.ones((32, 32), bool), 5, np.full(z.shape, 0.01, np.float32))
    assert np.all(out[10:20, 10:20] == 0.0) and np.all(np.isfinite(out))


def _smoothed_depth_as_arrays(z, cell_mask, k, tol, stride):
    """The smoothing's definition in whole-array NumPy (how it was first written): the compiled
    kernel must give these depths to the bit."""
    s = z.shape[0] // cell_mask.shape[0]
    obj = np.repeat(np.repeat(cell_mask, s, 0), s, 1) & (z > 0)
    r = k // 2
    padded = np.pad(np.where(obj, z, np.nan), r, constant_values=np.nan)
    h, w = z.shape
    z_out, obj_out = z[::stride, ::stride], obj[::stride, ::stride]
    total, count = np.zeros_like(z_out), np.zeros_like(z_out)
    for dy in range(k):
        for dx in range(k):
            near = padded[dy : dy + h : stride, dx : dx + w : stride]
            ok = np.abs(near - z_out) <= tol  # NaN (not the object) compares False
            total += np.where(ok, near, 0.0)
            count += ok
    return np.where(obj_out & (count > 0), total / np.maximum(count, 1.0), z_out)


@pytest.mark.parametrize("stride", [1, 2])
def test_compiled_smoothing_matches_its_array_definition(stride):
    rng = np.random.default_rng(stride)
    z = (0.7 + rng.normal(0, 0.004, (64, 64))).astype(np.float32)
    z[:, 40:] += 0.02  # a step
    z[rng.random(z.shape) < 0.05] = 0.0  # dropouts
    mask = rng.random((32, 32)) < 0.7
    tol = np.full((64 // stride, 64 // stride), 0.006, np.float32)
    got = _smoothed_depth(z, mask, tol, 5, stride)
    want = _smoothed_depth_as_arrays(z, mask, 5, tol, stride)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def _weak_result(inliers: float, fitted_centre_px: tuple[float, float], cut_at_px: tuple[float, float]):
    """A duck crop cut at cut_at_px whose fit puts the duck's box centre at fitted_centre_px (depth Z)."""
    ray = np.array(
        [(fitted_centre_px[0] - INTR.cx) / INTR.fx, (fitted_centre_px[1] - INTR.cy) / INTR.fy, 1.0]
    )
    T = np.eye(4)
    T[:3, 3] = ray * Z - bbox_centre_obj("duck")
    proposal = Proposal(np.array(cut_at_px), Z, "teddy", "residual")
    return CropResult(
        proposal, "duck", 0.99, T, RigidFit(np.eye(3), T[:3, 3], inliers, 0.004), np.zeros((0, 3)), 0.9
    )


def test_a_weak_fit_gets_a_crop_centred_where_it_puts_the_object():
    side_px = crop_side_m("duck") * INTR.fx / Z
    weak = _weak_result(0.3, (350.0, 250.0), (350.0 - 0.3 * side_px, 250.0))
    again = recentred_proposals([weak], INTR)
    assert list(again) == [0]
    p = again[0]
    np.testing.assert_allclose(p.centre_px, [350.0, 250.0], atol=1e-6)
    assert p.z_m == pytest.approx(Z) and p.class_name == "duck" and p.source == "residual"
    # A fit that keeps most correspondences, or one whose crop was already centred on it, is left alone.
    strong = _weak_result(RECENTRE_BELOW_INLIERS, (350.0, 250.0), (350.0 - 0.3 * side_px, 250.0))
    centred = _weak_result(0.3, (350.0, 250.0), (350.0 - 0.5 * RECENTRE_MIN_SHIFT * side_px, 250.0))
    assert recentred_proposals([strong, centred], INTR) == {}


@pytest.fixture(scope="module")
def shipped_crop_stage():
    from graspstack.pose_model.infer import ModelPredictor

    return ModelPredictor().crop_stage


def test_a_crop_cut_off_its_object_is_cut_again_on_it(nominal_scenes, shipped_crop_stage):
    """With the shipped CropNet on a lab scene: a jenga block's crop cut a fifth of its side away
    keeps under half its correspondences; the second crop lands on the block's centre, keeps nearly
    all of them and is kept, its fit within a few millimetres."""
    scene = nominal_scenes[2]
    frame = Frame(scene.rgb, scene.depth_m, scene.scene.intrinsics_obj())
    intr = frame.intrinsics
    jenga = next(g for g in scene.scene.ground_truth() if g.class_name == "jenga")
    c = quat_to_matrix(jenga.quaternion_xyzw) @ bbox_centre_obj("jenga") + jenga.position_m
    truth_px = project_points(c[None], intr.fx, intr.fy, intr.cx, intr.cy)[0]
    side_px = crop_side_m("jenga") * intr.fx / c[2]
    off = Proposal(truth_px + np.array([0.2 * side_px, 0.0]), float(c[2]), "jenga", "detector")
    sigma = lambda z: 0.002 * np.ones_like(z)  # noqa: E731 - nominal depth noise, ~2 mm
    (first,) = shipped_crop_stage.run(frame, [off], sigma)
    assert first.fit.inlier_ratio < RECENTRE_BELOW_INLIERS
    (kept,) = shipped_crop_stage.recentre(frame, [first], sigma)
    assert kept is not first and kept.class_name == "jenga" and kept.proposal.source == "detector"
    assert np.linalg.norm(kept.proposal.centre_px - truth_px) < 0.05 * side_px
    assert kept.fit.inlier_ratio > 0.9
    assert np.linalg.norm(kept.T_cam_obj[:3, 3] - jenga.position_m) < 0.005
