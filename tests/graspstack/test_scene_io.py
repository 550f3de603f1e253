import numpy as np
import pytest

from graspstack.scene_io import (
    PinholeModel,
    PoseModel,
    Scene,
    SceneFile,
    SceneObject,
    read_depth,
    write_scene,
)


def test_scene_round_trip_keeps_contract_keys_and_millimetre_depth(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    depth = np.full((120, 160), 0.6123, dtype=np.float32)
    depth[0, 0] = 0.0
    scene = SceneFile(
        width=160,
        height=120,
        intrinsics=PinholeModel(fx=150, fy=150, cx=80, cy=60),
        T_world_cam=PoseModel(position_m=[0, 0, 1], quaternion_xyzw=[1, 0, 0, 0]),
        objects=[
            SceneObject(
                class_name="lego", position_m=[0, 0, 0.6], quaternion_xyzw=[0, 0, 0, 1], visible_fraction=0.8
            )
        ],
    )
    write_scene(tmp_path, rgb, depth, scene, {"slice": "hard"})
    loaded = Scene(tmp_path)
    assert loaded.slice == "hard"
    assert '"class": "lego"' in (tmp_path / "scene.json").read_text()
    frame = loaded.frame()
    assert np.array_equal(frame.rgb, rgb)
    assert frame.depth_m[0, 0] == 0.0 and abs(frame.depth_m[5, 5] - 0.612) < 1e-6
    assert loaded.ground_truth()[0].extras["visible_fraction"] == 0.8


def test_depth_must_be_16_bit(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "d.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="16-bit"):
        read_depth(tmp_path / "d.png")
