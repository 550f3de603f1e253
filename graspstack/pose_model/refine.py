"""Depth refinement of the network's coarse poses, reusing the scripted baseline's fitting code.

The network gets an object to within a few degrees and centimetres; the depth image knows where its
surface is to a millimetre. Per object, a few hypotheses start from the network's pose and are
refined against the object's back-projected points in a table frame:

- free ICP (6-DoF), for objects leaning on others or stacked;
- free ICP with the object kept standing on the table (skipped with table_hypothesis=False: from
  CropNet's fits, which start close, it never won on validation scenes and costs ~10% of the time);
- the nearest stable resting pose at the network's yaw (and, per class, at a few yaw offsets from
  it), with planar ICP and the scripted score search (`_polish`): on a settled object only yaw and
  the table position are unknown, which is what makes the millimetre/degree fits of the baseline
  possible.

The scripted score (surface distance + free-space violation) picks among them. Because all start at
the network's answer, there is no yaw grid to search: that search is most of the baseline's latency.
Where none explains the depth well, free ICP is restarted from the best turned 15-90 deg about each
table axis (`_restarts`, with multi_start_above), since ICP from the network's pose often stops in a
nearer minimum. The winner can then get a pattern search on the score over all six degrees of freedom
(`_polish_free`, per hypothesis kind with `free_polish`), and a near-resting winner is set down on its
resting pose when the depth explains that as well (`_snap_to_resting`). For a class whose body turns
about the model's z axis without changing (a mug), the winner is first swept about that axis
(`_sweep_about_axis`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from graspstack.frames import Intrinsics
from graspstack.geometry import rot_x, rot_y, rot_z
from graspstack.pose_model.geometry import bbox_centre_obj
from graspstack.predictors.scripted.fit import (
    POLISH_LEVELS,
    _free_icp,
    _planar_icp,
    _polish,
    _rz,
    _score,
    fit_segment,
    model_cloud,
    pattern_search,
    score_tolerance,
)
from graspstack.predictors.scripted.resting import RestingPose
from graspstack.predictors.scripted.table import Plane

MAX_POINTS = 500
POLISH_POINTS = 250  # the score search evaluates ~80 poses; a subsample keeps it a few ms per object
RESTING_MAX_DEG = 30.0  # snap to a resting pose only when the network's up vector is this close
SNAP_MIN_DEG = 0.3  # closer than this the fit already is the resting pose
SNAP_MARGIN = 0.1  # a resting fit this much worse in score than a tilted winner still replaces it
# (position m, turn deg) steps of the six-degree-of-freedom polish: starting at 3 mm / 1.5 deg gained
# half as much on hard validation scenes as starting here. The fourth step (0.75 mm / 0.5 deg), dropped
# for latency when the lego's edge alignment came and back since the score is compiled, is worth
# 1 of 491 nominal validation objects and 2 of 984 diagnostic ones for ~0.7 ms a nominal frame.
FREE_POLISH_LEVELS = (
    (0.006, 4.0),
    (0.003, 2.0),
    (0.0015, 1.0),
    (0.00075, 0.5),
)
FREE_POLISH_ROUNDS = 3  # moves per step before it halves
# The sweep about the model's z axis (axis_sweep, for a mug: its body is a cylinder about z, so
# only the handle tells its turn, a few percent of its surface; the fit often stopped 7-30 deg off or
# with the handle where none is seen). Every 9 deg, then every 3 deg within 45 deg of the best.
AXIS_SWEEP_COARSE_DEG = 9.0
AXIS_SWEEP_FINE_DEG = 3.0
AXIS_SWEEP_FINE_RANGE_DEG = 45.0
# The swept turn replaces the fit when it scores at most this much worse (on the fit's full point
# set; the sweep scores a subsample): with the handle hidden behind the body the score is flat.
AXIS_SWEEP_MARGIN = 0.01
BELOW_TABLE_M = 0.005  # a swept turn whose lowest hull vertex is this far under the table is skipped
# The turn about the model's z axis a frame net measures (axis_turn; for a mug, handle.py) replaces
# the fit's when the net is at least this sure, asks for at least AXIS_TURN_MIN_DEG, and the turned
# fit scores at most this much worse on the depth (which cannot tell the turns apart but can rule
# out a handle where it sees none). No shipped version has a handle net: measured with two
# (reports/pose_experiments/v10-handle-card.json), hard validation mugs went 177 -> 171 at these
# settings, 176 at 10 deg, 177 at 20 deg; a soft prior on the sweep instead lost 2-3. None gained
# more than one: where the fit is out of spec the net is 5-15 deg off too.
AXIS_TURN_MIN_SURENESS = 0.8
AXIS_TURN_MARGIN = 0.03
AXIS_TURN_MIN_DEG = 1.0
# Multi-start (multi_start_above, per class in infer.MULTI_START_ABOVE_SCORE): when no seeded fit
# explains the depth well (best score above it; a good fit scores 0.3-0.5), free ICP runs again from
# the best one turned about its box centre by each of these angles about each table axis, both ways
# (24 starts). On hard-slice misses the truth scored better than the answer on the answer's own
# points for 29 of 52: ICP had stopped in a nearer minimum 5-50 deg off. A restart wins only when it
# scores MULTI_START_HANDICAP better, since the lowest of 24 noisy scores is lower than the truth's by
# chance (without it: as many lost as gained).
MULTI_START_DEG = (15.0, 30.0, 45.0, 90.0)
MULTI_START_HANDICAP = 0.08
# The restarts are screened first: 4 ICP steps on 250 points, then only the 8 that score best get the
# full free ICP. Interleaved on 120 nominal frames: +1.8 ms a mean frame against +3.1 ms for the full
# ICP of all 24, p99 66.5 against 70.3 ms; hard check set 1633 against 1635, validation hard the same.
MULTI_START_KEEP = 8
MULTI_START_SCREEN_POINTS = 250
MULTI_START_SCREEN_ITERS = 4


# A camera-frame pose -> (turn about the model's z axis in degrees, the measure's sureness), or None.
AxisTurn = Callable[[np.ndarray], "tuple[float, float] | None"]


@dataclass
class Refined:
    T_cam_obj: np.ndarray
    score: float
    inlier_ratio: float
    free_space_violation: float
    hypothesis: str


def _yaw_of(R: np.ndarray, R0: np.ndarray) -> float:
    """Yaw of Rz(yaw) @ R0 closest to R (both table frame)."""
    M = R @ R0.T
    return float(np.arctan2(M[1, 0] - M[0, 1], M[0, 0] + M[1, 1]))


@dataclass
class Hypotheses:
    """One object's refinement hypotheses, table frame, as refine_pose compares them."""

    class_name: str
    names: list[str]  # "free", "table", "resting", "restart" or "search", per hypothesis
    score: np.ndarray  # (n,) the depth score, lower is better
    inliers: np.ndarray  # (n,)
    violation: np.ndarray  # (n,) free-space violation
    R: np.ndarray  # (n, 3, 3)
    t: np.ndarray  # (n, 3)
    R_seed: np.ndarray  # (3, 3) the network's pose that seeded the fits
    t_seed: np.ndarray  # (3,)
    resting: list[RestingPose]
    default: int  # refine._choose's pick


def _nearest_resting(resting: list[RestingPose], R: np.ndarray) -> tuple[RestingPose | None, float]:
    """The resting pose whose up vector is nearest R's (table frame), and the angle between (deg)."""
    up = R.T @ np.array([0.0, 0.0, 1.0])  # table up seen in the object frame
    near = max(resting, key=lambda p: float(p.up_obj @ up), default=None)
    if near is None:
        return None, 180.0
    return near, float(np.degrees(np.arccos(np.clip(near.up_obj @ up, -1.0, 1.0))))


def _resting_within(resting: list[RestingPose], R: np.ndarray, max_deg: float) -> list[RestingPose]:
    """Resting poses whose up vector is within max_deg of R's (table frame), nearest first; the
    nearest always, however far."""
    up = R.T @ np.array([0.0, 0.0, 1.0])
    order = sorted(resting, key=lambda p: -float(p.up_obj @ up))
    return order[:1] + [p for p in order[1:] if float(p.up_obj @ up) > np.cos(np.radians(max_deg))]


def _set_down(
    Q: np.ndarray,
    pose: RestingPose,
    R: np.ndarray,
    t: np.ndarray,
    yaw_offsets_deg: tuple[float, ...],
    cloud,
    T_ct: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    tol: float,
    polish_levels: tuple[tuple[float, float], ...],
    polish_rounds: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Starts on resting `pose` at R's yaw (plus offsets) where t stands, fitted along the table:
    planar ICP, then the score's pattern search. (H, 3, 3) rotations and (H, 3) translations."""
    Rr0 = pose.rotation()
    yaw = _yaw_of(R, Rr0)
    Rr = _rz(yaw + np.radians(np.asarray(yaw_offsets_deg))) @ Rr0
    # Turned about the model's centre, not its origin, so that every start stays on the object.
    c = cloud.centre
    tr = np.tile([t[0], t[1], pose.height_m], (len(Rr), 1))
    tr[:, :2] += (_rz(yaw) @ Rr0 @ c - Rr @ c)[:, :2]
    Rr, tr = _planar_icp(Q, Rr, tr, cloud, 10, (0.02, 2.0 * tol))
    return _polish(Q[:POLISH_POINTS], Rr, tr, cloud, T_ct, depth_m, intr, tol, polish_levels, polish_rounds)


def _polish_free(
    Q: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    cloud,
    T_ct: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    tol: float,
    levels: tuple[tuple[float, float], ...],
    rounds: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pattern search on the score over all six degrees of freedom (table frame), turning about the
    model's centre. ICP minimises the surface distance only and the table polish moves yaw and
    position only, so a fit of an object leaning on another can stop where the score would still
    improve by tilting or lifting it. R (3, 3), t (3,)."""
    # Per step: six shifts along the table frame's axes (+x, -x, +y, -y, +z, -z), then six turns
    # (about x, y, z, each way); the order breaks ties between equally good moves.
    turns = np.tile(np.eye(3), (len(levels), 12, 1, 1))
    shifts = np.zeros((len(levels), 12, 3))
    for s, (step_m, step_deg) in enumerate(levels):
        shifts[s, :6] = np.concatenate([np.eye(3), -np.eye(3)])[[0, 3, 1, 4, 2, 5]] * step_m
        turns[s, 6:] = [rot(sign * step_deg) for rot in (rot_x, rot_y, rot_z) for sign in (1.0, -1.0)]
    Rp, tp = pattern_search(
        Q, R[None], t[None], cloud, T_ct, depth_m, intr, tol, turns, shifts, cloud.centre, rounds
    )
    return Rp[0], tp[0]


def refine_pose(
    T_init: np.ndarray,
    points_cam: np.ndarray,
    class_name: str,
    plane: Plane,
    resting: list[RestingPose],
    depth_m: np.ndarray,
    intr: Intrinsics,
    seed: int = 0,
    fallback_score: float | None = None,
    search_handicap: float = 0.0,
    table_hypothesis: bool = True,
    polish_levels: tuple[tuple[float, float], ...] = POLISH_LEVELS,
    polish_rounds: int = 3,
    light_search: bool = False,
    resting_yaw_offsets_deg: tuple[float, ...] = (0.0,),
    snap_max_deg: float | None = None,
    snap_margin: float = SNAP_MARGIN,
    free_polish: tuple[str, ...] = (),
    search_polish: bool = True,
    axis_sweep: bool = False,
    axis_turn: AxisTurn | None = None,
    multi_start_above: float | None = None,
    choose: Callable[[Hypotheses], int] | None = None,
) -> Refined:
    """choose: a learned choice between the hypotheses (ranker.Ranker.choose); None: the lowest
    handicapped score (_choose)."""
    cloud = model_cloud(class_name)
    points_cam, Q, T_ct, tol = _in_table_frame(points_cam, plane, seed)
    T_to = np.linalg.inv(T_ct) @ T_init
    R0, t0 = T_to[:3, :3], T_to[:3, 3]

    hyps_R, hyps_t, names = [], [], []
    R, t = _free_fit(Q, R0[None], t0[None], cloud, tol, touch_table=False)
    hyps_R.append(R[0]), hyps_t.append(t[0]), names.append("free")
    if table_hypothesis:
        R, t = _free_fit(Q, R0[None], t0[None], cloud, tol, touch_table=True)
        hyps_R.append(R[0]), hyps_t.append(t[0]), names.append("table")

    # Resting pose nearest to the network's tilt.
    best, off_deg = _nearest_resting(resting, R0)
    if best is not None and off_deg < RESTING_MAX_DEG:
        settle = (cloud, T_ct, depth_m, intr, tol, polish_levels, polish_rounds)
        R, t = _set_down(Q, best, R0, t0, resting_yaw_offsets_deg, *settle)
        for k in range(len(R)):
            hyps_R.append(R[k]), hyps_t.append(t[k]), names.append("resting")

    R_all, t_all = np.stack(hyps_R), np.stack(hyps_t)
    score, inliers, violation = _score(Q, R_all, t_all, cloud, T_ct, depth_m, intr, tol)
    if multi_start_above is not None and float(score.min()) > multi_start_above:
        k = int(np.argmin(score))
        starts = _restarts(R_all[k], t_all[k], bbox_centre_obj(class_name))
        R, t = _restarted_fits(Q, *starts, cloud, T_ct, depth_m, intr, tol)
        R_all, t_all = np.concatenate([R_all, R]), np.concatenate([t_all, t])
        names += ["restart"] * len(R)
        score, inliers, violation = _score(Q, R_all, t_all, cloud, T_ct, depth_m, intr, tol)
    if fallback_score is not None and float(score.min()) > fallback_score:
        # None of the network-seeded fits explains the depth: the network's rotation was probably
        # outside ICP's reach. The baseline's full resting-pose and yaw search is slow but does not
        # need a starting point, so it is worth its cost on these few objects.
        fit = fit_segment(
            points_cam,
            plane,
            class_name,
            resting,
            depth_m,
            intr,
            seed,
            light=light_search,
            polish=search_polish,
        )
        T_to = np.linalg.inv(T_ct) @ fit.T_cam_obj
        R_all = np.concatenate([R_all, T_to[None, :3, :3]])
        t_all = np.concatenate([t_all, T_to[None, :3, 3]])
        names.append("search")
        score, inliers, violation = _score(Q, R_all, t_all, cloud, T_ct, depth_m, intr, tol)
    i = _choose(names, score, search_handicap)
    if choose is not None and len(names) > 1:
        # Copies: the winner's entries are overwritten below as it is polished, and a chooser may keep
        # what it was shown (ranker_train records it).
        arrays = (a.copy() for a in (score, inliers, violation, R_all, t_all))
        i = choose(Hypotheses(class_name, list(names), *arrays, R0, t0, resting, i))
    # A restart is the free fit started elsewhere: it is polished as the free fit is.
    if names[i] in free_polish or (names[i] == "restart" and "free" in free_polish):
        Rp, tp = _polish_free(
            Q[:POLISH_POINTS],
            R_all[i],
            t_all[i],
            cloud,
            T_ct,
            depth_m,
            intr,
            tol,
            FREE_POLISH_LEVELS,
            FREE_POLISH_ROUNDS,
        )
        sc, inl, vio = _score(Q, Rp[None], tp[None], cloud, T_ct, depth_m, intr, tol)
        if float(sc[0]) < float(score[i]):
            R_all[i], t_all[i] = Rp, tp
            score[i], inliers[i], violation[i] = sc[0], inl[0], vio[0]
    if axis_sweep:  # before the snap: a better turn may be nearer a resting pose
        swept = _sweep_about_axis(Q, R_all[i], t_all[i], float(score[i]), cloud, T_ct, depth_m, intr, tol)
        if swept is not None:
            R_all[i], t_all[i] = swept[0], swept[1]
            score[i], inliers[i], violation[i] = swept[2:]
            names[i] += "+axis"
    if axis_turn is not None:
        seen = _turn_to_seen(
            axis_turn, Q, R_all[i], t_all[i], float(score[i]), cloud, T_ct, depth_m, intr, tol
        )
        if seen is not None:
            R_all[i] = seen[0]
            score[i], inliers[i], violation[i] = seen[1:]
            names[i] += "+seen"
    if snap_max_deg:
        snapped = _snap_to_resting(
            Q,
            R_all[i],
            t_all[i],
            float(score[i]),
            cloud,
            resting,
            snap_max_deg,
            T_ct,
            depth_m,
            intr,
            tol,
            polish_levels,
            polish_rounds,
            snap_margin,
        )
        if snapped is not None:
            T, sc, inl, vio = snapped
            return Refined(T_ct @ T, sc, inl, vio, names[i] + "+snap")
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_all[i], t_all[i]
    return Refined(T_ct @ T, float(score[i]), float(inliers[i]), float(violation[i]), names[i])


def _choose(names: list[str], score: np.ndarray, search_handicap: float) -> int:
    """The winning hypothesis: the lowest score, where a search wins only by more than
    search_handicap (it starts from no guess, so a near tie goes to the fits seeded by the network)
    and a restart by more than MULTI_START_HANDICAP."""
    handicap = {"search": search_handicap, "restart": MULTI_START_HANDICAP}
    return int(np.argmin(score + np.array([handicap.get(n, 0.0) for n in names])))


def _in_table_frame(points_cam: np.ndarray, plane: Plane, seed: int):
    """(points kept, the same in the table frame Q, T_cam_table, score tolerance): what a fit of one
    object's points is scored on."""
    rng = np.random.default_rng(seed)
    # A random order (not raster order) so that any prefix is a fair subsample of the object.
    points_cam = points_cam[rng.permutation(len(points_cam))[:MAX_POINTS]]
    T_ct = plane.frame(points_cam.mean(axis=0))
    Q = (points_cam - T_ct[:3, 3]) @ T_ct[:3, :3]
    return points_cam, Q, T_ct, score_tolerance(plane, points_cam)


def z_axis_within(z_axis_cam: np.ndarray, min_cos: float) -> Callable[[np.ndarray], np.ndarray]:
    """A test of camera-frame rotations (H, 3, 3): model z axis within arccos(min_cos) of z_axis_cam."""
    return lambda R: R[:, :, 2] @ z_axis_cam >= min_cos


def refit_within(
    points_cam: np.ndarray,
    class_name: str,
    plane: Plane,
    resting: list[RestingPose],
    depth_m: np.ndarray,
    intr: Intrinsics,
    only: Callable[[np.ndarray], np.ndarray],
    seed: int = 0,
    polish: bool = True,
) -> Refined | None:
    """The resting-pose search (fit_segment, light) over only the poses whose camera-frame rotation
    passes `only` (e.g. z_axis_within), scored as refine_pose scores its fits (same points, same
    seed), or None when no resting pose passes. (For a lego's face, the fit turned a quarter or half
    round toward the seen stud axis, then free ICP and the six-degree-of-freedom polish, was measured
    as a second hypothesis for leaning legos: it won on score with answers 2-5 deg off where the
    search's were within 1, and fixed none: hard check and validation 2478 against 2480.)"""
    points_cam, Q, T_ct, tol = _in_table_frame(points_cam, plane, seed)
    fit = fit_segment(
        points_cam,
        plane,
        class_name,
        resting,
        depth_m,
        intr,
        seed,
        light=True,
        polish=polish,
        only=only,
    )
    if fit is None:
        return None
    T_to = np.linalg.inv(T_ct) @ fit.T_cam_obj
    cloud = model_cloud(class_name)
    sc, inl, vio = _score(Q, T_to[None, :3, :3], T_to[None, :3, 3], cloud, T_ct, depth_m, intr, tol)
    return Refined(fit.T_cam_obj, float(sc[0]), float(inl[0]), float(vio[0]), "axis-search")


def _free_fit(
    Q: np.ndarray, R: np.ndarray, t: np.ndarray, cloud, tol: float, touch_table: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Free ICP from poses (R (H, 3, 3), t (H, 3), table frame): 8 steps with a loose trim, then 6
    within twice the score's tolerance. Every free hypothesis (the fit, on the table, a restart)
    takes this schedule."""
    R, t = _free_icp(Q, R, t, cloud, 8, 0.015, touch_table=touch_table)
    return _free_icp(Q, R, t, cloud, 6, 2.0 * tol, touch_table=touch_table)


def _restarted_fits(
    Q: np.ndarray, R: np.ndarray, t: np.ndarray, cloud, T_ct, depth_m, intr, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """The restarts (R, t) screened by a few ICP steps on a subsample, and the MULTI_START_KEEP that
    then score best fitted in full."""
    Qs = Q[:MULTI_START_SCREEN_POINTS]
    R, t = _free_icp(Qs, R, t, cloud, MULTI_START_SCREEN_ITERS, 0.015, touch_table=False)
    keep = np.argsort(_score(Qs, R, t, cloud, T_ct, depth_m, intr, tol)[0])[:MULTI_START_KEEP]
    return _free_fit(Q, R[keep], t[keep], cloud, tol, touch_table=False)


def _restarts(R: np.ndarray, t: np.ndarray, centre_obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pose (R, t, table frame) turned about its box centre by each MULTI_START_DEG, both ways,
    about each table axis: (H, 3, 3) rotations and (H, 3) translations, the centre kept in place."""
    turns = np.stack(
        [
            turn(sign * deg)
            for turn in (rot_x, rot_y, rot_z)
            for deg in MULTI_START_DEG
            for sign in (1.0, -1.0)
        ]
    )
    c = R @ centre_obj + t
    return turns @ R[None], c[None] + np.einsum("hij,j->hi", turns, t - c)


def _snap_to_resting(
    Q: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    score: float,
    cloud,
    resting: list[RestingPose],
    max_deg: float,
    T_ct: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    tol: float,
    polish_levels: tuple[tuple[float, float], ...],
    polish_rounds: int,
    margin: float = SNAP_MARGIN,
) -> tuple[np.ndarray, float, float, float] | None:
    """The winning fit set down on a resting pose within max_deg of it (the one whose set-down fit
    scores best), when the depth explains that nearly as well (score at most margin worse).

    Free ICP fits the depth's noise as well as the object: a lego lying flat came out tilted 3-7 deg
    (so 5-7 deg off) with a slightly lower score than the flat fit. Objects on a table rest in a
    handful of poses to a fraction of a degree, so a near-resting fit is almost always one of them;
    the margin keeps a fit that is clearly better tilted (an object leaning on another).
    Returns (T_table_obj, score, inlier ratio, free-space violation) or None.
    """
    near, off = _nearest_resting(resting, R)
    if near is None or not SNAP_MIN_DEG < off < max_deg:
        return None
    best = None
    # Every resting pose within reach, not just the nearest: some classes have two 6-9 deg apart (a
    # teddy on its back, and on its back rolled a little), and in hard-slice depth the fit's tilt is
    # off by as much, so the nearest was often the wrong one (hard validation teddies 77% -> 81%).
    settle = (cloud, T_ct, depth_m, intr, tol, polish_levels, polish_rounds)
    for pose in _resting_within(resting, R, max_deg):
        Rs, ts = _set_down(Q, pose, R, t, (0.0,), *settle)
        sc, inl, vio = _score(Q, Rs, ts, cloud, T_ct, depth_m, intr, tol)
        if best is None or float(sc[0]) < best[2]:
            best = (Rs[0], ts[0], float(sc[0]), float(inl[0]), float(vio[0]))
    Rs, ts, sc, inl, vio = best
    if sc > score + margin:
        return None
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = Rs, ts
    return T, sc, inl, vio


def _sweep_about_axis(
    Q: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    score: float,
    cloud,
    T_ct: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, float, float, float] | None:
    """The fit (R, t, table frame) turned about the model's z axis to where the score is lowest: a
    coarse sweep of the whole turn, then a fine one around its best. Turns that put the model through
    the table are skipped. Returns (R, t, score, inlier ratio, free-space violation), or None when
    the best turn scores more than AXIS_SWEEP_MARGIN worse than the fit as it was."""

    def sweep(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cand = R[None] @ _rz(theta)  # about the model's own z axis, through its origin
        sc = _score(Q[:POLISH_POINTS], cand, np.tile(t, (len(theta), 1)), cloud, T_ct, depth_m, intr, tol)[0]
        return cand, np.where(_above_table(cloud, cand, t), sc, np.inf)

    _, coarse = sweep(np.radians(np.arange(0.0, 360.0, AXIS_SWEEP_COARSE_DEG)))
    centre = np.radians(AXIS_SWEEP_COARSE_DEG * int(np.argmin(coarse)))
    half = AXIS_SWEEP_FINE_RANGE_DEG
    cand, fine = sweep(centre + np.radians(np.arange(-half, half + 1e-6, AXIS_SWEEP_FINE_DEG)))
    # Neighbouring turns' scores differ by +-0.03 from the sampling alone (which surface samples and
    # pixels the body's points land on): a [1 2 1] smoothing keeps the choice from following that.
    fine = np.convolve(np.pad(fine, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    k = int(np.argmin(fine))
    sc, inl, vio = _score(Q, cand[k][None], t[None], cloud, T_ct, depth_m, intr, tol)
    if not np.isfinite(fine[k]) or float(sc[0]) > score + AXIS_SWEEP_MARGIN:
        return None
    return cand[k], t.copy(), float(sc[0]), float(inl[0]), float(vio[0])


def _turn_to_seen(
    axis_turn: AxisTurn, Q: np.ndarray, R: np.ndarray, t: np.ndarray, score: float, *context
) -> tuple[np.ndarray, float, float, float] | None:
    """The fit (R, t, table frame) turned about the model's z axis as far as axis_turn measures, or
    None where it is unsure, the turn is negligible, or the depth rules the turned fit out. Returns
    (R, score, inlier ratio, free-space violation). context: the scoring's (cloud, T_ct, depth_m,
    intr, tol), as _sweep_about_axis takes them."""
    cloud, T_ct = context[:2]
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    measured = axis_turn(T_ct @ T)
    if measured is None:
        return None
    turn_deg, sureness = measured
    if sureness < AXIS_TURN_MIN_SURENESS or abs(turn_deg) < AXIS_TURN_MIN_DEG:
        return None
    turned = R @ _rz(np.radians(turn_deg))
    if not _above_table(cloud, turned[None], t)[0]:
        return None
    sc, inl, vio = _score(Q, turned[None], t[None], *context)
    if float(sc[0]) > score + AXIS_TURN_MARGIN:
        return None
    return turned, float(sc[0]), float(inl[0]), float(vio[0])


def _above_table(cloud, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(H,) per rotation R (H, 3, 3) at t (table frame): its lowest hull vertex is at most
    BELOW_TABLE_M under the table."""
    lowest = (cloud.hull[None] @ R.transpose(0, 2, 1))[..., 2].min(axis=1) + t[2]
    return lowest > -BELOW_TABLE_M
