"""Resident memory of the pose estimators, as the operating system counts it (Linux /proc).

Each predictor is loaded in a fresh process, so what it costs is not mixed with the benchmark's own
imports or with predictors loaded before it, then run over held-out frames of each slice: its
resident set once loaded (and warmed up on one frame) and its peak while predicting are reported.
The served pose service's resident set is read the same way from its process (serving.py).

Run alone: python -m benchmarks.memory --predictor model --data DIR (DIR/nominal, DIR/hard).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def status_mib(pid: int | str = "self") -> dict[str, float]:
    """The process's resident set now (rss) and its peak so far (peak), MiB."""
    fields = {"VmRSS": "rss", "VmHWM": "peak"}
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            out[fields[key]] = round(int(value.split()[0]) / 1024, 1)  # kB
    return out


def reset_peak() -> bool:
    """Start this process's peak count again from its resident set now (Linux's clear_refs); False
    where the kernel does not allow it, and the peak then counts from the process's start."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(spec: str, data: Path, frames_per_slice: int) -> dict:
    """In this process: resident set before loading (the imports every predictor shares and the
    decoded frames), after loading `spec` and predicting one frame, and the peak while predicting each
    slice of `data`."""
    from graspstack.predictors import load_predictor
    from graspstack.scene_io import Scene, iter_scene_dirs

    slices = {
        name: [Scene(d).frame() for d in list(iter_scene_dirs(data / name))[:frames_per_slice]]
        for name in ("nominal", "hard")
        if (data / name).is_dir()
    }
    before = status_mib()["rss"]
    predictor = load_predictor(spec)
    predictor.predict(next(iter(slices.values()))[0])  # lazy loading belongs to "loaded"
    loaded = status_mib()["rss"]
    result = {"predictor": spec, "before_mib": before, "loaded_mib": loaded, "peak_mib": {}}
    exact = True
    for name, frames in slices.items():
        exact &= reset_peak()
        for frame in frames:
            predictor.predict(frame)
        result["peak_mib"][name] = status_mib()["peak"]
    result["peak_since"] = "slice start" if exact else "process start"
    result["frames_per_slice"] = frames_per_slice
    return result


def bench_memory(specs: list[str], data: Path, frames_per_slice: int = 30) -> list[dict]:
    """measure() of each predictor spec, each in a fresh process."""
    rows = []
    for spec in specs:
        cmd = [sys.executable, "-m", "benchmarks.memory", "--predictor", spec, "--data", str(data)]
        cmd += ["--frames", str(frames_per_slice)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--predictor", required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder with nominal/ and hard/ scenes")
    parser.add_argument("--frames", type=int, default=30, help="frames a slice")
    args = parser.parse_args()
    print(json.dumps(measure(args.predictor, args.data, args.frames)))


if __name__ == "__main__":
    main()
