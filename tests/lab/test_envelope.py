"""Scenes stay inside the envelope of CONTRACTS section 3."""

import numpy as np
import pytest

from graspstack.catalogue import CLASS_NAMES
from lab.envelope import RULES, sample_scene


@pytest.mark.parametrize("slice_name", ["nominal", "hard", "piled"])
def test_sampled_scenes_respect_the_envelope(slice_name):
    rules = RULES[slice_name]
    for i in range(200):
        s = sample_scene(slice_name, 1, i)
        c = s.camera
        assert 0.45 <= c.distance_m <= 0.9 and 0.0 <= c.tilt_deg <= 45.0
        assert 450 <= c.focal_px <= 650 and abs(c.cx - 320) <= 20 and abs(c.cy - 240) <= 20
        assert s.light.direction[2] > 0 and abs(np.linalg.norm(s.light.direction) - 1) < 1e-9
        assert rules.ambient[0] <= s.light.ambient <= rules.ambient[1]
        assert rules.diffuse[0] <= s.light.diffuse <= rules.diffuse[1]
        objects = [d for d in s.drops if d.kind == "object"]
        distractors = [d for d in s.drops if d.kind == "distractor"]
        assert rules.num_objects[0] <= len(objects) <= rules.num_objects[1]
        assert rules.num_distractors[0] <= len(distractors) <= rules.num_distractors[1]
        assert all(d.name in CLASS_NAMES for d in objects)


def test_sampling_is_a_pure_function_of_seed_and_index():
    assert sample_scene("hard", 5, 17) == sample_scene("hard", 5, 17)
    assert sample_scene("hard", 5, 17) != sample_scene("hard", 5, 18)


def test_rendered_nominal_scenes_keep_objects_at_most_30_percent_occluded(nominal_scenes):
    for r in nominal_scenes:
        assert 1 <= len(r.scene.objects) <= 4
        assert all(o.visible_fraction >= 0.7 for o in r.scene.objects)


def test_rendered_hard_scenes_are_crowded_with_distractors(hard_scenes):
    assert all(4 <= len(r.scene.objects) <= 8 for r in hard_scenes)
    assert sum(len(r.annotations["distractors"]) for r in hard_scenes) >= 1
    assert min(o.visible_fraction for r in hard_scenes for o in r.scene.objects) < 0.7


def test_annotations_carry_masks_and_keypoints(nominal_scenes):
    r = nominal_scenes[0]
    for k, obj in enumerate(r.annotations["objects"]):
        assert obj["mask_id"] == k + 1
        assert (r.masks == k + 1).sum() == obj["visible_pixels"] > 0
        kp = np.array(obj["keypoints_2d"])
        assert kp.shape == (9, 2)
        x0, y0, x1, y1 = obj["bbox_xyxy"]
        # The projected box centre lies within (or near) the visible mask's box.
        assert x0 - 40 <= kp[8, 0] <= x1 + 40 and y0 - 40 <= kp[8, 1] <= y1 + 40


def _leaning_share(scenes, min_tilt_deg: float = 10.0) -> float:
    """Share of objects more than min_tilt_deg from every resting pose of their class: leaning on others."""
    from graspstack.geometry import quat_to_matrix
    from graspstack.predictors.scripted.priors import load_priors

    resting = load_priors().resting
    tilts = []
    for r in scenes:
        R_world_cam = quat_to_matrix(r.scene.T_world_cam.quaternion_xyzw)
        for o in r.scene.objects:
            up = (R_world_cam @ quat_to_matrix(o.quaternion_xyzw)).T @ np.array([0.0, 0.0, 1.0])
            best = max(float(p.up_obj @ up) for p in resting[o.class_name])
            tilts.append(np.degrees(np.arccos(np.clip(best, -1.0, 1.0))))
    return float(np.mean(np.array(tilts) > min_tilt_deg))


def test_piled_training_scenes_lean_objects_on_each_other(lab_cell, nominal_scenes):
    from lab.scenes import render_scene

    piled = [render_scene(lab_cell, "piled", 3, i) for i in range(16)]
    assert all(1 <= len(r.scene.objects) <= 5 for r in piled)  # a drop can roll off the table
    # Measured: 13% of piled objects lean more than 10 deg off every resting pose, none of nominal.
    assert _leaning_share(piled) > max(0.08, 2 * _leaning_share(nominal_scenes))
