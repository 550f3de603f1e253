import threading
import time

import numpy as np
from prometheus_client import REGISTRY

from graspstack.frames import ObjectPose
from graspstack.geometry import matrix_to_quat, rot_z
from graspstack.serving.shadow import MirrorItem, ShadowMirror, disagreements


def _pose(cls, x, yaw=0.0):
    return ObjectPose(cls, np.array([x, 0.0, 0.6]), matrix_to_quat(rot_z(yaw)), 0.9)


def test_disagreement_is_position_and_symmetry_aware_angle():
    model = [_pose("duck", 0.0), _pose("lego", 0.1, yaw=90.0)]
    shadow = [_pose("duck", 0.004, yaw=3.0), _pose("lego", 0.1)]
    d = {x.class_name: x for x in disagreements(model, shadow)}
    assert abs(d["duck"].position_m - 0.004) < 1e-9 and abs(d["duck"].angle_deg - 3.0) < 1e-6
    assert d["lego"].angle_deg < 1e-6  # lego is symmetric under Rz(90)
    assert disagreements([_pose("mug", 0.0)], [])[0].position_m is None


def _count(outcome):
    return REGISTRY.get_sample_value("graspstack_shadow_mirrored_total", {"outcome": outcome}) or 0.0


def test_mirror_never_blocks_and_counts_drops_and_errors():
    gate = threading.Event()
    results = []

    def slow_shadow(frame):
        gate.wait(5)
        if frame == "boom":
            raise ConnectionError("shadow down")
        return [_pose("duck", 0.0)]

    mirror = ShadowMirror(slow_shadow, max_queue=1, on_result=lambda item, shadow, d: results.append(d))
    dropped, errors, compared = _count("dropped"), _count("error"), _count("compared")
    t0 = time.perf_counter()
    offered = [mirror.offer(MirrorItem(f, [_pose("duck", 0.001)], "v1")) for f in ("a", "boom", "c", "d")]
    assert time.perf_counter() - t0 < 0.5  # offer returns at once even with the shadow stuck
    assert offered[0] and not all(offered)
    gate.set()
    deadline = time.time() + 5
    while mirror.pending() and time.time() < deadline:
        time.sleep(0.01)
    mirror.close()
    assert _count("dropped") - dropped == offered.count(False)
    assert (_count("compared") - compared) + (_count("error") - errors) == offered.count(True)
    assert all(abs(d[0].position_m - 0.001) < 1e-9 for d in results)
