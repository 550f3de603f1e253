"""The accuracy metric of CONTRACTS section 4: matching, per-object errors and their summary.

Pure computation: no I/O, no timing. `graspstack.evaluation` runs predictors and calls this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from graspstack.catalogue import CATALOGUE, CLASS_NAMES
from graspstack.frames import ObjectPose
from graspstack.geometry import quat_to_matrix, rotation_angle_deg

# Thresholds of CONTRACTS sections 3 and 4.
MIN_VISIBLE_FRACTION = 0.3
MAX_POSITION_ERROR_M = 0.01
MAX_ANGULAR_ERROR_DEG = 5.0

PERCENTILES = (50, 90, 95, 99)


def angular_error_deg(class_name: str, R_gt: np.ndarray, R_pred: np.ndarray) -> float:
    """min over the class's symmetries S of angle(R_gt @ S, R_pred), in degrees."""
    symmetries = CATALOGUE[class_name].symmetries
    R_gt = np.asarray(R_gt, dtype=np.float64)
    return min(rotation_angle_deg(R_gt @ S, R_pred) for S in symmetries)


def within_spec(te_m: float | None, re_deg: float | None) -> bool:
    if te_m is None or re_deg is None:
        return False
    return te_m < MAX_POSITION_ERROR_M and re_deg < MAX_ANGULAR_ERROR_DEG


@dataclass
class ObjectRecord:
    """One counted ground-truth object and how the prediction for it fared.

    te_m / re_deg are None when no prediction was matched to the object.
    scene and slice are filled in by the evaluation runner (empty when unknown); gt_index is the
    object's position in the scene's ground-truth list (what a miner of hard cases marks).
    """

    class_name: str
    te_m: float | None
    re_deg: float | None
    within_spec: bool
    matched: bool
    visible_fraction: float
    scene: str = ""
    slice: str = ""
    gt_index: int = -1

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SceneResult:
    records: list[ObjectRecord]
    # Reported objects with no ground-truth counterpart, per reported class name.
    false_positives: dict[str, int] = field(default_factory=dict)
    # Predictions matched to objects too occluded to count: neither hits nor false positives.
    ignored_predictions: int = 0

    @property
    def n_false_positives(self) -> int:
        return sum(self.false_positives.values())


def _visible_fraction(pose: ObjectPose) -> float:
    return float(pose.extras.get("visible_fraction", 1.0))


def _is_valid(pose: ObjectPose) -> bool:
    """A prediction we can score: finite position and a finite, non-zero quaternion."""
    p = np.asarray(pose.position_m, dtype=np.float64)
    q = np.asarray(pose.quaternion_xyzw, dtype=np.float64)
    return (
        p.shape == (3,)
        and q.shape == (4,)
        and bool(np.all(np.isfinite(p)) and np.all(np.isfinite(q)))
        and float(np.linalg.norm(q)) > 1e-9
    )


def match_scene(
    gt: Sequence[ObjectPose], pred: Sequence[ObjectPose], min_visible: float = MIN_VISIBLE_FRACTION
) -> SceneResult:
    """Match predictions to ground truth of one scene and score every counted object.

    Per class, predictions are matched one-to-one to *all* ground-truth objects of that class
    (least total position distance), so that a prediction of a heavily occluded object takes that
    object rather than stealing a counted one, and is not a false positive. Only objects with
    visible fraction >= min_visible get a record. Invalid predictions (non-finite numbers, zero
    quaternion) cannot match anything and count as false positives.
    """
    records: list[ObjectRecord] = []
    false_positives: dict[str, int] = {}
    ignored = 0

    valid_pred = []
    for p in pred:
        if _is_valid(p):
            valid_pred.append(p)
        else:
            false_positives[p.class_name] = false_positives.get(p.class_name, 0) + 1

    classes = list(dict.fromkeys([g.class_name for g in gt] + [p.class_name for p in valid_pred]))
    for cls in classes:
        gt_ids = [k for k, g in enumerate(gt) if g.class_name == cls]
        gts = [gt[k] for k in gt_ids]
        preds = [p for p in valid_pred if p.class_name == cls]
        pairs: dict[int, int] = {}  # index into gts -> pred index
        if gts and preds:
            gt_pos = np.array([np.asarray(g.position_m, dtype=np.float64) for g in gts])
            pred_pos = np.array([np.asarray(p.position_m, dtype=np.float64) for p in preds])
            cost = np.linalg.norm(gt_pos[:, None, :] - pred_pos[None, :, :], axis=2)
            rows, cols = linear_sum_assignment(cost)
            pairs = dict(zip(rows.tolist(), cols.tolist(), strict=True))

        n_fp = len(preds) - len(pairs)
        if n_fp:
            false_positives[cls] = false_positives.get(cls, 0) + n_fp

        for i, g in enumerate(gts):
            vis = _visible_fraction(g)
            counted = vis >= min_visible
            if i not in pairs:
                if counted:
                    records.append(ObjectRecord(cls, None, None, False, False, vis, gt_index=gt_ids[i]))
                continue
            if not counted:
                ignored += 1
                continue
            p = preds[pairs[i]]
            te = float(np.linalg.norm(np.asarray(p.position_m, float) - np.asarray(g.position_m, float)))
            re = angular_error_deg(cls, quat_to_matrix(g.quaternion_xyzw), quat_to_matrix(p.quaternion_xyzw))
            records.append(ObjectRecord(cls, te, re, within_spec(te, re), True, vis, gt_index=gt_ids[i]))

    return SceneResult(records, false_positives, ignored)


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in PERCENTILES}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": float(np.percentile(arr, q)) for q in PERCENTILES}


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    arr = np.asarray(latencies_ms, dtype=np.float64)
    if arr.size == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0}
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
        "n": int(arr.size),
    }


def _summarize_group(records: Sequence[ObjectRecord], false_positives: int) -> dict:
    n = len(records)
    matched = [r for r in records if r.matched]
    n_within = sum(r.within_spec for r in records)
    return {
        "n_objects": n,
        "within_spec": n_within,
        # None rather than 0 when nothing was counted: "no data" is not "all failed".
        "within_spec_rate": n_within / n if n else None,
        "matched": len(matched),
        "matched_rate": len(matched) / n if n else None,
        "false_positives": int(false_positives),
        "te_m": _percentiles([r.te_m for r in matched if r.te_m is not None]),
        "re_deg": _percentiles([r.re_deg for r in matched if r.re_deg is not None]),
    }


def summarize(
    records: Iterable[ObjectRecord],
    false_positives: Mapping[str, int] | int,
    latencies_ms: Sequence[float] | None = None,
) -> dict:
    """JSON-able summary of counted objects: rates, error percentiles, per class the same.

    false_positives is per reported class (a bare int is accepted but then cannot be split by
    class). Classes are listed in catalogue order, then any other reported class names.
    """
    records = list(records)
    fp_by_class = {} if isinstance(false_positives, int) else dict(false_positives)
    fp_total = false_positives if isinstance(false_positives, int) else sum(fp_by_class.values())

    summary = _summarize_group(records, fp_total)
    present = {r.class_name for r in records} | {c for c, k in fp_by_class.items() if k}
    order = [c for c in CLASS_NAMES if c in present] + sorted(present - set(CLASS_NAMES))
    summary["classes"] = {
        c: _summarize_group([r for r in records if r.class_name == c], fp_by_class.get(c, 0)) for c in order
    }
    if latencies_ms is not None:
        summary["latency_ms"] = latency_summary(latencies_ms)
    return summary
