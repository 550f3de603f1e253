"""Benchmarks: lab rendering throughput, pose-estimator latency and memory, in one run on this machine.

Writes JSON (for tracking) and Markdown (for people). Times are wall-clock on whatever machine runs
this: compare only within one run. Memory is each process's resident set (memory.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.memory import bench_memory
from benchmarks.stats import percentiles


def bench_render(scenes: int, workers: list[int]) -> list[dict]:
    from lab.dataset import render_dataset

    rows = []
    for slice_name in ("nominal", "hard"):
        for w in workers:
            with tempfile.TemporaryDirectory() as tmp:
                info = render_dataset(tmp, scenes, seed=777, slice_name=slice_name, workers=w, progress=True)
            rows.append(
                {
                    "slice": slice_name,
                    "workers": w,
                    "scenes": scenes,
                    "seconds": info["seconds"],
                    "scenes_per_second": info["scenes_per_second"],
                }
            )
    return rows


def held_out_frames(scenes: int, root: Path) -> dict[str, list]:
    """Held-out seed 9999 rendered under root/<slice>, and its frames decoded per slice (decoding is
    not part of any timing)."""
    from graspstack.scene_io import Scene, iter_scene_dirs
    from lab.dataset import render_dataset

    frames = {}
    for slice_name in ("nominal", "hard"):
        render_dataset(root / slice_name, scenes, seed=9999, slice_name=slice_name, progress=False)
        frames[slice_name] = [Scene(d).frame() for d in iter_scene_dirs(root / slice_name)]
    return frames


def bench_model_stages(frames: dict[str, list]) -> dict[str, dict] | None:
    """The model's per-stage split (detection, proposals, crops + CropNet, RANSAC fit, refinement),
    per slice of `frames`."""
    try:
        from graspstack.pose_model.infer import ModelPredictor
    except ImportError:
        return None
    predictor = ModelPredictor(None)
    out = {}
    for slice_name, fs in frames.items():
        predictor.predict(fs[0])
        rows = []
        for f in fs:
            predictor.predict(f)
            rows.append(dict(predictor.last_timings_ms))
        split = {"model": predictor.version, "frames": len(fs), "stages_ms": {}}
        for stage in rows[0]:
            split["stages_ms"][stage] = percentiles([r[stage] for r in rows])
        total = split["stages_ms"]["total"]["mean"]
        split["share_of_mean"] = {
            k: round(v["mean"] / total, 3) for k, v in split["stages_ms"].items() if k != "total"
        }
        out[slice_name] = split
    return out


def bench_predictors(specs: list[str], frames: dict[str, list]) -> list[dict]:
    """Per-frame latency of each predictor on the same held-out frames (decoding excluded)."""
    from graspstack.predictors import load_predictor

    rows = []
    for spec in specs:
        predictor = load_predictor(spec)
        predictor.predict(frames["nominal"][0])  # warm-up: lazy loading is not per-frame cost
        for slice_name, fs in frames.items():
            ms = []
            for f in fs:
                t0 = time.perf_counter()
                predictor.predict(f)
                ms.append((time.perf_counter() - t0) * 1e3)
            rows.append(
                {
                    "predictor": spec,
                    "slice": slice_name,
                    "latency_ms": percentiles(ms),
                    "frames_per_second": round(1e3 / float(np.mean(ms)), 2),
                }
            )
    return rows


def _section(title: str, header: list[str], rows: list[list]) -> list[str]:
    """A report section: its title and a Markdown table."""
    lines = ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def to_markdown(result: dict) -> str:
    lines = [f"# Benchmarks ({result['when']}, {result['machine']})"]
    lines += _section(
        "Lab rendering",
        ["slice", "workers", "scenes", "seconds", "scenes/s"],
        [
            [r["slice"], r["workers"], r["scenes"], r["seconds"], r["scenes_per_second"]]
            for r in result["render"]
        ],
    )
    lines += _section(
        "Pose estimators, per 640x480 frame (single request)",
        ["predictor", "slice", "p50 ms", "p95 ms", "p99 ms", "frames/s"],
        [
            [
                r["predictor"],
                r["slice"],
                *(r["latency_ms"][q] for q in ("p50", "p95", "p99")),
                r["frames_per_second"],
            ]
            for r in result["predictors"]
        ],
    )
    for key, slice_name in (("model_stages", "nominal"), ("model_stages_hard", "hard")):
        stages = result.get(key)
        if stages:
            lines += _section(
                f"Pose model {stages['model']}: time per stage ({slice_name} frames)",
                ["stage", "p50 ms", "p95 ms", "p99 ms", "share of mean"],
                [
                    [name, v["p50"], v["p95"], v["p99"], f"{stages['share_of_mean'].get(name, 1.0):.0%}"]
                    for name, v in stages["stages_ms"].items()
                ],
            )
    if result.get("memory"):
        memory = result["memory"]
        lines += _section(
            "Memory: resident set of one process per predictor (MiB)",
            [
                "predictor",
                "before loading (imports, frames)",
                "loaded + 1 frame",
                "peak, nominal frames",
                "peak, hard frames",
            ],
            [
                [
                    r["predictor"],
                    r["before_mib"],
                    r["loaded_mib"],
                    r["peak_mib"].get("nominal"),
                    r["peak_mib"].get("hard"),
                ]
                for r in memory
            ],
        )
        lines += [
            "",
            f"Peaks over {memory[0]['frames_per_slice']} frames a slice, counted from the "
            f"{memory[0]['peak_since']}.",
        ]
    if result.get("serving"):
        lines += _section(
            "Served vs raw model (nominal frames, inline, same run)",
            ["mode", "frames", "p50 ms", "p95 ms", "p99 ms", "frames/s", "errors"],
            [
                [r["mode"], r["frames"], r["p50"], r["p95"], r["p99"], r["frames_per_s"], r.get("errors", 0)]
                for r in result["serving"]
            ],
        )
    if result.get("served_memory"):
        lines += _section(
            "Memory: served processes after the served rows above (MiB)",
            ["process", "resident", "peak"],
            [[r["process"], r["rss"], r["peak"]] for r in result["served_memory"]],
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/bench.json")
    parser.add_argument("--render-scenes", type=int, default=60)
    # 100 frames a slice: with 30 the p99 was the slowest frame, and moved by 20-40 ms between runs.
    parser.add_argument("--predict-scenes", type=int, default=100)
    parser.add_argument("--predictors", default="mean,scripted,model")
    parser.add_argument("--skip-serving", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        scenes = Path(tmp)
        frames = held_out_frames(args.predict_scenes, scenes)
        result = {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {cores} cores, {platform.python_implementation()} "
            f"{platform.python_version()}",
            "render": bench_render(args.render_scenes, sorted({1, cores})),
            "predictors": bench_predictors(args.predictors.split(","), frames),
            "memory": bench_memory(args.predictors.split(","), scenes),
        }
    # Hard frames hold more objects and get the second and third looks: the split differs.
    stages = bench_model_stages(frames) or {}
    result["model_stages"], result["model_stages_hard"] = stages.get("nominal"), stages.get("hard")
    if not args.skip_serving and result["model_stages"]:
        from benchmarks.serving import bench_raw, bench_served
        from graspstack.ingest.validate import encode_frame

        version = result["model_stages"]["model"]
        raws = [encode_frame(f) for f in frames["nominal"]]
        served, result["served_memory"] = bench_served(version, raws)
        result["serving"] = bench_raw(f"model:{version}", frames["nominal"]) + served
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
