"""How many concurrent robots does the local system serve at pose p99 under 100 ms? Where does time go?

Steps the number of locust robots (1, 2, 4, 8, 16 ...), each for a short run, and stops at the first
step that misses (p99 at or over the limit, or any failure). Per step it records the client-side
p50/p95/p99 per method and, from the pose service's /metrics (differenced over the step), the
server's handling time split into queue time (waiting for a batch slot) and compute time (the model),
plus the shadow's compute, which shares the CPU on one machine.

    .venv/bin/python -m loadtests.capacity [--steps 1,2,4,8,16] [--step-s 20] [--out runs/load/capacity.json]

The local system must be up (`graspstack up`); `make capacity` checks that first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from loadtests.check import P99_LIMIT_MS, POSE_METHOD, count_exceptions, read_stats
from loadtests.histograms import histogram, scrape

ROOT = Path(__file__).resolve().parents[1]
LOAD_DIR = ROOT / "runs" / "load"
POSE_METRICS = "http://127.0.0.1:9052/metrics"
SHADOW_METRICS = "http://127.0.0.1:9054/metrics"
METHODS = ("CameraIngestion/StreamFrames", POSE_METHOD, "GraspPlanning/PlanGrasps")


def _server_side() -> dict[str, dict]:
    """Cumulative histograms now; a step's share is after minus before."""
    pose, shadow = scrape(POSE_METRICS), scrape(SHADOW_METRICS)
    return {
        "pose_handling": histogram(pose, "grpc_server_handling_seconds", grpc_method="EstimatePoses"),
        "pose_queue": histogram(pose, "graspstack_pose_queue_seconds", service="pose"),
        "pose_compute": histogram(pose, "graspstack_pose_compute_seconds", service="pose"),
        "shadow_compute": histogram(shadow, "graspstack_pose_compute_seconds", service="shadow"),
    }


def run_step(users: int, step_s: int, prefix: Path) -> dict:
    before = _server_side()
    load_before = os.getloadavg()[0]
    # --reset-stats drops the ramp-up from locust's numbers; all users spawn within the first second.
    cmd = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless", "-u", str(users)]
    cmd += ["-r", str(users), "-t", f"{step_s}s", "--reset-stats", "--only-summary", "--csv", str(prefix)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    after = _server_side()
    stats_csv = Path(f"{prefix}_stats.csv")
    if not stats_csv.exists():
        raise RuntimeError(f"locust wrote no stats for {users} users:\n{proc.stderr[-2000:]}")
    stats = read_stats(stats_csv)
    methods = {
        name: {
            "requests": s.requests,
            "failures": s.failures,
            "rps": round(s.rps, 2),
            **{f"p{p.rstrip('%')}_ms": v for p, v in s.percentiles_ms.items()},
        }
        for name, s in stats.items()
        if name in METHODS
    }
    failures = sum(m["failures"] for m in methods.values()) + count_exceptions(f"{prefix}_exceptions.csv")
    pose_p99 = methods.get(POSE_METHOD, {}).get("p99_ms")
    return {
        "users": users,
        "seconds": step_s,
        "locust_exit_code": proc.returncode,
        "loadavg_1m_before": round(load_before, 2),
        "methods": methods,
        "failures": failures,
        "pose_p99_ms": pose_p99,
        "pose_server_ms": {k: (after[k] - before[k]).summary_ms() for k in after},
    }


def passes(step: dict, limit_ms: float) -> bool:
    p99 = step["pose_p99_ms"]
    return p99 is not None and p99 < limit_ms and step["failures"] == 0 and step["locust_exit_code"] == 0


def format_table(steps: list[dict], limit_ms: float) -> str:
    head = ["users", "req/s"] + [f"{m.split('/')[1][:8]} p50/p95/p99" for m in METHODS]
    head += ["fail", "pose srv", "queue", "compute", "shadow", "ok"]
    rows = [head]
    for s in steps:
        m, srv = s["methods"], s["pose_server_ms"]
        pct = [
            "/".join(
                "-" if m.get(k, {}).get(p) is None else f"{m[k][p]:.0f}"
                for p in ("p50_ms", "p95_ms", "p99_ms")
            )
            for k in METHODS
        ]
        mean = [f"{srv[k].get('mean', 0):.1f}" for k in ("pose_handling", "pose_queue", "pose_compute")]
        mean.append(f"{srv['shadow_compute'].get('mean', 0):.1f}")
        rps = sum(v["rps"] for v in m.values()) / max(len(m), 1)  # robot cycles per second
        rows.append(
            [
                str(s["users"]),
                f"{rps:.1f}",
                *pct,
                str(s["failures"]),
                *mean,
                "yes" if passes(s, limit_ms) else "NO",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(
        "latencies in ms; req/s = robot cycles per second; pose srv/queue/compute/shadow = server-side means"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1,2,4,8,16", help="robot counts to try, in order")
    parser.add_argument("--step-s", type=int, default=20, help="seconds per step")
    parser.add_argument("--p99-ms", type=float, default=P99_LIMIT_MS)
    parser.add_argument("--out", type=Path, default=LOAD_DIR / "capacity.json")
    parser.add_argument("--keep-going", action="store_true", help="run every step, even after a miss")
    parser.add_argument("--note", default="", help="context for the record, e.g. what else shared the CPU")
    args = parser.parse_args(argv)
    try:
        _server_side()
    except OSError as err:
        print(f"capacity: pose/shadow /metrics not reachable ({err}); is the system up? `graspstack status`")
        return 2
    steps, best = [], 0
    for users in (int(v) for v in args.steps.split(",")):
        step = run_step(users, args.step_s, args.out.parent / "capacity" / f"u{users}")
        steps.append(step)
        ok = passes(step, args.p99_ms)
        verdict = "ok" if ok else "miss"
        print(f"{users:>3} robots: pose p99 {step['pose_p99_ms']} ms, {step['failures']} failures: {verdict}")
        if ok and all(passes(s, args.p99_ms) for s in steps):  # the highest step with none missed below it
            best = users
        if not ok and not args.keep_going:
            break
    record = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "p99_limit_ms": args.p99_ms,
        "max_robots_at_p99_under_limit": best,
        "cpu_count": os.cpu_count(),
        "note": args.note,
        "steps": steps,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(format_table(steps, args.p99_ms))
    print(f"highest number of concurrent robots at pose p99 < {args.p99_ms:.0f} ms: {best}  ({args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
