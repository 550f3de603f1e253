"""The evaluation runner on tiny synthetic scenes, with fake predictors that know the ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graspstack import evaluation
from graspstack.evaluation import cli_eval, format_table, plot_errors, run_evaluation
from graspstack.frames import Frame, ObjectPose
from graspstack.geometry import matrix_to_quat, rot_x, rot_z
from graspstack.scene_io import Scene, SceneFile, iter_scene_dirs, write_scene

W, H = 160, 120

SCENES = [
    ("s0", "nominal", [("duck", [0.0, 0.0, 0.6], 0.9), ("lego", [0.05, 0.02, 0.62], 1.0)]),
    ("s1", "nominal", [("jenga", [-0.03, 0.01, 0.55], 0.8), ("jenga", [0.04, -0.02, 0.58], 0.7)]),
    ("s2", "hard", [("mug", [0.0, 0.03, 0.7], 0.5), ("teddy", [0.06, 0.0, 0.65], 0.1)]),
]


def _scene_file(objects) -> SceneFile:
    return SceneFile.model_validate(
        {
            "width": W,
            "height": H,
            "intrinsics": {"fx": 140.0, "fy": 140.0, "cx": W / 2, "cy": H / 2},
            "depth_scale": 0.001,
            "T_world_cam": {"position_m": [0, 0, 0.8], "quaternion_xyzw": [1, 0, 0, 0]},
            "objects": [
                {
                    "class": c,
                    "position_m": p,
                    "quaternion_xyzw": list(matrix_to_quat(rot_z(20 * i) @ rot_x(10))),
                    "visible_fraction": v,
                }
                for i, (c, p, v) in enumerate(objects)
            ],
        }
    )


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    for k, (name, slice_, objects) in enumerate(SCENES):
        # The fake predictors find the scene again from the image's constant colour.
        rgb = np.full((H, W, 3), k, dtype=np.uint8)
        depth = np.full((H, W), 0.6, dtype=np.float32)
        write_scene(root / name, rgb, depth, _scene_file(objects), annotations={"slice": slice_})
    return root


class GroundTruthPredictor:
    """Answers each scene's ground truth, optionally disturbed; keyed by the scene's rgb value."""

    def __init__(self, root, name="gt", offset_m=(0.0, 0.0, 0.0), rot=None):
        self.name = name
        self.offset = np.asarray(offset_m)
        self.rot = np.eye(3) if rot is None else rot
        self.gt = {int(Scene(p).frame().rgb[0, 0, 0]): Scene(p).ground_truth() for p in iter_scene_dirs(root)}

    def predict(self, frame: Frame) -> list[ObjectPose]:
        out = []
        for g in self.gt[int(frame.rgb[0, 0, 0])]:
            R = g.as_transform()[:3, :3] @ self.rot
            out.append(ObjectPose(g.class_name, g.position_m + self.offset, matrix_to_quat(R)))
        return out


def test_ground_truth_predictor_is_perfect(data_dir):
    result = run_evaluation(data_dir, GroundTruthPredictor(data_dir), progress=False)
    rep = result.report
    assert rep["predictor"] == "gt"
    assert set(rep["slices"]) == {"nominal", "hard"}
    nominal, hard = rep["slices"]["nominal"], rep["slices"]["hard"]
    assert nominal["n_scenes"] == 2 and nominal["n_objects"] == 4
    assert nominal["within_spec_rate"] == 1.0 and nominal["false_positives"] == 0
    assert set(nominal["classes"]) == {"duck", "lego", "jenga"}
    # The teddy is 10% visible: not counted, and predicting it is not a false positive.
    assert hard["n_objects"] == 1 and hard["within_spec_rate"] == 1.0 and hard["false_positives"] == 0
    assert rep["latency_ms"]["n"] == 3
    assert len(result.records) == 5 and {r.scene for r in result.records} == {"s0", "s1", "s2"}
    json.dumps(rep, allow_nan=False)


def test_perturbed_predictor_fails(data_dir):
    shifted = GroundTruthPredictor(data_dir, "shifted", offset_m=(0.0, 0.02, 0.0))
    rep = run_evaluation(data_dir, shifted, progress=False).report
    assert rep["slices"]["nominal"]["within_spec_rate"] == 0.0
    assert rep["slices"]["nominal"]["te_m"]["p50"] == pytest.approx(0.02)

    # Rx 90 is a symmetry of nothing in the catalogue: every object fails on angle alone.
    tilted = GroundTruthPredictor(data_dir, "tilted", rot=rot_x(90))
    rep = run_evaluation(data_dir, tilted, progress=False).report
    assert rep["slices"]["nominal"]["within_spec"] == 0
    assert rep["slices"]["nominal"]["re_deg"]["p50"] == pytest.approx(90.0, abs=1e-4)


def test_limit(data_dir):
    rep = run_evaluation(data_dir, GroundTruthPredictor(data_dir), limit=1, progress=False).report
    assert list(rep["slices"]) == ["nominal"] and rep["slices"]["nominal"]["n_scenes"] == 1


def test_table_and_plot(data_dir, tmp_path):
    result = run_evaluation(data_dir, GroundTruthPredictor(data_dir, offset_m=(0.003, 0, 0)), progress=False)
    table = format_table(result.report)
    assert "slice nominal" in table and "slice hard" in table
    assert "jenga" in table and "100.0" in table
    png = plot_errors(result.records, tmp_path / "errors.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_eval(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluation, "load_predictor", lambda spec: GroundTruthPredictor(data_dir, spec))
    plot, recs = tmp_path / "p.png", tmp_path / "records.jsonl"
    assert cli_eval(str(data_dir), "fake", True, str(plot), None, str(recs)) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["predictor"] == "fake" and rep["slices"]["nominal"]["within_spec_rate"] == 1.0
    assert plot.exists() and len(recs.read_text().splitlines()) == 5

    assert cli_eval(str(data_dir), "fake", False, None, 2, None) == 0
    assert "slice nominal" in capsys.readouterr().out


def test_cli_eval_missing_data(tmp_path, capsys):
    assert cli_eval(str(tmp_path / "nope"), "mean", False, None, None) != 0
    assert "no such data directory" in capsys.readouterr().err
