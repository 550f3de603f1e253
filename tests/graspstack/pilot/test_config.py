"""The gates' significance test (one-sided Wilson score bound)."""

from __future__ import annotations

import pytest

from graspstack.pilot.config import PilotConfig, significant_miss


@pytest.mark.parametrize(
    ("share", "count", "limit", "op", "expected"),
    [
        (0.897, 150, 0.9, ">=", False),  # a hair under, on 150 objects: noise
        (0.86, 600, 0.9, ">=", True),  # 4 points under on 600: real
        (0.4, 50, 0.9, ">=", True),  # a broken model shows on few objects
        (0.02, 50, 0.01, "<=", False),  # 1 slow request in 50 says little about a 1% budget
        (0.05, 200, 0.01, "<=", True),  # 10 in 200 does
        (0.5, 0, 0.9, ">=", False),  # no events, no evidence
    ],
)
def test_significant_miss(share, count, limit, op, expected):
    assert significant_miss(share, count, limit, op, 0.95) is expected


def test_more_events_make_the_same_miss_significant():
    verdicts = [significant_miss(0.88, n, 0.9, ">=", 0.95) for n in (50, 200, 800, 3200)]
    assert verdicts == sorted(verdicts) and verdicts[0] is False and verdicts[-1] is True


def test_every_default_gate_carries_its_event_count():
    for stage in PilotConfig.default().stages:
        assert all(g.count_query for g in stage.gates)
