"""The load test's own parts: the locustfile loads, the pass/fail check, and a short real run.

Locust monkey-patches the process with gevent when imported, so anything that imports locust runs
in a subprocess here; the check and histogram modules are plain Python and are imported directly.
"""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCUST = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py"]
STATS_HEADER = [
    "Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
    "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
    "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
]  # fmt: skip


@pytest.fixture
def loadtests(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # loadtests/ is a folder of the repository, not installed
    return importlib.import_module("loadtests.check"), importlib.import_module("loadtests.histograms")


def write_stats(prefix: Path, rows: list[tuple[str, int, int, str]], exceptions: int = 0) -> Path:
    """A locust-shaped `_stats.csv`: rows of (name, requests, failures, p99 ms)."""
    with open(f"{prefix}_stats.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STATS_HEADER)
        for name, n, failed, p99 in rows:
            pct = (
                ["N/A"] * 11
                if p99 == "N/A"
                else ["10", "12", "14", "15", "20", "40", "60", p99, p99, p99, p99]
            )
            w.writerow(["grpc", name, n, failed, pct[0], 12, 5, 200, 300, 5.0, 0.0, *pct])
        total = sum(r[1] for r in rows)
        w.writerow(
            ["", "Aggregated", total, sum(r[2] for r in rows), 10, 12, 5, 200, 300, 15, 0, *["20"] * 11]
        )
    if exceptions:
        with open(f"{prefix}_exceptions.csv", "w", newline="") as f:
            csv.writer(f).writerows(
                [["Count", "Message", "Traceback", "Nodes"], [exceptions, "boom", "", "local"]]
            )
    return prefix


POSE = "PoseEstimation/EstimatePoses"
OTHERS = [("CameraIngestion/StreamFrames", 100, 0, "150"), ("GraspPlanning/PlanGrasps", 100, 0, "300")]


def test_locustfile_loads_and_offers_the_robot_user():
    out = subprocess.run([*LOCUST, "--list"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Robot" in out.stdout


def test_check_passes_a_fast_clean_run(tmp_path, loadtests):
    check, _ = loadtests
    prefix = write_stats(tmp_path / "run", [*OTHERS, (POSE, 100, 0, "90")])
    # Only the pose p99 is held to 100 ms; camera and grasp are slower here and still pass.
    assert check.problems(check.read_stats(f"{prefix}_stats.csv")) == []
    assert check.main([str(prefix)]) == 0


@pytest.mark.parametrize("p99, verdict", [("100", 0), ("110", 1), ("450", 1)])
def test_check_flags_a_pose_p99_over_100_ms(tmp_path, loadtests, p99, verdict):
    check, _ = loadtests
    prefix = write_stats(tmp_path / "run", [*OTHERS, (POSE, 100, 0, p99)])
    assert check.main([str(prefix)]) == verdict


def test_check_flags_any_failed_request(tmp_path, loadtests):
    check, _ = loadtests
    rows = [("CameraIngestion/StreamFrames", 100, 1, "20"), (POSE, 99, 0, "40")]
    prefix = write_stats(tmp_path / "run", rows)
    found = check.problems(check.read_stats(f"{prefix}_stats.csv"))
    assert found == ["CameraIngestion/StreamFrames: 1 of 100 requests failed"]
    assert check.main([str(prefix)]) == 1


def test_check_flags_errors_in_user_code_and_a_run_without_pose_requests(tmp_path, loadtests):
    check, _ = loadtests
    assert check.main([str(write_stats(tmp_path / "a", [(POSE, 50, 0, "40")], exceptions=2))]) == 1
    assert check.main([str(write_stats(tmp_path / "b", [(POSE, 0, 0, "N/A")]))]) == 1
    assert check.main([str(write_stats(tmp_path / "c", OTHERS))]) == 1
    assert check.main([str(tmp_path / "never-ran")]) == 2


def test_histogram_difference_and_quantiles(loadtests):
    _, hist = loadtests
    text = "\n".join(
        [
            "# TYPE q histogram",
            'q_bucket{le="0.01",service="pose"} 10',
            'q_bucket{le="0.1",service="pose"} 30',
            'q_bucket{le="+Inf",service="pose"} 30',
            'q_sum{service="pose"} 1.0',
            'q_count{service="pose"} 30',
            'q_bucket{le="0.01",service="shadow"} 99',
            'q_bucket{le="0.1",service="shadow"} 99',
            'q_bucket{le="+Inf",service="shadow"} 99',
            'q_sum{service="shadow"} 0.5',
            'q_count{service="shadow"} 99',
            "",
        ]
    )
    before = hist.histogram(text.replace(" 30", " 10").replace("} 1.0", "} 0.05"), "q", service="pose")
    step = hist.histogram(text, "q", service="pose") - before
    assert step.count == 20 and step.total == pytest.approx(0.95)
    # All 20 new observations lie in (10 ms, 100 ms]: the median interpolates to the middle.
    assert step.quantile(0.5) == pytest.approx(0.055)
    assert step.summary_ms()["mean"] == pytest.approx(47.5)


@pytest.fixture
def lab_frames(tmp_path, nominal_scenes):
    from graspstack.scene_io import write_scene

    for i, rs in enumerate(nominal_scenes[:3]):
        write_scene(tmp_path / "frames" / f"{i:06d}", rs.rgb, rs.depth_m, rs.scene)
    return tmp_path / "frames"


@pytest.mark.integration
def test_ten_second_headless_run_has_no_failures(tmp_path, redis_server, serve, lab_frames, loadtests):
    from services import camera, grasp, pose
    from services.settings import CameraSettings, GraspSettings, PoseSettings

    url = redis_server.url
    cam, _ = serve(*camera.build(CameraSettings(redis_url=url)))
    pos, _ = serve(*pose.build(PoseSettings(redis_url=url, model="mean", shadow_target="")))
    gra, _ = serve(*grasp.build(GraspSettings(redis_url=url)))
    env = {
        **os.environ,
        "GRASPSTACK_LOAD_FRAMES": str(lab_frames),
        "GRASPSTACK_LOAD_CAMERA": f"127.0.0.1:{cam.port}",
        "GRASPSTACK_LOAD_POSE": f"127.0.0.1:{pos.port}",
        "GRASPSTACK_LOAD_GRASP": f"127.0.0.1:{gra.port}",
    }
    prefix = tmp_path / "run"
    cmd = [*LOCUST, "--headless", "-u", "2", "-r", "2", "-t", "10s", "--only-summary", "--csv", str(prefix)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    # Locust exits non-zero on any failed request or error in the user code, to the run's last call.
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    check, _ = loadtests
    stats = check.read_stats(f"{prefix}_stats.csv")
    for method in ("CameraIngestion/StreamFrames", POSE, "GraspPlanning/PlanGrasps"):
        assert stats[method].requests > 0 and stats[method].failures == 0, stats[method]
    # Latency is not asserted: this shared test machine says nothing about the 100 ms requirement.
