"""The committed generated code must be exactly what `make proto` produces from protos/."""

from pathlib import Path

from graspstack import protogen


def test_generated_code_is_up_to_date(tmp_path):
    fresh = protogen.generate(tmp_path)
    committed_dir = protogen.ROOT / "graspstack" / "v1"
    assert fresh, "no protos found"
    for f in fresh:
        committed = committed_dir / f.name
        assert committed.exists(), f"{f.name} missing: run `make proto`"
        assert committed.read_text() == f.read_text(), f"{f.name} is stale: run `make proto`"
    generated = {p.name for p in committed_dir.glob("*_pb2*.py*")}
    assert generated == {f.name for f in fresh}, (
        "generated files without a proto: run `make proto` and clean up"
    )


def test_every_proto_is_versioned_under_graspstack_v1():
    for p in protogen.proto_files():
        assert "package graspstack.v1;" in Path(p).read_text()
