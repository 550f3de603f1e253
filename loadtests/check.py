"""Pass or fail a locust run: the pose p99 against the 100 ms requirement, and no failed request.

    python -m loadtests.check runs/load/load          # reads runs/load/load_stats.csv

Exit 0 when it passes, 1 when it does not (the reasons are printed), 2 when there is nothing to judge.
Errors raised in a user's own code (not a gRPC failure) land in `<prefix>_exceptions.csv`, which
locust does not count as failures; they fail the run too.

Locust rewrites the CSV once a second, so it can miss the run's last second: `make load` also fails on
locust's own exit code, which counts every failure to the end.
Locust stores response times above 100 ms rounded to 10 ms, so the stats CSV cannot tell 100 from
104 ms: "over 100 ms" here means a p99 of 110 ms or more as locust reports it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

POSE_METHOD = "PoseEstimation/EstimatePoses"
P99_LIMIT_MS = 100.0
PERCENTILES = ("50%", "95%", "99%")


@dataclass
class MethodStats:
    name: str
    requests: int
    failures: int
    rps: float
    percentiles_ms: dict[str, float | None]  # "50%", "95%", "99%"; None when locust has no value

    @property
    def p99_ms(self) -> float | None:
        return self.percentiles_ms["99%"]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # locust writes "N/A" for a method with no requests


def read_stats(path: str | Path) -> dict[str, MethodStats]:
    """Rows of a locust `_stats.csv` by name; the totals row is 'Aggregated'."""
    with open(path, newline="") as f:
        return {
            row["Name"]: MethodStats(
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                rps=float(row["Requests/s"]),
                percentiles_ms={p: _number(row[p]) for p in PERCENTILES},
            )
            for row in csv.DictReader(f)
        }


def count_exceptions(path: str | Path) -> int:
    p = Path(path)
    if not p.exists():
        return 0
    with open(p, newline="") as f:
        return sum(int(row["Count"]) for row in csv.DictReader(f))


def problems(
    stats: dict[str, MethodStats],
    exceptions: int = 0,
    method: str = POSE_METHOD,
    limit_ms: float = P99_LIMIT_MS,
) -> list[str]:
    found = []
    pose = stats.get(method)
    if pose is None or pose.requests == 0 or pose.p99_ms is None:
        found.append(f"no {method} requests were measured")
    elif pose.p99_ms > limit_ms:
        found.append(f"{method} p99 {pose.p99_ms:.0f} ms is over {limit_ms:.0f} ms")
    failed = {name: s.failures for name, s in stats.items() if name != "Aggregated" and s.failures}
    for name, n in sorted(failed.items()):
        found.append(f"{name}: {n} of {stats[name].requests} requests failed")
    if exceptions:
        found.append(f"{exceptions} errors in the users' own code (see the _exceptions.csv)")
    return found


def format_table(stats: dict[str, MethodStats]) -> str:
    head = ("method", "requests", "failed", "req/s", "p50 ms", "p95 ms", "p99 ms")
    lines = ["{:<30} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}".format(*head)]
    for s in stats.values():
        p = [("-" if v is None else f"{v:.0f}") for v in s.percentiles_ms.values()]
        row = (s.name, s.requests, s.failures, f"{s.rps:.1f}", *p)
        lines.append("{:<30} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}".format(*row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="the --csv prefix given to locust, e.g. runs/load/load")
    parser.add_argument("--method", default=POSE_METHOD)
    parser.add_argument("--p99-ms", type=float, default=P99_LIMIT_MS)
    args = parser.parse_args(argv)
    stats_csv = Path(f"{args.prefix}_stats.csv")
    if not stats_csv.exists():
        print(f"check: {stats_csv} not found (did locust run?)", file=sys.stderr)
        return 2
    stats = read_stats(stats_csv)
    print(format_table(stats))
    found = problems(stats, count_exceptions(f"{args.prefix}_exceptions.csv"), args.method, args.p99_ms)
    for p in found:
        print(f"FAIL: {p}")
    if not found:
        p99 = stats[args.method].p99_ms
        print(f"PASS: {args.method} p99 {p99:.0f} ms <= {args.p99_ms:.0f} ms, no failures")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
