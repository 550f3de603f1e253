"""Service settings from environment variables, typed and validated at start-up.

Each service reads `GRASPSTACK_<SERVICE>_<FIELD>` (for example `GRASPSTACK_POSE_PORT=6000`), with
the defaults of CONTRACTS section 5. A bad value stops the service before it binds a port.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# A 1920x1080 frame is at most ~6.2 MB of PNG colour plus ~4.1 MB of PNG depth (incompressible
# noise); 16 MiB admits it with room for metadata and rejects anything clearly larger.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

DEFAULT_PORTS = {"camera": 50051, "pose": 50052, "grasp": 50053, "shadow": 50054, "flywheel": 50055}
# Prometheus scrape ports: gRPC port - 41000 (camera 9051 ... flywheel 9055).
METRICS_PORT_OFFSET = -41000


class ServerSettings(BaseSettings):
    """What every service has: where it listens and how it treats connections."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    host: str = "0.0.0.0"
    port: int = Field(ge=1, le=65535)
    metrics_port: int = Field(ge=0, le=65535, description="0 disables the /metrics endpoint")
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, ge=1024 * 1024)
    max_workers: int = Field(default=16, ge=1, le=256)
    grace_s: float = Field(default=10.0, ge=0, description="time in-flight calls get on SIGTERM")
    keepalive_time_s: float = Field(default=30.0, gt=0)
    keepalive_timeout_s: float = Field(default=10.0, gt=0)
    nice: int = Field(default=0, ge=0, le=19, description="lower this process's CPU priority by this much")


class RedisSettingsMixin(BaseSettings):
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = Field(default=2.0, gt=0)


def _defaults(service: str) -> dict:
    port = DEFAULT_PORTS[service]
    return {"port": port, "metrics_port": port + METRICS_PORT_OFFSET}


class CameraSettings(ServerSettings, RedisSettingsMixin):
    model_config = SettingsConfigDict(env_prefix="GRASPSTACK_CAMERA_", extra="ignore")
    port: int = Field(default=_defaults("camera")["port"], ge=1, le=65535)
    metrics_port: int = Field(default=_defaults("camera")["metrics_port"], ge=0, le=65535)
    frame_ttl_s: int = Field(default=300, ge=1, description="how long stored frames live")
    max_stream_frames: int = Field(default=1000, ge=1, description="frames per StreamFrames call")


class PoseSettings(ServerSettings, RedisSettingsMixin):
    model_config = SettingsConfigDict(env_prefix="GRASPSTACK_POSE_", extra="ignore")
    port: int = Field(default=_defaults("pose")["port"], ge=1, le=65535)
    metrics_port: int = Field(default=_defaults("pose")["metrics_port"], ge=0, le=65535)
    model: str = Field(default="", description="registry version to serve; empty = the active one")
    stage: str = Field(default="lab", description="pilot stage label on metrics: lab | pilot | production")
    max_batch_size: int = Field(default=4, ge=1, le=64)
    # No waiting for company: batching does not raise this model's throughput (per-object refinement
    # dominates; make bench: batch 4 = batch 1 frames/s), so a wait would only add latency. Requests
    # that queue while the model runs still share the next batch.
    max_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    max_queue: int = Field(default=64, ge=1, description="frames waiting beyond this get RESOURCE_EXHAUSTED")
    warmup_rounds: int = Field(
        default=3, ge=0, le=20, description="lab frames run through a model before it serves (0 = off)"
    )
    # One thread: on a host shared with the shadow and other services, a two-thread convolution waits
    # for whichever thread was preempted. make capacity, 1 robot on 2 cores: pose p99 84-86 ms and
    # compute mean 47-50 ms with 1 thread, 110-130 ms and 58-64 ms with 2. Raise it on a host
    # whose cores the pose service has to itself.
    torch_threads: int = Field(default=1, ge=1, le=64, description="torch intra-op threads for the model")
    # The objects' depth refinements are independent of each other (pose_model/object_map.py): a
    # second thread waits on no barrier, unlike a two-thread convolution. On 2 cores to itself it cut
    # the hard frames' p99 by 15% (make bench-revisions); shared with the shadow and the other
    # services (make capacity, 1 and 2 robots, two runs each) it changed nothing: compute mean 48 /
    # 55 ms a frame with 2 workers, 48 / 58 ms with 1.
    object_workers: int = Field(default=2, ge=1, le=64, description="threads refining a frame's objects")
    shadow_target: str = Field(default="127.0.0.1:50054", description="host:port of the shadow; empty = off")
    shadow_queue: int = Field(default=32, ge=1, description="mirrored frames waiting; more are dropped")
    shadow_timeout_s: float = Field(default=10.0, gt=0)
    hard_cases: bool = Field(default=True, description="send hard cases to the flywheel's stream")
    hard_case_stream: str = Field(default="graspstack:flywheel:cases", description="= the flywheel's stream")


class ShadowSettings(ServerSettings, RedisSettingsMixin):
    model_config = SettingsConfigDict(env_prefix="GRASPSTACK_SHADOW_", extra="ignore")
    port: int = Field(default=_defaults("shadow")["port"], ge=1, le=65535)
    metrics_port: int = Field(default=_defaults("shadow")["metrics_port"], ge=0, le=65535)
    predictor: str = Field(default="scripted", description="the baseline behind the shadow interface")
    # The shadow is best-effort by design: on a shared host it only gets the cycles the robot's
    # path leaves idle, so mirroring never slows the pose answers (see make bench).
    nice: int = Field(default=10, ge=0, le=19)
    max_batch_size: int = Field(default=1, ge=1, le=64)
    max_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    max_queue: int = Field(default=16, ge=1)
    warmup_rounds: int = Field(default=1, ge=0, le=20)


class GraspSettings(ServerSettings, RedisSettingsMixin):
    model_config = SettingsConfigDict(env_prefix="GRASPSTACK_GRASP_", extra="ignore")
    port: int = Field(default=_defaults("grasp")["port"], ge=1, le=65535)
    metrics_port: int = Field(default=_defaults("grasp")["metrics_port"], ge=0, le=65535)
    max_grasps: int = Field(default=10, ge=1, le=200, description="grasps answered when the request says 0")


class FlywheelSettings(ServerSettings, RedisSettingsMixin):
    model_config = SettingsConfigDict(env_prefix="GRASPSTACK_FLYWHEEL_", extra="ignore")
    port: int = Field(default=_defaults("flywheel")["port"], ge=1, le=65535)
    metrics_port: int = Field(default=_defaults("flywheel")["metrics_port"], ge=0, le=65535)
    store_path: str = Field(default="runs/local/flywheel", description="blobs and SQLite index of cases")
    stream: str = Field(default="graspstack:flywheel:cases", description="the hard-case stream")
    dead_letter_stream: str = Field(default="graspstack:flywheel:dead")
    group: str = Field(default="flywheel", description="consumer group on the case stream")
    # Stable across restarts, so a restarted service re-reads its own pending entries first.
    consumer_name: str = Field(default="flywheel-1", min_length=1)
    lease_s: float = Field(default=600.0, gt=0, description="how long a pulled case is reserved")
    max_deliveries: int = Field(default=5, ge=1, description="failed deliveries before dead-lettering")
    claim_idle_ms: int = Field(default=60_000, ge=100, description="idle ms before taking over an entry")
    consumer_batch: int = Field(default=16, ge=1, le=1000)
    retry_base_s: float = Field(default=0.5, gt=0, description="first retry delay of a failed entry; doubles")
