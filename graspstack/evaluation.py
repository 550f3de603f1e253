"""`graspstack eval`: run a predictor over scenes on disk and report the metric per slice and class."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from graspstack.metric import (
    MAX_ANGULAR_ERROR_DEG,
    MAX_POSITION_ERROR_M,
    ObjectRecord,
    latency_summary,
    match_scene,
    summarize,
)
from graspstack.predictors.base import Predictor, load_predictor
from graspstack.scene_io import Scene, iter_scene_dirs

# Slices of CONTRACTS section 3 in their natural order; any other slice names follow, sorted.
_SLICE_ORDER = ("nominal", "hard")


def _ordered_slices(names) -> list[str]:
    names = set(names)
    return [s for s in _SLICE_ORDER if s in names] + sorted(names - set(_SLICE_ORDER))


@dataclass
class EvalResult:
    report: dict  # JSON-able, see run_evaluation
    records: list[ObjectRecord]  # every counted object, with scene and slice filled in
    latencies_ms: list[float] = field(default_factory=list)  # one per frame, in scene order


def run_evaluation(
    data: str | Path, predictor: str | Predictor, limit: int | None = None, progress: bool = True
) -> EvalResult:
    """Run predictor.predict() on every scene under data (the first `limit` in sorted order).

    Only the predict() call is timed, not reading the scene from disk. The report is
    {"predictor", "data", "slices": {slice: summary (see metric.summarize) + n_scenes},
    "latency_ms": {p50, p95, p99, mean, n}}.
    """
    if not Path(data).exists():
        raise FileNotFoundError(f"no such data directory: {data}")
    if isinstance(predictor, str):
        predictor = load_predictor(predictor)

    scene_dirs = list(iter_scene_dirs(data))
    if limit is not None:
        scene_dirs = scene_dirs[:limit]

    records: list[ObjectRecord] = []
    latencies: list[float] = []
    by_slice: dict[str, dict] = defaultdict(
        lambda: {"records": [], "fp": defaultdict(int), "latencies": [], "n_scenes": 0}
    )
    for path in tqdm(
        scene_dirs, desc=f"eval {predictor.name}", unit="scene", file=sys.stderr, disable=not progress
    ):
        scene = Scene(path)
        frame = scene.frame()
        t0 = time.perf_counter()
        pred = predictor.predict(frame)
        ms = (time.perf_counter() - t0) * 1000.0

        result = match_scene(scene.ground_truth(), pred)
        group = by_slice[scene.slice]
        group["n_scenes"] += 1
        group["latencies"].append(ms)
        for cls, k in result.false_positives.items():
            group["fp"][cls] += k
        scene_records = [dataclasses.replace(r, scene=scene.name, slice=scene.slice) for r in result.records]
        group["records"].extend(scene_records)
        records.extend(scene_records)
        latencies.append(ms)

    slices = {}
    for name in _ordered_slices(by_slice):
        g = by_slice[name]
        slices[name] = {"n_scenes": g["n_scenes"], **summarize(g["records"], dict(g["fp"]), g["latencies"])}
    report = {
        "predictor": predictor.name,
        "data": str(data),
        "slices": slices,
        "latency_ms": latency_summary(latencies),
    }
    return EvalResult(report, records, latencies)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _mm(x: float | None) -> str:
    return "-" if x is None else f"{1000 * x:.1f}"


def _deg(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_table(report: dict) -> str:
    """A fixed-width table per slice: one row per class and one for the whole slice."""
    header = (
        f"{'class':<10}{'objects':>8}{'within%':>9}{'te p50mm':>10}{'te p95mm':>10}"
        f"{'re p50deg':>11}{'re p95deg':>11}{'matched%':>10}{'FP':>6}"
    )
    lines = [f"predictor {report['predictor']} on {report['data']}"]

    def row(name: str, s: dict) -> str:
        return (
            f"{name:<10}{s['n_objects']:>8}{_pct(s['within_spec_rate']):>9}"
            f"{_mm(s['te_m']['p50']):>10}{_mm(s['te_m']['p95']):>10}"
            f"{_deg(s['re_deg']['p50']):>11}{_deg(s['re_deg']['p95']):>11}"
            f"{_pct(s['matched_rate']):>10}{s['false_positives']:>6}"
        )

    for name, s in report["slices"].items():
        lines += ["", f"slice {name} ({s['n_scenes']} scenes)", header, "-" * len(header)]
        lines += [row(cls, cs) for cls, cs in s["classes"].items()]
        lines += ["-" * len(header), row("all", s)]
    if not report["slices"]:
        lines.append("(no scenes)")
    lat = report["latency_ms"]
    if lat["n"]:
        lines += [
            "",
            (
                f"latency ms over {lat['n']} frames: p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  "
                f"p99 {lat['p99']:.1f}  mean {lat['mean']:.1f}"
            ),
        ]
    return "\n".join(lines)


# Errors are shown on log axes; exact zeros (a perfect prediction) are drawn at these floors.
_TE_FLOOR_MM = 0.01
_RE_FLOOR_DEG = 0.01


def _log_hist(ax, values: list[float], floor: float, limit: float, unit: str, title: str) -> None:
    v = np.maximum(np.asarray(values, dtype=np.float64), floor)
    top = max(float(v.max()) if v.size else 0.0, 10 * limit)
    bins = np.logspace(np.log10(floor), np.log10(top) + 1e-9, 40)
    ax.hist(v, bins=bins, color="tab:blue")
    ax.axvline(limit, color="tab:red", linestyle="--", label=f"spec {limit:g} {unit}")
    ax.set_xscale("log")
    ax.set_xlabel(f"{title} ({unit}, log)")
    ax.set_ylabel("objects")
    ax.legend(loc="upper right", fontsize="small")


def plot_errors(records: list[ObjectRecord], path: str | Path) -> Path:
    """PNG with, per slice, histograms of position error (mm) and angular error (deg) of matched objects.

    Log-x axes keep gross outliers from squashing the bulk around the spec line.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state, works headless

    slices = _ordered_slices(r.slice for r in records) or [""]
    fig = Figure(figsize=(11, 3.2 * len(slices)), layout="constrained")
    axes = fig.subplots(len(slices), 2, squeeze=False)
    for (ax_te, ax_re), name in zip(axes, slices, strict=True):
        rs = [r for r in records if r.slice == name]
        matched = [r for r in rs if r.matched]
        te = [1000 * r.te_m for r in matched if r.te_m is not None]
        re = [r.re_deg for r in matched if r.re_deg is not None]
        _log_hist(ax_te, te, _TE_FLOOR_MM, 1000 * MAX_POSITION_ERROR_M, "mm", "position error")
        _log_hist(ax_re, re, _RE_FLOOR_DEG, MAX_ANGULAR_ERROR_DEG, "deg", "angular error")
        label = name or "all"
        unmatched = len(rs) - len(matched)
        ax_te.set_title(f"{label}: {len(matched)} matched, {unmatched} unmatched")
        ax_re.set_title(f"{label}: within spec {sum(r.within_spec for r in rs)}/{len(rs)}")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def cli_eval(
    data: str,
    predictor_spec: str,
    as_json: bool,
    plot: str | None,
    limit: int | None,
    records_out: str | None = None,
) -> int:
    """`graspstack eval`: prints JSON or a table on stdout; optional plot and per-object JSON lines."""
    if not Path(data).exists():
        print(f"graspstack eval: no such data directory: {data}", file=sys.stderr)
        return 2
    result = run_evaluation(data, load_predictor(predictor_spec), limit=limit)
    if not result.report["slices"]:
        # Most likely a wrong path; a report over nothing would read like a result.
        print(f"graspstack eval: no scenes (scene.json) under {data}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result.report, indent=2))
    else:
        print(format_table(result.report))
    if plot:
        plot_errors(result.records, plot)
    if records_out:
        with open(records_out, "w") as f:
            f.writelines(json.dumps(r.to_json()) + "\n" for r in result.records)
    return 0
