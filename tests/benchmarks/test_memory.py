"""The benchmark's memory readings: the process's resident set and its peak, from /proc."""

from __future__ import annotations

import numpy as np

from benchmarks.memory import reset_peak, status_mib


def test_resident_set_and_peak_are_read_in_mib():
    m = status_mib()
    assert m["rss"] > 10.0 and m["peak"] >= m["rss"]


def test_the_peak_counts_a_large_allocation_and_can_start_again():
    reset_peak()
    before = status_mib()["peak"]
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert status_mib()["peak"] >= before + 60.0
    del block
    if reset_peak():  # where the kernel allows it, the peak starts again from what is resident now
        assert status_mib()["peak"] < before + 30.0
