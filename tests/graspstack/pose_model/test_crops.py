"""Crop windows keep every crop pixel's full-resolution coordinate, and the training targets are right."""

from __future__ import annotations

import numpy as np
import torch

from graspstack.catalogue import CLASS_NAMES
from graspstack.frames import Frame
from graspstack.geometry import quat_to_matrix
from graspstack.pose_model.crop_net import COORD_SCALE_M, CropNet
from graspstack.pose_model.crop_train import crop_losses, make_crop_batch
from graspstack.pose_model.crops import CropWindow, back_project_crop, scene_crops, stack_crops
from graspstack.pose_model.geometry import symmetry_table
from graspstack.predictors.scripted.fit import _lookup, model_cloud


def test_cut_samples_the_pixels_the_window_names():
    h, w = 120, 160
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    image = np.stack([xs, ys, xs * 0], -1)
    win = CropWindow.around(np.array([70.0, 50.0]), side_px=40.0, size=20)  # 2 px per crop pixel
    _, depth_x, depth_y = win.cut(image.astype(np.uint8), xs, ys)
    px, py = win.pixel_coords()
    assert np.allclose(depth_x[0], np.round(px), atol=0.51)
    assert np.allclose(depth_y[:, 0], np.round(py), atol=0.51)
    assert abs((px[0] + px[-1]) / 2 - 70.0) < 1e-4  # centred on the proposal


def test_sub_window_composes_with_its_parent():
    outer = CropWindow.around(np.array([300.0, 200.0]), 150.0, 96)
    inner = outer.sub(47.5, 47.5, 64.0, 64)  # the centred nominal window of a cached crop
    ox, _ = outer.pixel_coords()
    ix, _ = inner.pixel_coords()
    assert abs((ix[0] + ix[-1]) / 2 - (ox[0] + ox[-1]) / 2) < 1e-3
    assert np.isclose(inner.step * 64, outer.step * 64)


def test_crop_points_match_the_frame_back_projection(nominal_scenes):
    r = nominal_scenes[0]
    intr = r.scene.intrinsics_obj()
    win = CropWindow.around(np.array([320.0, 240.0]), 128.0, 64)  # 2 px per crop pixel, exact pixels
    _, depth = win.cut(r.rgb, r.depth_m)
    pts = back_project_crop(depth, win, np.array([intr.fx, intr.fy, intr.cx, intr.cy]))
    px, py = win.pixel_coords()
    u, v = int(np.rint(px[10])), int(np.rint(py[20]))
    z = r.depth_m[v, u]
    expected = [(u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z]
    assert np.allclose(pts[20, 10], expected, atol=2e-3)


def _crops(scenes):
    records = []
    rng = np.random.default_rng(0)
    for r in scenes:
        objects = [
            (o.class_name, quat_to_matrix(o.quaternion_xyzw), np.asarray(o.position_m), o.visible_fraction)
            for o in r.scene.objects
        ]
        frame = Frame(r.rgb, r.depth_m, r.scene.intrinsics_obj())
        records += scene_crops(frame, r.masks, objects, rng)
    return stack_crops(records)


def test_coordinate_targets_lie_on_the_object_model(nominal_scenes):
    data = _crops(nominal_scenes)
    assert (data.cls == 0).sum() == len(nominal_scenes)  # one negative per frame
    batch = make_crop_batch(data, np.arange(len(data)), np.random.default_rng(1))
    for b in np.nonzero(data.cls > 0)[0]:
        valid = batch.valid[b].numpy() > 0
        X = batch.coords[b].numpy().transpose(1, 2, 0)[valid] * COORD_SCALE_M
        dist, _ = _lookup(model_cloud(CLASS_NAMES[data.cls[b] - 1]), X)
        assert valid.sum() > 10
        assert np.median(dist) < 0.004  # depth noise; a wrong frame would be centimetres off


def test_symmetric_targets_cost_nothing_extra(nominal_scenes):
    data = _crops(nominal_scenes)
    batch = make_crop_batch(data, np.arange(len(data)), None)
    net = CropNet(8).eval()
    logits, dense = net(batch.x)
    base = crop_losses(logits, dense, batch)["coord"]
    # The same targets turned by a symmetry of each object's class give the same loss.
    syms = symmetry_table()[np.maximum(data.cls - 1, 0)][:, 1]
    turned = torch.einsum("bji,bjhw->bihw", syms, batch.coords)
    batch.coords = turned
    again = crop_losses(logits, dense, batch)["coord"]
    assert torch.isclose(base, again, rtol=1e-4)
