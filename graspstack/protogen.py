"""Generate the Python gRPC code for protos/graspstack/v1 into graspstack/v1 (`make proto`).

The generated modules are committed; tests regenerate them into a temporary folder and fail when
the committed ones differ, so the two never drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "graspstack" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto under out_dir/graspstack/v1."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    return sorted((out_dir / "graspstack" / "v1").glob("*_pb2*.py*"))


def main() -> int:
    written = generate(ROOT)
    init = ROOT / "graspstack" / "v1" / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated gRPC code for protos/graspstack/v1 (`make proto`); do not edit."""\n')
    print("\n".join(str(p.relative_to(ROOT)) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
