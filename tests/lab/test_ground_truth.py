"""Ground truth against the images: an independent re-render of each reported pose matches the depth."""

import numpy as np

from graspstack.geometry import invert_transform, pose_to_transform
from lab.verify import depth_differences


def _objects(r):
    return [(p.class_name, p.as_transform()) for p in r.scene.ground_truth()]


def test_reported_poses_reproduce_the_rendered_depth(nominal_scenes):
    d = np.concatenate(
        [
            depth_differences(r.depth_clean_m, r.masks, _objects(r), r.scene.intrinsics_obj())
            for r in nominal_scenes
        ]
    )
    assert d.size > 10_000
    assert np.median(np.abs(d)) < 0.001  # noise-free render: sub-millimetre
    noisy = np.concatenate(
        [depth_differences(r.depth_m, r.masks, _objects(r), r.scene.intrinsics_obj()) for r in nominal_scenes]
    )
    assert np.median(np.abs(noisy)) < 0.004  # the bar, on what the robot actually sees


def test_inertial_frame_would_be_caught(lab_cell, nominal_scenes):
    """Reporting PyBullet's inertial frame for the duck (2 cm off the link frame) must fail the check."""
    from lab.scenes import render_scene

    for i in range(40):
        r = render_scene(lab_cell, "nominal", 4243, i)
        ducks = [
            k for k, o in enumerate(r.scene.objects) if o.class_name == "duck" and o.visible_fraction > 0.9
        ]
        if ducks:
            break
    k = ducks[0]
    objects = _objects(r)
    T_obj_inertial = pose_to_transform([0.0, 0.02, 0.0], [0, 0, 0, 1])  # duck_vhacd.urdf's inertial origin
    wrong = objects[k][1] @ T_obj_inertial
    sel = r.masks == k + 1
    masks = np.where(sel, 1, 0).astype(np.uint8)
    intr = r.scene.intrinsics_obj()
    right = depth_differences(r.depth_clean_m, masks, [objects[k]], intr)
    wrong_d = depth_differences(r.depth_clean_m, masks, [("duck", wrong)], intr)
    assert np.median(np.abs(right)) < 0.001
    assert np.median(np.abs(wrong_d)) > 0.004 or wrong_d.size < 0.7 * right.size


def test_opengl_camera_axes_would_be_caught(nominal_scenes):
    """Poses expressed in OpenGL camera axes (y up, z back) put objects behind the camera."""
    r = nominal_scenes[0]
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    objects = [(name, flip @ T) for name, T in _objects(r)]
    d = depth_differences(r.depth_clean_m, r.masks, objects, r.scene.intrinsics_obj())
    assert d.size == 0 or np.median(np.abs(d)) > 0.01


def test_camera_pose_is_consistent_with_object_poses(lab_cell, nominal_scenes):
    """T_world_cam composed with T_cam_obj puts every object on the table (z >= 0 at its lowest point)."""
    from graspstack.geometry import transform_points
    from graspstack.object_models import object_model

    for r in nominal_scenes:
        cam = r.scene.T_world_cam
        T_world_cam = pose_to_transform(cam.position_m, cam.quaternion_xyzw)
        for pose in r.scene.ground_truth():
            pts = transform_points(T_world_cam @ pose.as_transform(), object_model(pose.class_name).vertices)
            assert -0.004 < pts[:, 2].min() < 0.02, pose.class_name
        assert np.allclose(invert_transform(invert_transform(T_world_cam)), T_world_cam)
