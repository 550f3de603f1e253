"""Every Prometheus metric the services export, in one place.

Labels stay bounded: service, method, code, model version, pilot stage, class. Never a frame,
robot or request id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

# -- pose and shadow -----------------------------------------------------------------------------
POSE_QUEUE_SECONDS = Histogram(
    "graspstack_pose_queue_seconds",
    "Time a frame waited for a batch slot.",
    ["service", "model_version"],
    buckets=LATENCY_BUCKETS_S,
)
POSE_COMPUTE_SECONDS = Histogram(
    "graspstack_pose_compute_seconds",
    "Model time for the batch holding a frame.",
    ["service", "model_version"],
    buckets=LATENCY_BUCKETS_S,
)
POSE_BATCH_SIZE = Histogram(
    "graspstack_pose_batch_size", "Frames per model call.", ["service"], buckets=(1, 2, 4, 8, 16, 32)
)
POSE_OBJECTS = Counter(
    "graspstack_pose_objects_total", "Objects reported, by class.", ["service", "model_version", "class_name"]
)
POSE_MODEL_INFO = Gauge(
    "graspstack_pose_model_info",
    "1 for the model version a pose service serves, 0 after it switched away.",
    ["service", "model_version", "stage"],
)
POSE_LATENCY_SECONDS = Histogram(
    "graspstack_pose_latency_seconds",
    "Server-side time per EstimatePoses (decode, queue and model), by the version that answered.",
    ["service", "model_version", "stage"],
    buckets=LATENCY_BUCKETS_S,
)

# Buckets bracket the requirement (1 cm, 5 deg): disagreement beyond it is a hard-case trigger.
POSITION_BUCKETS_M = (0.001, 0.002, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.05, 0.1, 0.25)
ANGLE_BUCKETS_DEG = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 10.0, 20.0, 45.0, 90.0, 180.0)
SHADOW_POSITION_M = Histogram(
    "graspstack_shadow_disagreement_position_m",
    "Position difference between model and shadow per matched object, metres.",
    ["model_version", "class_name"],
    buckets=POSITION_BUCKETS_M,
)
SHADOW_ANGLE_DEG = Histogram(
    "graspstack_shadow_disagreement_angle_deg",
    "Symmetry-aware angle between model and shadow per matched object, degrees.",
    ["model_version", "class_name"],
    buckets=ANGLE_BUCKETS_DEG,
)
SHADOW_UNMATCHED = Counter(
    "graspstack_shadow_unmatched_total",
    "Model objects the shadow did not report (same class).",
    ["model_version", "class_name"],
)
SHADOW_MIRRORED = Counter(
    "graspstack_shadow_mirrored_total", "Frames mirrored to the shadow, by outcome.", ["outcome"]
)  # compared | dropped | error

# -- the lab robot: accuracy against the cell's ground truth, grasp outcomes, step latency ----------
# Exposed by the robot process (its own /metrics port), since only the cell knows the truth.
POSE_POSITION_ERROR_M = Histogram(
    "graspstack_pose_position_error_m",
    "Position error against ground truth per counted object, metres.",
    ["model_version", "stage", "class_name"],
    buckets=POSITION_BUCKETS_M,
)
POSE_ANGLE_ERROR_DEG = Histogram(
    "graspstack_pose_angle_error_deg",
    "Symmetry-aware angular error against ground truth per counted object, degrees.",
    ["model_version", "stage", "class_name"],
    buckets=ANGLE_BUCKETS_DEG,
)
POSE_EVALUATED = Counter(
    "graspstack_pose_objects_evaluated_total",
    "Counted objects (visible >= 0.3) scored against ground truth.",
    ["model_version", "stage", "class_name"],
)
POSE_WITHIN_SPEC = Counter(
    "graspstack_pose_objects_within_spec_total",
    "Counted objects within 1 cm and 5 deg of ground truth.",
    ["model_version", "stage", "class_name"],
)
GRASP_ATTEMPTS = Counter(
    "graspstack_grasp_attempts_total", "Grasps executed by the robot.", ["model_version", "stage"]
)
GRASP_SUCCESSES = Counter(
    "graspstack_grasp_successes_total", "Grasps that lifted and held the object.", ["model_version", "stage"]
)
ROBOT_STEP_SECONDS = Histogram(
    "graspstack_robot_step_seconds",
    "Robot-side latency per step.",
    ["step", "stage"],
    buckets=LATENCY_BUCKETS_S,
)  # camera | pose | grasp

# -- data flywheel ----------------------------------------------------------------------------------
FLYWHEEL_PRODUCED = Counter(
    "graspstack_flywheel_cases_produced_total", "Hard cases produced, by trigger.", ["trigger", "stage"]
)
FLYWHEEL_PRODUCER_DROPPED = Counter(
    "graspstack_flywheel_producer_dropped_total",
    "Hard cases lost because Redis was down and the local buffer full.",
    ["trigger"],
)
FLYWHEEL_STORED = Counter("graspstack_flywheel_cases_stored_total", "Hard cases durably stored.", ["trigger"])
FLYWHEEL_DEAD_LETTERED = Counter(
    "graspstack_flywheel_cases_dead_lettered_total",
    "Entries moved to the dead-letter stream after too many failures.",
    [],
)
FLYWHEEL_PENDING = Gauge("graspstack_flywheel_pending", "Entries delivered but not yet acknowledged.", [])
FLYWHEEL_LAG = Gauge("graspstack_flywheel_consumer_lag", "Entries in the stream not yet delivered.", [])
FLYWHEEL_STORE_BYTES = Gauge("graspstack_flywheel_store_bytes", "Size of the case store on disk, bytes.", [])
FLYWHEEL_PRODUCER_BUFFERED = Gauge(
    "graspstack_flywheel_producer_buffered",
    "Hard cases held in a producer's local buffer, waiting for Redis.",
    [],
)
FLYWHEEL_CONSUMER_RETRIES = Counter(
    "graspstack_flywheel_consumer_retries_total",
    "Stream entries that failed to store and were left pending for a retry, by error kind.",
    ["error"],
)
FLYWHEEL_LABELS = Counter(
    "graspstack_flywheel_labels_total", "Labeler outcomes on hard cases.", ["outcome"]
)  # labelled | skipped | rejected
