"""The `mean` baseline: every class reported at its mean pose over a training set.

It looks at nothing in the frame, which makes it the floor any estimator must clear: it answers
with each class the training set contained, at the class's average camera-frame pose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from graspstack.frames import Frame, ObjectPose
from graspstack.geometry import matrix_to_quat, project_to_so3, quat_to_matrix
from graspstack.scene_io import Scene, iter_scene_dirs

DEFAULT_STATS = Path(__file__).resolve().parents[2] / "models" / "baselines" / "mean_pose.json"


def fit_mean_poses(data: str | Path, out: str | Path | None = None) -> dict:
    """Mean position and chordal-mean rotation per class over every object in the training scenes."""
    positions: dict[str, list] = {}
    rotations: dict[str, list] = {}
    n_scenes = 0
    for scene_dir in iter_scene_dirs(data):
        n_scenes += 1
        for obj in Scene(scene_dir).meta.objects:
            positions.setdefault(obj.class_name, []).append(obj.position_m)
            rotations.setdefault(obj.class_name, []).append(quat_to_matrix(obj.quaternion_xyzw))
    if not n_scenes:
        raise ValueError(f"no scenes under {data}")
    stats = {"data": str(data), "scenes": n_scenes, "classes": {}}
    for name, pos in positions.items():
        R = project_to_so3(np.mean(rotations[name], axis=0))
        stats["classes"][name] = {
            "count": len(pos),
            "frequency": len(pos) / n_scenes,
            "position_m": np.mean(pos, axis=0).round(6).tolist(),
            "quaternion_xyzw": matrix_to_quat(R).round(6).tolist(),
        }
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(stats, indent=1))
    return stats


class MeanPosePredictor:
    name = "mean"

    def __init__(self, stats: dict):
        self.poses = [
            ObjectPose(
                name,
                np.array(c["position_m"]),
                np.array(c["quaternion_xyzw"]),
                confidence=min(1.0, float(c["frequency"])),
            )
            for name, c in sorted(stats["classes"].items())
        ]

    @classmethod
    def load(cls, path: str | Path | None = None) -> MeanPosePredictor:
        path = Path(path) if path else DEFAULT_STATS
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: fit it with `graspstack baseline fit-mean --data DIR`")
        return cls(json.loads(path.read_text()))

    def predict(self, frame: Frame) -> list[ObjectPose]:
        return [
            ObjectPose(p.class_name, p.position_m.copy(), p.quaternion_xyzw.copy(), p.confidence)
            for p in self.poses
        ]
