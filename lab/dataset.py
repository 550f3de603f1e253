"""Render many lab scenes in parallel, deterministically: scene i of seed s is the same everywhere."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from graspstack.scene_io import write_scene

_worker_cell = None


@dataclass(frozen=True)
class RenderJob:
    out: str
    slice: str
    seed: int
    index: int


def scene_dir(out: str | Path, index: int) -> Path:
    return Path(out) / f"{index:06d}"


def _init_worker() -> None:
    global _worker_cell
    from lab.cell import LabCell

    _worker_cell = LabCell()


def _render_one(job: RenderJob) -> int:
    from lab.scenes import render_scene

    target = scene_dir(job.out, job.index)
    if (target / "scene.json").exists():  # resumable: a finished scene is never redone
        return job.index
    r = render_scene(_worker_cell, job.slice, job.seed, job.index)
    tmp = target.with_name(target.name + ".partial")
    write_scene(tmp, r.rgb, r.depth_m, r.scene, r.annotations, r.masks)
    os.replace(tmp, target)  # a scene folder appears whole or not at all
    return job.index


def render_dataset(
    out: str | Path,
    scenes: int,
    seed: int,
    slice_name: str,
    workers: int | None = None,
    start: int = 0,
    progress: bool = True,
) -> dict:
    """Render scenes start..start+scenes-1 of (slice, seed) into out/NNNNNN/. Returns timing stats."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    jobs = [RenderJob(str(out), slice_name, seed, i) for i in range(start, start + scenes)]
    t0 = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=f"render {slice_name} seed={seed}", unit="scene", disable=not progress)
    if workers == 1:
        _init_worker()
        for job in jobs:
            _render_one(job)
            bar.update()
    else:
        ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no PyBullet state is forked
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for _ in pool.imap_unordered(_render_one, jobs, chunksize=4):
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - t0
    info = {
        "slice": slice_name,
        "seed": seed,
        "start": start,
        "scenes": scenes,
        "workers": workers,
        "seconds": round(elapsed, 2),
        "scenes_per_second": round(scenes / elapsed, 2) if elapsed else None,
    }
    (out / "dataset.json").write_text(json.dumps(info, indent=1))
    return info
