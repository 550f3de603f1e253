"""The flywheel service against a real Redis: consumes produced cases, serves labelers."""

from __future__ import annotations

import json
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from graspstack.flywheel.chaos import make_case
from graspstack.flywheel.cli import main as cli_main
from graspstack.flywheel.producer import CaseProducer
from graspstack.flywheel.triggers import TriggerConfig
from graspstack.frames import ObjectPose
from graspstack.v1 import flywheel_pb2, flywheel_pb2_grpc
from services import flywheel
from services.convert import pose_to_proto
from services.settings import FlywheelSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def service(redis_server, serve, tmp_path):
    settings = FlywheelSettings(
        redis_url=redis_server.url, store_path=str(tmp_path / "store"), redis_timeout_s=0.5, lease_s=30
    )
    spec, settings = flywheel.build(settings)
    _server, channel = serve(spec, settings)
    return flywheel_pb2_grpc.FlywheelLabelingStub(channel), channel, spec, settings


def _wait_stored(stub, n: int, timeout_s: float = 10.0) -> flywheel_pb2.FlywheelStats:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = stub.Stats(flywheel_pb2.StatsRequest())
        if stats.stored >= n:
            return stats
        time.sleep(0.05)
    raise AssertionError(f"only {stats.stored} of {n} cases stored")


def test_cases_flow_from_producer_to_labelers(service, redis_server, capsys):
    stub, channel, _spec, settings = service
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    producer = CaseProducer.from_url(redis_server.url)
    cases = [make_case("robot-7", n, payload_bytes=256) for n in range(6)]
    for c in cases:
        producer.submit(c)
    producer.submit(cases[0])  # the same case again: stored once
    assert producer.close()
    stats = _wait_stored(stub, 6)
    assert (stats.produced, stats.stored, stats.unlabelled, stats.dead_lettered) == (7, 6, 6, 0)
    assert stats.redis_up and stats.stored_by_trigger["low_confidence"] == 6

    a = stub.PullCases(flywheel_pb2.PullCasesRequest(labeler="alice", max_cases=4, include_frames=True))
    b = stub.PullCases(flywheel_pb2.PullCasesRequest(labeler="bob", max_cases=4))
    ids_a, ids_b = {c.case_id for c in a.cases}, {c.case_id for c in b.cases}
    assert len(ids_a) == 4 and len(ids_b) == 2 and not ids_a & ids_b
    assert a.cases[0].frame.rgb and not b.cases[0].frame.rgb
    assert a.cases[0].trigger == "low_confidence" and a.cases[0].poses[0].class_name == "duck"

    label = ObjectPose("duck", np.array([0.0, 0.0, 0.6]), np.array([0.0, 0.0, 0.0, 1.0]))
    first = a.cases[0].case_id
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitLabels(
            flywheel_pb2.SubmitLabelsRequest(labeler="bob", case_id=first, objects=[pose_to_proto(label)])
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    reply = stub.SubmitLabels(
        flywheel_pb2.SubmitLabelsRequest(labeler="alice", case_id=first, objects=[pose_to_proto(label)])
    )
    assert reply.labelled == 1
    stub.SkipCase(flywheel_pb2.SkipCaseRequest(labeler="bob", case_id=b.cases[0].case_id, reason="blurry"))
    with pytest.raises(grpc.RpcError) as err:
        stub.SkipCase(flywheel_pb2.SkipCaseRequest(labeler="bob", case_id="case:unknown"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.PullCases(flywheel_pb2.PullCasesRequest(labeler=""))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    stats = stub.Stats(flywheel_pb2.StatsRequest())
    assert (stats.labelled, stats.unlabelled, stats.leased, stats.pending) == (1, 5, 4, 0)

    # The operator's view, straight from the store and Redis.
    assert (
        cli_main(
            ["flywheel", "stats", "--json", "--store", settings.store_path, "--redis-url", redis_server.url]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert (out["produced"], out["stored"], out["pending"], out["dead_lettered"]) == (7, 6, 0, 0)


def test_not_ready_without_redis_but_labelers_still_served(service, redis_server):
    stub, _, spec, _ = service
    assert spec.ready()
    redis_server.kill()
    assert not spec.ready()
    stats = stub.Stats(flywheel_pb2.StatsRequest())  # the store answers without Redis
    assert not stats.redis_up and stats.stored == 0


def test_producer_report_submits_one_case_per_fired_trigger(service, redis_server):
    stub, *_ = service
    producer = CaseProducer.from_url(redis_server.url)
    case = make_case("robot-1", 0)
    fired = producer.report(
        TriggerConfig(version="t-test"),
        frame_id=case.frame_id,
        model_version="pose-v1",
        intrinsics=case.intrinsics,
        poses=case.poses,  # confidence 0.2: low
        rgb=case.rgb,
        depth=case.depth,
        grasp_failed=True,
        robot_id="robot-1",
        stage="lab",
    )
    assert fired == ["low_confidence", "grasp_failure"]
    assert producer.close()
    _wait_stored(stub, 2)
    pulled = stub.PullCases(flywheel_pb2.PullCasesRequest(labeler="l", max_cases=8)).cases
    assert sorted(c.trigger for c in pulled) == ["grasp_failure", "low_confidence"]
    assert {c.trigger_config_version for c in pulled} == {"t-test"}


def test_cli_pull_to_label_studio_and_label_back(service, redis_server, tmp_path, capsys):
    stub, channel, _spec, settings = service
    target = channel._channel.target().decode()
    producer = CaseProducer.from_url(redis_server.url)
    for n in range(3):
        producer.submit(make_case("robot-2", n, payload_bytes=256))
    assert producer.close()
    _wait_stored(stub, 3)

    assert (
        cli_main(
            ["cases", "pull", "--target", target, "--labeler", "carol", "--n", "2", "--out", str(tmp_path)]
        )
        == 0
    )
    pulled = json.loads(capsys.readouterr().out)
    assert len(pulled["cases"]) == 2
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    for task in tasks:  # carol accepts the model's keypoints as they are
        task["annotations"] = [{"result": task["predictions"][0]["result"]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    assert (
        cli_main(
            [
                "cases",
                "label",
                "--target",
                target,
                "--labeler",
                "carol",
                "--labelstudio",
                str(tmp_path / "export.json"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"labelled": 2}

    assert cli_main(["cases", "stats", "--target", target, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["stored"], stats["labelled"], stats["produced"]) == (3, 2, 3)
    assert (
        cli_main(
            [
                "cases",
                "export",
                "--store",
                settings.store_path,
                "--out",
                str(tmp_path / "x"),
                "--status",
                "labelled",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["cases"] == 2
