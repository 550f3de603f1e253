"""The scripted baseline's data file: resting poses and colour model per class.

`models/baselines/scripted_priors.json` is made offline by `generate_priors()` (needs the lab
simulator, about 10 s) and read by `load_priors()` (plain JSON, no simulator):

    .venv/bin/python -m graspstack.predictors.scripted.priors  # rewrites the JSON
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from graspstack.predictors.scripted.classify import ColourModel, fit_colour_model, lab_colour_samples
from graspstack.predictors.scripted.resting import RestingPose, drop_resting_poses

PRIORS_PATH = Path(__file__).resolve().parents[3] / "models" / "baselines" / "scripted_priors.json"


@dataclass(frozen=True)
class Priors:
    resting: dict[str, list[RestingPose]]
    colour: ColourModel

    def to_json(self) -> dict:
        return {
            "generator": "graspstack.predictors.scripted.priors.generate_priors",
            "resting_poses": {
                c: [
                    {
                        "up_obj": [round(float(v), 5) for v in p.up_obj],
                        "height_m": round(p.height_m, 5),
                        "frequency": round(p.frequency, 4),
                    }
                    for p in poses
                ]
                for c, poses in self.resting.items()
            },
            "colour": self.colour.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Priors:
        resting = {
            c: [
                RestingPose(np.array(p["up_obj"]), float(p["height_m"]), float(p["frequency"])) for p in poses
            ]
            for c, poses in data["resting_poses"].items()
        }
        return cls(resting, ColourModel.from_json(data["colour"]))


def generate_priors(drops_per_class: int = 300, seed: int = 0) -> Priors:
    return Priors(drop_resting_poses(drops_per_class, seed), fit_colour_model(lab_colour_samples()))


@cache
def load_priors(path: str | Path = PRIORS_PATH) -> Priors:
    return Priors.from_json(json.loads(Path(path).read_text()))


if __name__ == "__main__":
    PRIORS_PATH.parent.mkdir(parents=True, exist_ok=True)
    PRIORS_PATH.write_text(json.dumps(generate_priors().to_json(), indent=1) + "\n")
    print(f"wrote {PRIORS_PATH}")
