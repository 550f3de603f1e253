"""`graspstack cases pull|label|stats|export` and `graspstack flywheel stats` (wired by graspstack.cli).

Labelers talk to the flywheel service (--target); `export` and `flywheel stats` can also read the
store and Redis directly, for the operator on the flywheel's machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_TARGET = "127.0.0.1:50055"


def _stub(target: str):
    import grpc

    from graspstack.v1 import flywheel_pb2_grpc

    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    return flywheel_pb2_grpc.FlywheelLabelingStub(channel)


def _pull(target: str, labeler: str, n: int, include_frames: bool = True):
    from graspstack.v1 import flywheel_pb2
    from services.flywheel import case_from_proto

    reply = _stub(target).PullCases(
        flywheel_pb2.PullCasesRequest(labeler=labeler, max_cases=n, include_frames=include_frames), timeout=60
    )
    return [case_from_proto(c) for c in reply.cases], reply.lease_expires_at.ToJsonString()


def _submit(target: str, labeler: str, case_id: str, poses, source: str) -> None:
    from graspstack.v1 import flywheel_pb2
    from services.convert import pose_to_proto

    request = flywheel_pb2.SubmitLabelsRequest(
        labeler=labeler, case_id=case_id, objects=[pose_to_proto(p) for p in poses], source=source
    )
    _stub(target).SubmitLabels(request, timeout=30)


def _cmd_pull(args: argparse.Namespace) -> int:
    from graspstack.flywheel.labelstudio import export_tasks

    cases, expires = _pull(args.target, args.labeler, args.n)
    out = {"labeler": args.labeler, "lease_expires_at": expires, "cases": [c.case_id for c in cases]}
    if args.out and cases:
        out["tasks"] = str(export_tasks(cases, args.out))
    print(json.dumps(out))
    return 0


def _cmd_label(args: argparse.Namespace) -> int:
    """Submit labels: a Label Studio export of pulled tasks, or the lab's simulated labeler."""
    if args.labelstudio:
        from graspstack.flywheel.labelstudio import import_annotations

        cases, _ = _pull(args.target, args.labeler, 64)  # our own leases come back, with depth
        by_id = {c.case_id: c for c in cases}

        def lookup(case_id: str):
            if case_id not in by_id:
                raise SystemExit(f"{case_id} is not leased to {args.labeler} (lease expired?): pull again")
            return by_id[case_id]

        labelled = import_annotations(json.loads(Path(args.labelstudio).read_text()), lookup)
        for case_id, poses in labelled.items():
            _submit(args.target, args.labeler, case_id, poses, "labelstudio")
        print(json.dumps({"labelled": len(labelled)}))
        return 0
    from graspstack.flywheel.sim_labeler import SimLabeler

    sim = SimLabeler(name=args.labeler, noise_px=args.noise_px, seed=args.seed)
    done = 0
    while args.max is None or done < args.max:
        cases, _ = _pull(args.target, args.labeler, 8)
        cases = [c for c in cases if c.ground_truth is not None]
        if not cases:
            break
        for case in cases:
            _submit(args.target, args.labeler, case.case_id, sim.label(case), "sim")
            done += 1
    print(json.dumps({"labelled": done}))
    return 0


def _stats_from_service(target: str) -> dict:
    """The service's Stats, with the same keys and types as the local view."""
    from graspstack.v1 import flywheel_pb2

    r = _stub(target).Stats(flywheel_pb2.StatsRequest(), timeout=10)
    keys = (
        "produced",
        "stored",
        "pending",
        "lag",
        "dead_lettered",
        "unlabelled",
        "leased",
        "labelled",
        "skipped",
    )
    out: dict = {k: int(getattr(r, k)) for k in keys}
    out.update(by_trigger=dict(r.stored_by_trigger), store_bytes=r.store_bytes, redis_up=r.redis_up)
    return out


def _stats_local(store_path: str | None, redis_url: str | None) -> dict:
    from graspstack.flywheel.labeling import Labeling
    from graspstack.flywheel.store import CaseStore
    from graspstack.flywheel.streams import redis_client
    from services.flywheel import full_stats
    from services.settings import FlywheelSettings

    overrides = {k: v for k, v in {"store_path": store_path, "redis_url": redis_url}.items() if v}
    settings = FlywheelSettings(**overrides)
    store = CaseStore(settings.store_path)
    try:
        return full_stats(Labeling(store), redis_client(settings.redis_url, 1.0), settings)
    finally:
        store.close()


def _cmd_stats(args: argparse.Namespace) -> int:
    stats = _stats_from_service(args.target) if args.target else _stats_local(args.store, args.redis_url)
    if getattr(args, "json", False):
        print(json.dumps(stats))
    else:
        for key, value in stats.items():
            print(f"{key:<18} {value}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from graspstack.flywheel.labelstudio import export_tasks
    from graspstack.flywheel.store import CaseStore

    store = CaseStore(args.store)
    try:
        ids = store.case_ids(None if args.status == "all" else args.status)[: args.limit or None]
        path = export_tasks((store.get(i) for i in ids), args.out)
    finally:
        store.close()
    print(json.dumps({"tasks": str(path), "cases": len(ids)}))
    return 0


def _cmd_turn(args: argparse.Namespace) -> int:
    from graspstack.flywheel.turn import run_turn
    from graspstack.pose_model.registry import active_version
    from services.settings import FlywheelSettings

    card = run_turn(
        args.store or FlywheelSettings().store_path,
        args.parent or active_version(),
        args.child,
        detector_minutes=args.detector_minutes,
        crop_minutes=args.crop_minutes,
        eval_dirs=args.eval,
        replay_share=args.replay_share,
    )
    fw = card["flywheel"]
    print(json.dumps({"version": card["version"], "parent": card["parent"], "gain_pts": fw.get("gain_pts")}))
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from graspstack.flywheel.experiment import run_experiment

    result = run_experiment(
        args.parent,
        turns=args.turns,
        scenes_per_turn=args.scenes,
        out=args.out,
        detector_minutes=args.detector_minutes,
        crop_minutes=args.crop_minutes,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        children=args.children,
        replay_share=args.replay_share,
    )
    print(json.dumps(result))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `cases` and `flywheel` to the graspstack command."""
    cases = subparsers.add_parser("cases", help="hard cases for labelers").add_subparsers(
        dest="cases_command", required=True
    )
    pull = cases.add_parser("pull", help="lease a batch of unlabelled cases (Label Studio tasks with --out)")
    pull.add_argument("--target", default=DEFAULT_TARGET)
    pull.add_argument("--labeler", required=True)
    pull.add_argument("--n", type=int, default=8)
    pull.add_argument("--out", help="write the cases as Label Studio tasks (images/, tasks.json) here")
    pull.set_defaults(func=_cmd_pull)

    label = cases.add_parser(
        "label", help="submit labels: a Label Studio export, or --sim (lab ground truth)"
    )
    label.add_argument("--target", default=DEFAULT_TARGET)
    label.add_argument("--labeler", required=True)
    src = label.add_mutually_exclusive_group(required=True)
    src.add_argument("--labelstudio", help="Label Studio JSON export of tasks pulled by this labeler")
    src.add_argument("--sim", action="store_true", help="label from the lab's ground truth with click noise")
    label.add_argument("--noise-px", type=float, default=1.5)
    label.add_argument("--seed", type=int, default=0)
    label.add_argument("--max", type=int, default=None, help="label at most this many cases (--sim)")
    label.set_defaults(func=_cmd_label)

    stats = cases.add_parser("stats", help="labelling progress and queue counts")
    _stats_args(stats)

    export = cases.add_parser("export", help="export stored cases as Label Studio tasks (from the store)")
    export.add_argument("--store", default="runs/local/flywheel")
    export.add_argument("--out", required=True)
    export.add_argument(
        "--status", choices=["unlabelled", "labelled", "skipped", "all"], default="unlabelled"
    )
    export.add_argument("--limit", type=int, default=0)
    export.set_defaults(func=_cmd_export)

    fw = subparsers.add_parser("flywheel", help="the data flywheel").add_subparsers(
        dest="flywheel_command", required=True
    )
    _stats_args(fw.add_parser("stats", help="produced, stored, pending and dead-lettered counts"))

    turn = fw.add_parser("turn", help="fine-tune a model on the labelled cases (plus replay) into a child")
    turn.add_argument("--parent", default=None, help="model version to fine-tune (default: active)")
    turn.add_argument("--child", default=None, help="name of the new version (default: PARENT-fwTIME)")
    turn.add_argument("--store", default=None, help="store folder (default: GRASPSTACK_FLYWHEEL_STORE_PATH)")
    turn.add_argument("--eval", nargs="*", default=["data/test/hard", "data/test/nominal"], help="held-out")
    turn.add_argument("--detector-minutes", type=float, default=6.0)
    turn.add_argument("--crop-minutes", type=float, default=6.0)
    turn.add_argument(
        "--replay-share",
        type=float,
        default=0.5,
        help="batch share from the parent's data (1 = control)",
    )
    turn.set_defaults(func=_cmd_turn)

    exp = fw.add_parser("experiment", help="several unattended turns in the lab: robot, labels, fine-tune")
    exp.add_argument("--parent", required=True, help="starting model version")
    exp.add_argument("--turns", type=int, default=3)
    exp.add_argument("--scenes", type=int, default=120, help="hard scenes the robot works per turn")
    exp.add_argument("--out", default=None, help="folder for the store, curve.json and curve.png")
    exp.add_argument("--children", default=None, help="child names: CHILDREN1, 2, ... (default PARENT-fw)")
    exp.add_argument("--detector-minutes", type=float, default=6.0)
    exp.add_argument("--crop-minutes", type=float, default=6.0)
    exp.add_argument(
        "--replay-share", type=float, default=None, help="share of each batch from the original data"
    )
    exp.set_defaults(func=_cmd_experiment)


def _stats_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="ask the flywheel service (HOST:PORT) instead of reading locally")
    parser.add_argument("--store", help="store folder (default: GRASPSTACK_FLYWHEEL_STORE_PATH)")
    parser.add_argument("--redis-url", help="default: GRASPSTACK_FLYWHEEL_REDIS_URL")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=_cmd_stats)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry for tests and until graspstack.cli wires `register`."""
    parser = argparse.ArgumentParser(prog="graspstack")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
