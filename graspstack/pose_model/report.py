"""Held-out evaluation of a model version for its card: metric per slice and class, per-stage latency,
and how well the confidence predicts out-of-spec answers.

    .venv/bin/python -m graspstack.pose_model.report --version v1 --data data/test/nominal data/test/hard

Confidence quality is measured per reported object: each is matched to ground truth as the metric
matches (same class, least total distance); it is "good" when within spec. The AUROC says how well
confidence ranks good above bad answers; the threshold table says what a consumer gets by trusting
only answers above a confidence.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from graspstack.frames import ObjectPose
from graspstack.geometry import quat_to_matrix
from graspstack.metric import MIN_VISIBLE_FRACTION, angular_error_deg, match_scene, summarize, within_spec
from graspstack.pose_model.infer import ModelPredictor
from graspstack.pose_model.registry import load_card, write_card
from graspstack.scene_io import Scene, iter_scene_dirs

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def prediction_outcomes(gt: list[ObjectPose], pred: list[ObjectPose]) -> list[tuple[ObjectPose, bool]]:
    """(prediction, within spec) per prediction; predictions of uncounted objects are left out."""
    out = []
    for cls in {p.class_name for p in pred}:
        gts = [g for g in gt if g.class_name == cls]
        preds = [p for p in pred if p.class_name == cls]
        pairs: dict[int, int] = {}
        if gts:
            cost = np.linalg.norm(
                np.array([g.position_m for g in gts])[:, None]
                - np.array([p.position_m for p in preds])[None],
                axis=2,
            )
            rows, cols = linear_sum_assignment(cost)
            pairs = {int(c): int(r) for r, c in zip(rows, cols, strict=True)}
        for j, p in enumerate(preds):
            if j not in pairs:
                out.append((p, False))
                continue
            g = gts[pairs[j]]
            if g.extras.get("visible_fraction", 1.0) < MIN_VISIBLE_FRACTION:
                continue
            te = float(np.linalg.norm(np.asarray(p.position_m) - np.asarray(g.position_m)))
            re = angular_error_deg(cls, quat_to_matrix(g.quaternion_xyzw), quat_to_matrix(p.quaternion_xyzw))
            out.append((p, within_spec(te, re)))
    return out


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return None
    # Probability that a good answer outranks a bad one (ties count half).
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def confidence_report(outcomes: list[tuple[float, bool]]) -> dict:
    if not outcomes:
        return {}
    conf = np.array([c for c, _ in outcomes])
    good = np.array([g for _, g in outcomes])
    table = []
    for t in THRESHOLDS:
        keep = conf >= t
        table.append(
            {
                "threshold": t,
                "kept_share": round(float(keep.mean()), 3),
                "within_spec_rate_kept": round(float(good[keep].mean()), 3) if keep.any() else None,
                "out_of_spec_caught": round(float((~keep & ~good).sum() / max((~good).sum(), 1)), 3),
            }
        )
    return {
        "n_predictions": len(outcomes),
        "within_spec_rate": round(float(good.mean()), 3),
        "auroc": auroc(conf, good),
        "thresholds": table,
    }


def evaluate(predictor: ModelPredictor, dirs: list[str], limit: int | None = None) -> dict:
    by_slice: dict[str, dict] = defaultdict(lambda: {"records": [], "fp": defaultdict(int), "n": 0})
    stages: dict[str, list[float]] = defaultdict(list)
    outcomes: dict[str, list] = defaultdict(list)
    for d in dirs:
        for path in tqdm(list(iter_scene_dirs(d))[:limit], desc=f"eval {predictor.name} {d}", unit="scene"):
            scene = Scene(path)
            pred = predictor.predict(scene.frame())
            for k, v in predictor.last_timings_ms.items():
                stages[k].append(v)
            gt = scene.ground_truth()
            result = match_scene(gt, pred)
            g = by_slice[scene.slice]
            g["n"] += 1
            g["records"].extend(result.records)
            for cls, k in result.false_positives.items():
                g["fp"][cls] += k
            outcomes[scene.slice].extend((p.confidence, g) for p, g in prediction_outcomes(gt, pred))
    slices = {s: {"n_scenes": g["n"], **summarize(g["records"], dict(g["fp"]))} for s, g in by_slice.items()}
    latency = {
        k: {q: round(float(np.percentile(v, int(q[1:]))), 1) for q in ("p50", "p95", "p99")}
        for k, v in stages.items()
    }
    for k, v in stages.items():
        latency[k]["mean"] = round(float(np.mean(v)), 1)
    return {
        "data": dirs,
        "slices": slices,
        "latency_ms_per_stage": latency,
        "confidence": {s: confidence_report(o) for s, o in outcomes.items()},
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def fit_calibration(version: str, dirs: list[str], limit: int | None = None) -> dict:
    """Fit the version's confidence calibration on held-out validation scenes and store it."""
    from graspstack.pose_model.calibration import CALIBRATION_FILE, feature_vector, fit
    from graspstack.pose_model.registry import _root

    predictor = ModelPredictor(version)
    predictor.calibration = None  # fit on the raw evidence, not on a previous calibration,
    predictor.min_confidence = 0.0  # and on every answer the pipeline can give
    X, y = [], []
    for d in dirs:
        for path in tqdm(list(iter_scene_dirs(d))[:limit], desc=f"calibrate {version} {d}", unit="scene"):
            scene = Scene(path)
            for p, good in prediction_outcomes(scene.ground_truth(), predictor.predict(scene.frame())):
                X.append(feature_vector(p.extras))
                y.append(float(good))
    cal = fit(np.array(X), np.array(y))
    (_root(None) / version / CALIBRATION_FILE).write_text(json.dumps(cal.to_json(), indent=1) + "\n")
    return {"n": len(y), "within_spec_share": float(np.mean(y)), "data": dirs, **cal.to_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", default=None)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--card-key", default="test", help="write the result under this key of the card")
    parser.add_argument("--calibrate", action="store_true", help="fit the confidence calibration on --data")
    args = parser.parse_args()
    if args.calibrate:
        info = fit_calibration(args.version, args.data, args.limit)
        card = load_card(args.version)
        card["calibration"] = info
        write_card(args.version, card)
        print(json.dumps({k: info[k] for k in ("n", "within_spec_share", "weights")}))
        return
    predictor = ModelPredictor(args.version)
    result = evaluate(predictor, args.data, args.limit)
    card = load_card(predictor.version)
    card[args.card_key] = result
    write_card(predictor.version, card)
    print(json.dumps({s: v["within_spec_rate"] for s, v in result["slices"].items()}))
    print(json.dumps(result["latency_ms_per_stage"]))
    print(json.dumps({s: v.get("auroc") for s, v in result["confidence"].items()}))


if __name__ == "__main__":
    main()
