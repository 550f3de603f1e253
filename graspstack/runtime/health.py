"""Ask a service for its gRPC health, the way an orchestrator would."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, timeout_s: float = 1.0) -> str:
    """SERVING, NOT_SERVING, UNKNOWN, or DOWN when nothing answers."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
        except grpc.RpcError:
            return "DOWN"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(argv: list[str] | None = None) -> int:
    """`python -m graspstack.runtime.health [SERVICE | HOST:PORT]`: exit 0 only when SERVING.

    The container healthcheck: a service name resolves to 127.0.0.1 and the port that service was
    given (GRASPSTACK_<SERVICE>_PORT, else its default), so one command fits every image role.
    """
    import argparse
    import os

    from services.settings import DEFAULT_PORTS

    parser = argparse.ArgumentParser(prog="python -m graspstack.runtime.health", description=main.__doc__)
    parser.add_argument("target", nargs="?", default="pose", help="service name or host:port (default: pose)")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    target = args.target
    if ":" not in target:
        if target not in DEFAULT_PORTS:
            parser.error(f"unknown service {target!r}; one of {sorted(DEFAULT_PORTS)} or HOST:PORT")
        port = os.environ.get(f"GRASPSTACK_{target.upper()}_PORT", DEFAULT_PORTS[target])
        target = f"127.0.0.1:{port}"
    state = check(target, timeout_s=args.timeout)
    print(f"{target} {state}")
    return 0 if state == "SERVING" else 1


if __name__ == "__main__":
    raise SystemExit(main())
