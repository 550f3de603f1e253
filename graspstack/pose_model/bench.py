"""Per-frame latency of the pose model with its per-stage split, on scenes from disk.

    .venv/bin/python -m graspstack.pose_model.bench --data data/test/nominal --scenes 100

Frames are decoded before timing (the robot sends decoded arrays to the service).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from graspstack.pose_model.infer import ModelPredictor
from graspstack.scene_io import Scene, iter_scene_dirs


def bench(data: str, scenes: int, version: str | None = None) -> dict:
    predictor = ModelPredictor(version)
    frames = [Scene(p).frame() for p in list(iter_scene_dirs(data))[:scenes]]
    predictor.predict(frames[0])  # warm-up
    rows = []
    for f in frames:
        predictor.predict(f)
        rows.append(predictor.last_timings_ms)
    out: dict = {"model": predictor.version, "data": data, "frames": len(frames), "stages_ms": {}}
    for stage in rows[0]:
        a = np.array([r[stage] for r in rows])
        out["stages_ms"][stage] = {
            "p50": round(float(np.percentile(a, 50)), 1),
            "p95": round(float(np.percentile(a, 95)), 1),
            "p99": round(float(np.percentile(a, 99)), 1),
            "mean": round(float(a.mean()), 1),
        }
    total = out["stages_ms"]["total"]["mean"]
    out["share_of_mean"] = {
        s: round(v["mean"] / total, 3) for s, v in out["stages_ms"].items() if s != "total"
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--version", default=None)
    args = parser.parse_args()
    print(json.dumps(bench(args.data, args.scenes, args.version), indent=1))


if __name__ == "__main__":
    main()
