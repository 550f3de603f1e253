"""Per-frame latency of a predictor in this tree against another git revision, interleaved.

This machine's speed wanders by 20-50% between runs, so a speed-up measured in two separate
benches can be swallowed or invented by the machine. Here both trees time the same held-out frames
in alternating passes (a fresh process per pass, each warmed up first), so both see the same spells:

    .venv/bin/python -m benchmarks.revisions --base 8d13962 --predictor model:v4 --slice nominal

The other revision is checked out into a temporary git worktree and imported from there; the model
version must exist in both trees (a committed one). Writes JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from benchmarks.stats import percentiles

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter with the tree under test first on sys.path: per frame, the wall time
# and (for the pose model) the per-stage split.
_TIME_FRAMES = r"""
import json, sys, time
import graspstack
from graspstack.predictors import load_predictor
from graspstack.scene_io import Scene, iter_scene_dirs
data, scenes, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
predictor = load_predictor(spec)
frames = [Scene(d).frame() for d in list(iter_scene_dirs(data))[:scenes]]
for f in frames[:3]:
    predictor.predict(f)  # warm-up: lazy loading and first calls are not per-frame cost
rows = []
for f in frames:
    t0 = time.perf_counter()
    predictor.predict(f)
    rows.append({"total_ms": (time.perf_counter() - t0) * 1e3, **getattr(predictor, "last_timings_ms", {})})
print(json.dumps({"package": graspstack.__file__, "rows": rows}))
"""


def time_tree(tree: Path, data: Path, scenes: int, spec: str) -> list[dict]:
    """One pass of the predictor as `tree` has it over the frames of `data`."""
    out = subprocess.run(
        [sys.executable, "-c", _TIME_FRAMES, str(data), str(scenes), spec],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"timing in {tree} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(result["package"]).resolve().is_relative_to(tree.resolve()):
        # e.g. an installed copy shadowing PYTHONPATH: the comparison would time one tree twice
        raise RuntimeError(f"timing in {tree} imported graspstack from {result['package']}")
    return result["rows"]


def summarise(rows: list[dict]) -> dict:
    stages = [k for k in rows[0] if k not in ("total_ms", "total")]
    return {
        "frames": len(rows),
        "total_ms": percentiles([r["total_ms"] for r in rows]),
        "stage_mean_ms": {k: round(sum(r.get(k, 0.0) for r in rows) / len(rows), 2) for k in stages},
    }


def compare(base: str, data: Path, scenes: int, spec: str, passes: int) -> dict:
    rows: dict[str, list[dict]] = {base: [], "this tree": []}
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), base], cwd=REPO, check=True)
        try:
            trees = {base: worktree, "this tree": REPO}
            for _ in tqdm(range(passes), desc="interleaved passes"):
                for name, tree in trees.items():
                    rows[name] += time_tree(tree, data, scenes, spec)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=False)
    summaries = {k: summarise(v) for k, v in rows.items()}
    return {"predictor": spec, "data": str(data), "passes": passes, **summaries}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--predictor", default="model:v4")
    parser.add_argument("--data", type=Path, default=None, help="scene folder (default: held-out seed 9999)")
    parser.add_argument("--slice", default="nominal", choices=("nominal", "hard"))
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from lab.dataset import render_dataset

            data = Path(tmp) / args.slice
            render_dataset(data, args.scenes, seed=9999, slice_name=args.slice, progress=True)
        result = compare(args.base, data.resolve(), args.scenes, args.predictor, args.passes)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
