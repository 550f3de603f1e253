"""Render the Grafana fleet overview's key panels to a PNG, from the same queries, for the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

from matplotlib.figure import Figure

from graspstack.pilot.prometheus import Prometheus, PrometheusError

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "fleet-overview.json"
MAX_PANELS = 6


def _substitute(expr: str, window_s: int) -> str:
    """Grafana variables to values a plain query accepts: every version and stage, a fixed window."""
    expr = re.sub(r"\$__rate_interval|\$__interval|\$__range", f"{window_s}s", expr)
    expr = re.sub(r'=~?"\$\{?\w+(:\w+)?\}?"', '=~".*"', expr)
    return expr


def timeseries_panels(dashboard: dict) -> list[dict]:
    panels = []
    for p in dashboard.get("panels", []):
        panels += timeseries_panels(p) if p.get("type") == "row" and "panels" in p else []
        if p.get("type") == "timeseries" and p.get("targets"):
            panels.append(p)
    return panels


def render_overview(
    prom: Prometheus, start: float, end: float, path: Path, dashboard_path: Path = DASHBOARD
) -> Path | None:
    if not dashboard_path.exists():
        return None
    panels = timeseries_panels(json.loads(dashboard_path.read_text()))[:MAX_PANELS]
    if not panels:
        return None
    step = max(5.0, (end - start) / 120)
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(11, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for target in panel["targets"]:
            expr = _substitute(target.get("expr", ""), window_s=30)
            try:
                series = prom.query_range(expr, start, end, step)
            except PrometheusError:
                continue
            for s in series[:6]:
                ts = [float(t) - start for t, _ in s["values"]]
                vs = [float(v) for _, v in s["values"]]
                label = target.get("legendFormat") or ""
                for key, val in s["metric"].items():
                    label = label.replace("{{" + key + "}}", val)
                ax.plot(ts, vs, label=label or expr[:40])
        for th in (panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", []))[
            1:
        ]:
            if th.get("value") is not None:
                ax.axhline(th["value"], color="red", linestyle="--", linewidth=1)
        ax.set_title(panel.get("title", ""), fontsize=10)
        ax.set_xlabel("seconds since pilot start")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path
