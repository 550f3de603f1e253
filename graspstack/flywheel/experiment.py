"""`graspstack flywheel experiment`: several turns of the whole loop, unattended, in the lab.

Each turn runs the real path end to end: the local system serves the current model; the lab robot
picks objects in hard scenes it has never seen (a fresh seed per turn) and reports hard cases (ground
truth error, failed grasps; the pose service adds low-confidence and shadow-disagreement cases);
the flywheel service stores them; the simulated labeler labels them; `run_turn` fine-tunes the current
model on every case labelled so far plus replay, and scores child against parent on held-out scenes.
The child serves the next turn. The curve of within-spec per turn is written as JSON and a plot.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROBOT_SEED_BASE = 7000  # collection seeds: apart from training (0), validation (9100) and test (9001)


def _wait_drained(target: str, timeout_s: float = 120.0, settle_s: float = 5.0) -> dict:
    """Until the consumer holds nothing pending and the store has stopped growing.

    The stream's lag is only an upper bound after Redis reloads its log (docs/flywheel.md), and the
    pose service's own triggers (the shadow's answers) trickle in after the robot stops, so "done" is
    nothing pending and no new stored case for `settle_s`.
    """
    from graspstack.flywheel.cli import _stats_from_service

    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while True:
        stats = _stats_from_service(target)
        if stats["stored"] != last:
            last, since = stats["stored"], time.monotonic()
        settled = time.monotonic() - since >= settle_s
        if (stats["pending"] == 0 and (stats["lag"] == 0 or settled)) or time.monotonic() > deadline:
            return stats
        time.sleep(1.0)


def collect(model: str, scenes: int, seed: int, log: Callable[[str], None]) -> dict:
    """Serve `model` on the local system and let the lab robot work through hard scenes."""
    from graspstack.flywheel.producer import CaseProducer
    from graspstack.runtime import local
    from lab.robot import LabRobot, Targets

    local.up(model=model)
    try:
        producer = CaseProducer.from_url("redis://127.0.0.1:6379/0")
        robot = LabRobot(Targets(), stage="lab", hard_cases=producer)
        try:
            report = robot.run(scenes, seed, "hard")
        finally:
            robot.close()
            producer.close()
        stats = _wait_drained("127.0.0.1:50055")
    finally:
        local.down()
    report.pop("scenes_detail", None)
    log(
        f"robot with {model}: {scenes} hard scenes, grasp success {report['grasp_success_rate']:.3f}, "
        f"within spec {report['pose_within_spec_rate']:.3f}; store holds {stats['stored']} cases"
    )
    return {"robot": report, "flywheel": stats}


def label_all(store_root: Path, seed: int) -> int:
    from graspstack.flywheel.labeling import Labeling
    from graspstack.flywheel.sim_labeler import SimLabeler
    from graspstack.flywheel.store import CaseStore

    store = CaseStore(store_root)
    try:
        return SimLabeler(seed=seed).run(Labeling(store))
    finally:
        store.close()


def run_experiment(
    parent: str,
    turns: int = 3,
    scenes_per_turn: int = 120,
    eval_dirs: tuple[str, ...] = ("data/test/hard", "data/test/nominal"),
    out: str | Path | None = None,
    detector_minutes: float = 6.0,
    crop_minutes: float = 6.0,
    log: Callable[[str], None] = print,
    children: str | None = None,
    replay_share: float | None = None,
) -> dict:
    from graspstack.flywheel.turn import REPLAY_SHARE, run_turn

    out = Path(out or Path("runs/flywheel") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S"))
    store_root = out / "store"
    store_root.mkdir(parents=True, exist_ok=True)
    # The flywheel service started by `graspstack up` writes into this experiment's own store.
    os.environ["GRASPSTACK_FLYWHEEL_STORE_PATH"] = str(store_root.resolve())
    curve: list[dict] = []
    current = parent
    for k in range(1, turns + 1):
        log(f"turn {k}/{turns}: collecting with {current}")
        collected = collect(current, scenes_per_turn, ROBOT_SEED_BASE + k, log)
        labelled = label_all(store_root, seed=k)
        log(f"turn {k}: {labelled} cases labelled by the simulated labeler")
        child = f"{children or parent + '-fw'}{k}"
        card = run_turn(
            store_root,
            current,
            child,
            detector_minutes=detector_minutes,
            crop_minutes=crop_minutes,
            eval_dirs=list(eval_dirs),
            replay_share=REPLAY_SHARE if replay_share is None else replay_share,
        )
        ev = card["flywheel"]["eval"]
        if not curve:
            curve.append(
                {"turn": 0, "version": current, **{s: v[current]["within_spec_rate"] for s, v in ev.items()}}
            )
        curve.append(
            {
                "turn": k,
                "version": child,
                **{s: v[child]["within_spec_rate"] for s, v in ev.items()},
                "labelled_frames": card["flywheel"]["labelled_frames"],
                "robot_grasp_success": collected["robot"]["grasp_success_rate"],
            }
        )
        log(f"turn {k}: {json.dumps(curve[-1])}")
        current = child
        (out / "curve.json").write_text(json.dumps({"parent": parent, "curve": curve}, indent=1) + "\n")
    plot_curve(curve, out / "curve.png", parent)
    return {"parent": parent, "curve": curve, "out": str(out)}


def plot_curve(curve: list[dict], path: Path, parent: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    turns = [c["turn"] for c in curve]
    for slice_name, style in (("hard", "o-"), ("nominal", "s--")):
        if all(slice_name in c for c in curve):
            ax.plot(turns, [100 * c[slice_name] for c in curve], style, label=f"held-out {slice_name}")
    ax.set_xlabel("flywheel turn (0 = parent)")
    ax.set_ylabel("objects within spec (%)")
    ax.set_xticks(turns)
    ax.set_title(f"Flywheel from {parent}: 1 cm / 5 deg within spec per turn")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
