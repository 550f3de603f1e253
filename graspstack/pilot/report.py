"""The pilot report: Markdown with PNG plots, one folder per run under runs/pilot/."""

from __future__ import annotations

import json
import time
from pathlib import Path

from matplotlib.figure import Figure

from graspstack.pilot.overview import render_overview
from graspstack.pilot.prometheus import Prometheus

ROOT = Path(__file__).resolve().parents[2]


def _fmt(v) -> str:
    return "no data" if v is None else f"{v:.4g}"


def _result(gate: dict) -> str:
    """A check's verdict for the table; reports written before verdicts existed have `passed` only."""
    verdict = gate.get("verdict") or {True: "pass", False: "fail", None: "no data"}[gate["passed"]]
    if verdict == "fail":
        return "FAIL"
    if verdict == "inconclusive" and gate.get("count"):
        return f"miss within the noise ({gate['count']:.0f} events)"
    return verdict


def plot_gates(outcome: dict, path: Path) -> Path:
    """Every gate's value at every check, stage after stage, against its threshold."""
    gates = (
        [g["gate"] for g in outcome["stages"][0]["checks"][0]]
        if outcome["stages"] and outcome["stages"][0]["checks"]
        else []
    )
    fig = Figure(figsize=(4.2 * max(1, len(gates)), 3.4))
    axes = fig.subplots(1, max(1, len(gates)), squeeze=False)
    for gi, name in enumerate(gates):
        ax = axes[0][gi]
        x, labels = 0, []
        for stage in outcome["stages"]:
            xs, ys = [], []
            for check in stage["checks"]:
                r = check[gi]
                x += 1
                labels.append(stage["stage"][:4])
                if r["value"] is not None:
                    xs.append(x)
                    ys.append(r["value"])
            ax.plot(xs, ys, "o-", label=f"{stage['stage']} ({stage['decision']})")
        threshold = outcome["stages"][0]["checks"][0][gi]["threshold"]
        ax.axhline(threshold, color="red", linestyle="--", linewidth=1, label="threshold")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("check")
        ax.legend(fontsize=7)
    fig.suptitle(f"pilot of {outcome['candidate']}: {outcome['final_decision']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def write_report(outcome: dict, prom: Prometheus, out_dir: str | Path | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(outcome["started"]))
    out = Path(out_dir) if out_dir else ROOT / "runs" / "pilot" / f"{stamp}-{outcome['candidate']}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pilot.json").write_text(json.dumps(outcome, indent=1))
    lines = [
        f"# Pilot of `{outcome['candidate']}` (current `{outcome['current']}`)",
        "",
        f"**Outcome: {outcome['final_decision']}**; active version now `{outcome['active_version']}`.",
        "",
        "| stage | decision | scenes | grasp success | pose within spec | pose p50 / p95 / p99 ms (robot) |",
        "|---|---|---|---|---|---|",
    ]
    for s in outcome["stages"]:
        r = s["robot"]
        lat = r.get("latency_ms", {}).get("pose", {})
        lines.append(
            f"| {s['stage']} | {s['decision']} | {r.get('scenes', 0)} | {_fmt(r.get('grasp_success_rate'))} "
            f"| {_fmt(r.get('pose_within_spec_rate'))} | {lat.get('p50', '-')} / {lat.get('p95', '-')} / "
            f"{lat.get('p99', '-')} |"
        )
    if outcome["stages"] and outcome["stages"][0]["checks"]:
        lines += ["", f"![gate values per check]({plot_gates(outcome, out / 'gates.png').name})"]
    overview = render_overview(prom, outcome["started"], outcome["ended"], out / "overview.png")
    if overview:
        lines += [
            "",
            "## Fleet overview (the Grafana overview's queries, rendered)",
            "",
            f"![overview]({overview.name})",
        ]
    lines += ["", "## Gate checks", ""]
    for s in outcome["stages"]:
        lines += [
            f"### {s['stage']}: {s['decision']}",
            "",
        ]
        extra = len(s["checks"]) - s.get("planned_checks", len(s["checks"]))
        if s.get("settle_s") or extra > 0:
            lines += [
                f"Analysis window opened after {s.get('settle_s', 0):g} s of traffic; "
                f"{len(s['checks'])} checks"
                + (f" ({extra} beyond the {s['planned_checks']} planned, for evidence)" if extra > 0 else "")
                + ".",
                "",
            ]
        lines += ["| check | gate | value | threshold | result |", "|---|---|---|---|---|"]
        for k, check in enumerate(s["checks"], 1):
            for g in check:
                lines.append(
                    f"| {k} | {g['gate']} | {_fmt(g['value'])} | {g['op']} {g['threshold']} | {_result(g)} |"
                )
        unsettled = [g["gate"] for g in (s["checks"] or [[]])[-1] if g.get("verdict") == "inconclusive"]
        if s["decision"] == "hold" and unsettled:
            lines += [
                "",
                f"Held: the last check's misses ({', '.join(unsettled)}) are within sampling noise, so "
                "the evidence neither promotes nor rolls back, even after the extra checks; an operator "
                "decides.",
            ]
        if s["checks"]:
            lines += ["", "Queries (a miss is weighed by its evidence queries):", ""]
            for g in s["checks"][-1]:
                lines.append(f"- {g['gate']}: `{g['query']}`")
                lines += [f"  - evidence: `{q}`" for q in g.get("evidence_queries", ())]
        failures = s["robot"].get("failures") or {}
        if failures:
            lines += ["", "Robot failures: " + ", ".join(f"{k} ({v})" for k, v in failures.items())]
        lines.append("")
    alerts = outcome.get("alerts", [])
    if outcome.get("final_decision") == "rollback" and "rollback_alert" in outcome:
        page = outcome["rollback_alert"]
        lines += [
            "## Monitoring after the rollback",
            "",
            f"- {page['name']} fired for `{outcome['candidate']}` {page['seconds_after_rollback']:g} s after "
            "the rollback: the burn-rate alerts caught the model on their own evidence."
            if page
            else f"- no alert fired for `{outcome['candidate']}` in the wait after the rollback.",
            "",
        ]
    lines += ["## Alerts at the end of the pilot", ""]
    for a in alerts:
        labels = ", ".join(f"{k}={v}" for k, v in a["labels"].items() if k != "alertname")
        lines.append(f"- {a['name']}: {a['state']} ({labels})")
    if not alerts:
        lines.append("- none")
    if "hard_cases" in outcome:
        lines += [
            "",
            "## Hard cases collected",
            "",
            "```",
            json.dumps(outcome["hard_cases"], indent=1),
            "```",
        ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"
