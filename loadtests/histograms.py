"""Prometheus histograms scraped from a service's /metrics, differenced between two scrapes.

The capacity sweep wants what happened during one step only, so it scrapes before and after and
takes the difference of the cumulative buckets, then estimates quantiles the way PromQL's
histogram_quantile does (linear within a bucket).
"""

from __future__ import annotations

import math
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Histogram:
    buckets: dict[float, float]  # upper edge -> cumulative count, +Inf included
    total: float  # sum of observations
    count: float

    def __sub__(self, before: Histogram) -> Histogram:
        return Histogram(
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.total - before.total,
            self.count - before.count,
        )

    def quantile(self, q: float) -> float | None:
        if self.count <= 0:
            return None
        rank, lower, below = q * self.count, 0.0, 0.0
        for le, cumulative in sorted(self.buckets.items()):
            if cumulative >= rank:
                if math.isinf(le):
                    return lower  # beyond the last finite edge: its edge is all we know
                inside = cumulative - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = le, cumulative
        return lower

    def summary_ms(self) -> dict:
        if self.count <= 0:
            return {"count": 0}
        out = {"count": int(self.count), "mean": round(self.total / self.count * 1e3, 2)}
        out.update({f"p{round(q * 100)}": round(self.quantile(q) * 1e3, 2) for q in (0.5, 0.95, 0.99)})
        return out


def scrape(url: str, timeout_s: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.read().decode()


def histogram(text: str, name: str, **labels: str) -> Histogram:
    """The histogram `name`, summed over every label set that matches `labels`."""
    h = Histogram({}, 0.0, 0.0)
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for s in family.samples:
            if any(s.labels.get(k) != v for k, v in labels.items()):
                continue
            if s.name == f"{name}_bucket":
                le = float(s.labels["le"])
                h.buckets[le] = h.buckets.get(le, 0.0) + s.value
            elif s.name == f"{name}_sum":
                h.total += s.value
            elif s.name == f"{name}_count":
                h.count += s.value
    return h
