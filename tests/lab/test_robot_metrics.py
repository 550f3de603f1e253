"""The robot's accuracy and grasp series: a model that gets nothing right reads 0, not "no data"."""

from __future__ import annotations

from prometheus_client import REGISTRY

from lab.robot import LabRobot, SceneReport


def _value(name: str, labels: dict) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_nothing_within_spec_and_no_grasp_held_are_zeros(nominal_scenes):
    robot = LabRobot.__new__(LabRobot)  # only the scoring and counting, no cell or channels
    robot.stage = "lab"
    rendered = nominal_scenes[0]
    report = SceneReport(0, len(rendered.scene.objects), False, model_version="finds-nothing")
    robot._score(rendered, [], "finds-nothing", report)
    robot._count(report)
    cls = rendered.scene.objects[0].class_name
    labels = {"model_version": "finds-nothing", "stage": "lab", "class_name": cls}
    assert _value("graspstack_pose_objects_evaluated_total", labels) >= 1
    assert _value("graspstack_pose_objects_within_spec_total", labels) == 0.0
    grasp = {"model_version": "finds-nothing", "stage": "lab"}
    assert _value("graspstack_grasp_attempts_total", grasp) == 1.0
    assert _value("graspstack_grasp_successes_total", grasp) == 0.0
