"""The benchmark's memory readings: the process's resident set and its peak, from /proc."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def memory(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is a folder of the repository, not installed
    return importlib.import_module("benchmarks.memory")


def test_resident_set_and_peak_are_read_in_mib(memory):
    m = memory.status_mib()
    assert m["rss"] > 10.0 and m["peak"] >= m["rss"]


def test_the_peak_counts_a_large_allocation_and_can_start_again(memory):
    memory.reset_peak()
    before = memory.status_mib()["peak"]
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert memory.status_mib()["peak"] >= before + 60.0
    del block
    if memory.reset_peak():  # where the kernel allows it, the peak starts again from what is resident now
        assert memory.status_mib()["peak"] < before + 30.0
