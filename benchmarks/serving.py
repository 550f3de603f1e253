"""Served vs raw pose model, at 1, 4 and 16 concurrent clients, without and with the shadow mirror.

The services run as separate processes (as in production), the clients as threads here. Every
number comes from the same run on the same machine, so the comparisons hold even on a busy one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from benchmarks.memory import status_mib
from benchmarks.stats import percentiles
from graspstack.runtime.health import check
from graspstack.runtime.processes import stop_popen
from graspstack.runtime.redis_server import RedisServer, free_port


def _serve(service: str, env: dict, log: Path) -> subprocess.Popen:
    exe = str(Path(sys.executable).with_name("graspstack"))
    with open(log, "ab") as f:
        return subprocess.Popen(
            [exe, "serve", service], env={**os.environ, **env}, stdout=f, stderr=subprocess.STDOUT
        )


def _wait_serving(target: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check(target) == "SERVING":
            return
        time.sleep(0.3)
    raise TimeoutError(f"{target} not SERVING")


def bench_raw(spec: str, frames: list, batch_sizes=(1, 4)) -> list[dict]:
    from graspstack.predictors import load_predictor

    predictor = load_predictor(spec)
    predictor.predict(frames[0])
    rows = []
    for bs in batch_sizes:
        ms, t0 = [], time.perf_counter()
        for i in range(0, len(frames) - bs + 1, bs):
            chunk = frames[i : i + bs]
            s = time.perf_counter()
            if bs > 1 and hasattr(predictor, "predict_batch"):
                predictor.predict_batch(chunk)
            else:
                for f in chunk:
                    predictor.predict(f)
            ms.append((time.perf_counter() - s) * 1e3)
        elapsed = time.perf_counter() - t0
        n = (len(frames) // bs) * bs
        rows.append(
            {
                "mode": f"raw model, batch {bs}",
                "frames": n,
                **percentiles(ms),
                "frames_per_s": round(n / elapsed, 2),
            }
        )
    return rows


def _load(target: str, requests: list, clients: int, per_client: int) -> dict:
    from graspstack.v1 import pose_pb2_grpc

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker(k: int) -> None:
        with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
            stub = pose_pb2_grpc.PoseEstimationStub(ch)
            for i in range(per_client):
                req = requests[(k * per_client + i) % len(requests)]
                s = time.perf_counter()
                try:
                    stub.EstimatePoses(req, timeout=10)
                    with lock:
                        latencies.append((time.perf_counter() - s) * 1e3)
                except grpc.RpcError:
                    with lock:
                        errors[0] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        **percentiles(latencies),
        "frames_per_s": round(len(latencies) / elapsed, 2),
        "errors": errors[0],
        "frames": len(latencies),
    }


def bench_served(
    spec: str, raws: list, clients=(1, 4, 16), per_client_total: int = 100
) -> tuple[list[dict], list[dict]]:
    """Latency rows per (shadow mirror, clients), and each service process's resident set and peak
    (memory.status_mib) once its load is done."""
    from graspstack.v1 import pose_pb2
    from services.convert import raw_frame_to_proto

    requests = [pose_pb2.EstimatePosesRequest(frame=raw_frame_to_proto(r)) for r in raws]
    rows, memory = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        redis = RedisServer(tmp / "redis", port=free_port()).start()
        procs = []
        try:
            shadow_port, pose_port = free_port(), free_port()
            common = {"GRASPSTACK_SHADOW_REDIS_URL": redis.url, "GRASPSTACK_POSE_REDIS_URL": redis.url}
            procs.append(
                _serve(
                    "shadow",
                    {
                        **common,
                        "GRASPSTACK_SHADOW_PORT": str(shadow_port),
                        "GRASPSTACK_SHADOW_METRICS_PORT": "0",
                    },
                    tmp / "shadow.log",
                )
            )
            _wait_serving(f"127.0.0.1:{shadow_port}")
            for mirror in (False, True):
                env = {
                    **common,
                    "GRASPSTACK_POSE_PORT": str(pose_port),
                    "GRASPSTACK_POSE_METRICS_PORT": "0",
                    "GRASPSTACK_POSE_MODEL": spec,
                    "GRASPSTACK_POSE_SHADOW_TARGET": f"127.0.0.1:{shadow_port}" if mirror else "",
                }
                pose = _serve("pose", env, tmp / "pose.log")
                try:
                    target = f"127.0.0.1:{pose_port}"
                    _wait_serving(target)
                    _load(target, requests[:4], 1, 4)  # warm-up
                    for c in clients:
                        per_client = max(2, per_client_total // c)
                        row = _load(target, requests, c, per_client)
                        rows.append(
                            {
                                "mode": f"served, {c} client(s), shadow mirror {'on' if mirror else 'off'}",
                                **row,
                            }
                        )
                    memory.append(
                        {
                            "process": f"pose service, shadow mirror {'on' if mirror else 'off'}",
                            **status_mib(pose.pid),
                        }
                    )
                finally:
                    stop_popen(pose, 30)
            memory.append({"process": "shadow service (scripted baseline)", **status_mib(procs[0].pid)})
        finally:
            for p in procs:
                stop_popen(p, 30)
            redis.stop()
    return rows, memory
