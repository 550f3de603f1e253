"""Decoding and depth refinement, fed with perfect network outputs made from a scene's ground truth.

This checks everything after the network (centre voting, allocentric-to-camera rotation, centre
depth, table fit, ICP and resting-pose search) independently of how well a network is trained.
"""

from __future__ import annotations

import numpy as np

from graspstack.frames import Frame
from graspstack.metric import match_scene
from graspstack.pose_model.data import SceneArrays, scene_arrays
from graspstack.pose_model.infer import ModelPredictor
from graspstack.pose_model.network import N_CLASSES, PoseNet
from graspstack.pose_model.targets import make_batch


def _oracle_outputs(arrays: dict[str, np.ndarray], rot_noise: float) -> dict[str, np.ndarray]:
    data = SceneArrays(**{k: v[None] for k, v in arrays.items()})
    b = make_batch(data, np.array([0]), np.random.default_rng(0), crop=None)
    inst = b.inst[0].numpy()
    k = np.maximum(inst - 1, 0)
    cls = np.where(inst > 0, data.cls[0][k] + 1, 0)
    logits = np.full((N_CLASSES, *inst.shape), -4.0, np.float32)
    np.put_along_axis(logits, cls[None], 4.0, axis=0)
    R = b.rot_allo[0].numpy()[k]
    rot6 = np.concatenate([R[..., :, 0], R[..., :, 1]], -1).transpose(2, 0, 1)
    rot6 = rot6 + np.random.default_rng(1).normal(0, rot_noise, rot6.shape).astype(np.float32)
    return {"logits": logits, "offset": b.offset[0].numpy(), "rot6": rot6, "dz": b.dz[0].numpy()}


class OraclePredictor(ModelPredictor):
    def __init__(self, arrays: dict[str, np.ndarray], rot_noise: float) -> None:
        super().__init__(net=PoseNet())
        self.arrays, self.rot_noise = arrays, rot_noise

    def _forward(self, frame: Frame):
        out = _oracle_outputs(self.arrays, self.rot_noise)
        sx = self.arrays["rgb"].shape[1] / frame.intrinsics.width
        sy = self.arrays["rgb"].shape[0] / frame.intrinsics.height
        return out, self.arrays["depth_mm"].astype(np.float32) / 1000.0, sx, sy


def test_perfect_network_outputs_give_poses_within_spec(nominal_scenes):
    within, total = 0, 0
    for r in nominal_scenes[:3]:
        arrays = scene_arrays(r.rgb, r.depth_m, r.masks, r.scene)
        # Noise of 0.05 on the 6D columns is a few degrees: refinement must absorb it.
        predictor = OraclePredictor(arrays, rot_noise=0.05)
        frame = Frame(r.rgb, r.depth_m, r.scene.intrinsics_obj())
        poses = predictor.predict(frame)
        assert set(predictor.last_timings_ms) >= {"detect", "decode", "table", "refine", "total"}
        result = match_scene(r.scene.ground_truth(), poses)
        within += sum(rec.within_spec for rec in result.records)
        total += len(result.records)
        assert result.n_false_positives == 0
    assert total > 0 and within / total >= 0.85
