"""Every dashboard query against a real Prometheus scraping a real service.

The camera service runs in-process (services.camera + services.server.GrpcServer) on a real Redis
(graspstack/runtime/redis_server.py) with its /metrics on a free port; Debian's Prometheus scrapes
it every second with the project's rules loaded. After traffic (good frames and a corrupt one),
every panel query of both dashboards goes through /api/v1/query and must not error.

Which panels must also return data: the camera alone feeds the standard gRPC metrics, the camera's
frame counters and the process metrics, so every service-detail panel built on those must have
series (CAMERA_FED). The fleet overview is about the pose model, the robots' ground truth and the
flywheel, none of which the camera produces: those queries are checked for errors only (the staged
pilot, which runs the whole system, is where they get data).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from graspstack.frames import Frame, Intrinsics
from graspstack.ingest.validate import encode_frame
from graspstack.runtime import health
from graspstack.runtime.redis_server import RedisServer, free_port
from graspstack.v1 import camera_pb2_grpc
from services import camera
from services.convert import raw_frame_to_proto
from services.server import GrpcServer
from services.settings import CameraSettings

pytestmark = pytest.mark.integration

RULES = str(Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules" / "*.yml")

# service-detail panels the camera's traffic must fill (by title).
CAMERA_FED = {
    "Up",
    "Requests / s",
    "Error ratio",
    "p99 duration",
    "Requests by method",
    "Errors by code",
    "Duration p50 / p95 / p99 by method",
    "Duration distribution",
    "In flight",
    "Camera frames",
    "CPU",
    "Resident memory",
}


def _frame(seed: int):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    depth = np.full((120, 160), 0.6, np.float32)
    return raw_frame_to_proto(encode_frame(Frame(rgb, depth, Intrinsics(150.0, 150.0, 80.0, 60.0, 160, 120))))


@pytest.fixture
def camera_service(tmp_path):
    redis = RedisServer(tmp_path / "redis", port=free_port()).start()
    spec, settings = camera.build(CameraSettings(redis_url=redis.url, redis_timeout_s=0.5))
    settings = settings.model_copy(
        update={"port": free_port(), "metrics_port": free_port(), "host": "127.0.0.1", "grace_s": 1.0}
    )
    server = GrpcServer(spec, settings)
    server.start()
    yield server, settings.metrics_port
    server.stop(0.5)
    redis.stop()


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.25)
    raise TimeoutError(what)


def test_every_panel_query_runs_and_camera_panels_have_data(camera_service, start_prometheus, grafana):
    server, metrics_port = camera_service
    # The health probe the containers use answers SERVING for a ready service.
    assert health.main([f"127.0.0.1:{server.port}"]) == 0

    prom = start_prometheus(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [RULES],
            "scrape_configs": [
                {
                    "job_name": "graspstack",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"service": "camera"}}
                    ],
                }
            ],
        }
    )
    _wait(
        lambda: prom.api("query", query='up{job="graspstack"} == 1')["data"]["result"],
        20,
        "Prometheus never scraped the camera",
    )
    rules = prom.api("rules")["data"]["groups"]
    assert rules and all(g["rules"] for g in rules), "rule files not loaded"

    # Traffic spread over a few scrapes, so rates see the counters move; one corrupt frame makes
    # an INVALID_ARGUMENT for the error panels.
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = camera_pb2_grpc.CameraIngestionStub(channel)
        bad = _frame(99)
        bad.rgb = cv2.imencode(".png", np.zeros((10, 10, 3), np.uint8))[1].tobytes()[:20]
        for i in range(12):
            ref = stub.PutFrame(_frame(i % 6), timeout=5)
            stub.GetFrame(ref, timeout=5)
            if i % 4 == 0:
                with pytest.raises(grpc.RpcError):
                    stub.PutFrame(bad, timeout=5)
            time.sleep(0.3)
    failed_calls = 'grpc_server_handled_total{grpc_code="INVALID_ARGUMENT"}'
    _wait(
        lambda: prom.api("query", query=failed_calls)["data"]["result"],
        10,
        "the failed call never reached Prometheus",
    )
    time.sleep(2.5)  # a couple more scrapes after the last call

    failures, empty, checked = [], [], 0
    for name, dashboard in grafana.load_dashboards().items():
        for panel, target, expr in grafana.panel_queries(dashboard):
            body = prom.api("query", query=expr)
            checked += 1
            where = f"{name} / {panel['title']} / {target['refId']}"
            must_have_data = name == "service-detail.json" and panel["title"] in CAMERA_FED
            if body.get("status") != "success":
                failures.append(f"{where}: {body.get('errorType')}: {body.get('error')}\n    {expr}")
            elif must_have_data and not body["data"]["result"]:
                empty.append(f"{where}: no data\n    {expr}")
    assert not failures, "queries failed:\n" + "\n".join(failures)
    assert not empty, "panels without data after camera traffic:\n" + "\n".join(empty)
    assert checked > 30
