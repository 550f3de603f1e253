"""Every Prometheus metric the services export, in one place.

Labels stay bounded: service, method, code, model version, pilot stage, class. Never a frame,
robot or request id.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Latency buckets bracket the 100 ms requirement closely.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)

GRPC_STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.", ["grpc_service", "grpc_method", "grpc_type"]
)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC, seconds.",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=LATENCY_BUCKETS_S,
)

FRAMES_STORED = Counter(
    "graspstack_frames_stored_total", "Frames accepted by the camera service.", ["outcome"]
)  # stored | duplicate
FRAMES_REJECTED = Counter("graspstack_frames_rejected_total", "Frames rejected as invalid.", [])
