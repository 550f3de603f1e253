"""A minimal Prometheus HTTP API client (instant and range queries, alerts) over urllib."""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    def __init__(self, url: str = "http://127.0.0.1:9090", timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict) -> dict:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=self.timeout_s) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as err:
            body = json.loads(err.read() or b"{}")
            raise PrometheusError(body.get("error", str(err))) from err
        except OSError as err:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: {err}") from err
        if body.get("status") != "success":
            raise PrometheusError(body.get("error", "query failed"))
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self._get("/api/v1/query", {"query": expr})["result"]

    def scalar(self, expr: str) -> float | None:
        """The single value of an instant query; None when there is no data (or NaN: 0/0)."""
        result = self.query(expr)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[dict]:
        return self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step_s})[
            "result"
        ]

    def alerts(self) -> list[dict]:
        return self._get("/api/v1/alerts", {})["alerts"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=self.timeout_s) as r:
                return r.status == 200
        except OSError:
            return False
