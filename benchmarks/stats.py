"""Percentiles as every benchmark reports them."""

from __future__ import annotations

import numpy as np


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=float)
    if a.size == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0}
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "mean": round(float(a.mean()), 2),
        "n": int(a.size),
    }
