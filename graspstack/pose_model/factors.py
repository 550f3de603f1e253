"""What the hard slice costs, factor by factor: the same hard lab scenes rendered as drawn and with one
of the slice's factors set back to nominal (sensor noise, light), scored with the contract metric.

    .venv/bin/python -m graspstack.pose_model.factors --version v2 --scenes 60

A factor whose nominal setting lifts the score a lot is where the pipeline should cope better; one
that changes little is not worth work. Scenes come from a held-out seed (9400) no training used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from tqdm import tqdm

from graspstack.frames import Frame
from graspstack.metric import match_scene, summarize
from graspstack.pose_model.infer import ModelPredictor

SEED = 9400


def variants() -> dict:
    from lab.envelope import RULES

    hard, nominal = RULES["hard"], RULES["nominal"]
    return {
        "hard": hard,
        "nominal depth noise": dataclasses.replace(
            hard,
            depth_noise_factor=nominal.depth_noise_factor,
            depth_dropout=nominal.depth_dropout,
            dropout_on_edges=nominal.dropout_on_edges,
        ),
        "no depth noise": dataclasses.replace(
            hard, depth_noise_factor=0.0, depth_dropout=0.0, dropout_on_edges=False
        ),
        "nominal light": dataclasses.replace(
            hard, ambient=nominal.ambient, diffuse=nominal.diffuse, specular=nominal.specular
        ),
    }


def run(version: str | None, n_scenes: int) -> dict:
    from lab.cell import LabCell
    from lab.envelope import RULES
    from lab.scenes import render_scene

    predictor = ModelPredictor(version)
    cell = LabCell()
    drawn = RULES["hard"]
    out = {}
    try:
        for name, rules in variants().items():
            RULES["hard"] = rules  # the scenes are the same draws: the rules only change what is varied
            records, false_positives = [], 0
            for i in tqdm(range(n_scenes), desc=name):
                r = render_scene(cell, "hard", SEED, i)
                poses = predictor.predict(Frame(r.rgb, r.depth_m, r.scene.intrinsics_obj()))
                result = match_scene(r.scene.ground_truth(), poses)
                records += result.records
                false_positives += result.n_false_positives
            summary = summarize(records, false_positives)
            out[name] = {
                "within_spec_rate": round(summary["within_spec_rate"], 4),
                "n_objects": summary["n_objects"],
                "median_rotation_error_deg": round(summary["re_deg"]["p50"], 2),
                "per_class": {
                    c: round(v["within_spec_rate"], 4) for c, v in sorted(summary["classes"].items())
                },
            }
    finally:
        RULES["hard"] = drawn
        cell.close()
    return {"version": predictor.version, "seed": SEED, "scenes": n_scenes, "variants": out}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", default=None, help="model version (default: the active one)")
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--out", default=None, help="write the result as JSON here too")
    args = parser.parse_args()
    result = run(args.version, args.scenes)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
