"""The `graspstack` command (CONTRACTS section 5)."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_lab_render(args: argparse.Namespace) -> int:
    from lab.dataset import render_dataset

    info = render_dataset(
        args.out, args.scenes, args.seed, args.slice, workers=args.workers, start=args.start
    )
    print(json.dumps(info))
    return 0


def _cmd_lab_show(args: argparse.Namespace) -> int:
    from graspstack.scene_io import Scene
    from lab.visualize import draw_poses, save_rgb

    scene = Scene(args.scene)
    frame = scene.frame()
    save_rgb(args.out, draw_poses(frame.rgb, scene.ground_truth(), frame.intrinsics))
    print(args.out)
    return 0


def _cmd_lab_verify(args: argparse.Namespace) -> int:
    from lab.verify import verify_dataset

    report = verify_dataset(args.data, limit=args.limit)
    print(json.dumps(report, indent=None if args.json else 1))
    return 0 if report["median_abs_mm"] < args.max_median_mm else 1


_SERVICE_BUILDERS = {
    "camera": ("services.camera", "build", "CameraSettings"),
    "pose": ("services.pose", "build", "PoseSettings"),
    "shadow": ("services.pose", "build_shadow", "ShadowSettings"),
    "grasp": ("services.grasp", "build", "GraspSettings"),
    "flywheel": ("services.flywheel", "build", "FlywheelSettings"),
}


def _cmd_serve(args: argparse.Namespace) -> int:
    import importlib
    import logging

    import services.settings as service_settings
    from services.server import GrpcServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    module, builder, settings_cls = _SERVICE_BUILDERS[args.service]
    overrides = {"port": args.port} if args.port else {}
    if args.model:
        if args.service != "pose":
            raise ValueError("--model applies to the pose service only")
        overrides["model"] = args.model
    settings = getattr(service_settings, settings_cls)(**overrides)
    spec, settings = getattr(importlib.import_module(module), builder)(settings)
    GrpcServer(spec, settings).serve_forever()
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from graspstack.runtime import local

    local.up(model=args.model or "")
    return _cmd_status(args)


def _cmd_down(args: argparse.Namespace) -> int:
    from graspstack.runtime import local

    print(json.dumps({"stopped": local.down()}))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from graspstack.runtime import local

    rows = local.status()
    if getattr(args, "json", False):
        print(json.dumps(rows))
    elif not rows:
        print("nothing running (graspstack up starts the local system)")
    else:
        for r in rows:
            print(f"{r['name']:<11} pid {r['pid']:<8} port {r['port']:<6} {r['state']:<12} {r['metrics']}")
    healthy = {"SERVING", "READY", "UP"}
    return 0 if rows and all(r["state"] in healthy for r in rows) else 1


def _cmd_pose(args: argparse.Namespace) -> int:
    from graspstack.client import estimate_from_files

    answer = estimate_from_files(
        args.target, args.rgb, args.depth, args.intrinsics, args.depth_scale, timeout_s=args.timeout
    )
    print(json.dumps(answer))
    return 0


def _cmd_robot(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from graspstack.flywheel.producer import CaseProducer
    from lab.robot import LabRobot, Targets

    if args.metrics_port:
        start_http_server(args.metrics_port)
    producer = None if args.no_hard_cases else CaseProducer.from_url(args.redis)
    targets = Targets(args.camera, args.pose_target, args.grasp)
    robot = LabRobot(targets, poses=args.poses, stage=args.stage, hard_cases=producer)
    try:
        report = robot.run(args.scenes, args.seed, args.slice)
    finally:
        robot.close()
        if producer:
            producer.close()
    if not args.json:
        report.pop("scenes_detail")
    print(json.dumps(report, indent=None if args.json else 1))
    return 0


def _cmd_pilot(args: argparse.Namespace) -> int:
    from graspstack.pilot.config import PilotConfig
    from graspstack.pilot.run import run_pilot

    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    outcome = run_pilot(args.candidate, PilotConfig.load(args.config), args.out, log=log)
    if args.json:
        print(json.dumps(outcome))
    else:
        decision, active = outcome["final_decision"], outcome["active_version"]
        print(f"{decision}: active version {active}; report {outcome['report']}")
    return 0  # promoted, rolled back or held: each is a decision, reported above


def _cmd_eval(args: argparse.Namespace) -> int:
    from graspstack.evaluation import cli_eval

    return cli_eval(
        args.data,
        args.predictor,
        as_json=args.json,
        plot=args.plot,
        limit=args.limit,
        records_out=args.records,
    )


def _cmd_fit_mean(args: argparse.Namespace) -> int:
    from graspstack.predictors.mean import fit_mean_poses

    stats = fit_mean_poses(args.data, args.out)
    print(json.dumps({"out": args.out, "classes": {k: v["count"] for k, v in stats["classes"].items()}}))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from graspstack.pose_model.train import FRAME_NET_TRAINERS, run_training

    card = run_training(
        args.data,
        args.val,
        args.version,
        args.minutes,
        val_limit=args.val_limit,
        make_active=args.activate,
        batch_size=args.batch_size,
        stage=args.stage,
        base=args.base,
        crop_minutes=args.crop_minutes,
        crop_from=args.crop_from,
        crop_lr=args.crop_lr,
        crop_width=args.crop_width,
        lr=args.lr,
        crop_mine=args.crop_mine,
        crop_mine_share=args.crop_mine_share,
        crop_blend=args.crop_blend,
    )
    if args.stage in (*FRAME_NET_TRAINERS, "ranker"):  # the version's validation is as it was
        print(json.dumps({"version": card["version"], args.stage: card[args.stage]}))
    else:
        print(
            json.dumps({"version": card["version"], "validation": card.get("validation", {}).get("slices")})
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graspstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    lab = sub.add_parser("lab", help="the simulated lab cell").add_subparsers(
        dest="lab_command", required=True
    )
    render = lab.add_parser("render", help="render lab scenes (CONTRACTS section 2) in parallel")
    render.add_argument("--out", required=True, help="output folder; scenes go to OUT/NNNNNN/")
    render.add_argument("--scenes", type=int, required=True)
    render.add_argument(
        "--seed", type=int, required=True, help="dataset seed; use seeds >= 9000 for held-out"
    )
    render.add_argument(
        "--slice",
        choices=("nominal", "hard", "piled"),
        default="nominal",
        help="piled: training only (nominal sensor, objects dropped onto each other)",
    )
    render.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    render.add_argument("--start", type=int, default=0, help="first scene index (to extend a dataset)")
    render.set_defaults(func=_cmd_lab_render)

    show = lab.add_parser("show", help="draw a scene's ground-truth poses over its colour image")
    show.add_argument("--scene", required=True)
    show.add_argument("--out", required=True, help="PNG to write")
    show.set_defaults(func=_cmd_lab_show)

    verify = lab.add_parser(
        "verify", help="check ground truth against the depth images (independent re-render)"
    )
    verify.add_argument("--data", required=True)
    verify.add_argument("--limit", type=int, default=None)
    verify.add_argument(
        "--max-median-mm", type=float, default=4.0, help="fail above this median |difference|"
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_cmd_lab_verify)

    ev = sub.add_parser("eval", help="score a predictor on scenes with the metric of CONTRACTS section 4")
    ev.add_argument("--data", required=True, help="a scene folder or a folder of scenes")
    ev.add_argument("--predictor", required=True, help="mean | scripted | model[:VERSION]")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.add_argument("--plot", default=None, help="write error histograms to this PNG")
    ev.add_argument("--records", default=None, help="write per-object results to this JSON file")
    ev.add_argument("--limit", type=int, default=None, help="score only the first N scenes")
    ev.set_defaults(func=_cmd_eval)

    tr = sub.add_parser("train", help="train the pose model on lab scenes and register it under models/pose")
    tr.add_argument("--data", nargs="+", default=["data/train/nominal", "data/train/hard"], help="scenes")
    tr.add_argument("--val", nargs="*", default=["data/val/nominal", "data/val/hard"], help="held-out scenes")
    tr.add_argument("--version", default=None, help="model version name (default: vYYYYMMDD-HHMM)")
    tr.add_argument("--minutes", type=float, default=45.0, help="stage-1 time budget (cosine schedule)")
    tr.add_argument("--crop-minutes", type=float, default=35.0, help="time budget of the second stage")
    tr.add_argument(
        "--stage",
        choices=("all", "crops", "detector", "wayround", "handle", "studs", "ranker"),
        default="all",
        help="crops: a new second stage only; detector: fine-tune --base's detector, keep its CropNet; "
        "wayround / handle / studs: add the lego way-round net / the mug handle net / the lego studs net "
        "to --base (for --minutes); ranker: add the refinement-hypothesis ranker learned on --base's own "
        "pipeline over --data (rendered scenes: it needs their ground truth)",
    )
    tr.add_argument(
        "--base",
        default=None,
        help="with --stage crops: the version whose detector to keep; with --stage detector: the version "
        "whose detector to fine-tune and whose CropNet to keep",
    )
    tr.add_argument("--lr", type=float, default=2e-3, help="stage-1 peak learning rate")
    tr.add_argument(
        "--crop-from", default=None, help="fine-tune this version's CropNet instead of training a new one"
    )
    tr.add_argument("--crop-lr", type=float, default=2e-3, help="second-stage peak learning rate")
    tr.add_argument(
        "--crop-width",
        type=int,
        default=None,
        help="CropNet width (default 32); with --crop-from, a wider width widens that CropNet first",
    )
    tr.add_argument(
        "--crop-mine",
        default=None,
        metavar="VERSION",
        help="oversample the crops of objects this version gets out of spec on the training scenes "
        "(mining.py: its whole pipeline runs once per scene, cached)",
    )
    tr.add_argument(
        "--crop-mine-share",
        type=float,
        default=0.35,
        help="with --crop-mine: share of each batch from hard crops",
    )
    tr.add_argument(
        "--crop-blend",
        type=float,
        default=None,
        metavar="SHARE",
        help="with --crop-from: average the fine-tuned CropNet's weights with the starting ones, keeping "
        "this share of the fine-tuned (0.5 for v12; default: the fine-tuned weights as they are)",
    )
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--val-limit", type=int, default=None, help="validate on the first N scenes per folder")
    tr.add_argument("--activate", action="store_true", help="make the new version the active one")
    tr.set_defaults(func=_cmd_train)

    serve = sub.add_parser("serve", help="run one service (CONTRACTS section 5)")
    serve.add_argument("service", choices=sorted(_SERVICE_BUILDERS))
    serve.add_argument("--port", type=int, default=None, help="gRPC port (default: the service's own)")
    serve.add_argument("--model", default=None, help="pose only: registry version to serve (default: active)")
    serve.set_defaults(func=_cmd_serve)

    up = sub.add_parser("up", help="start Redis, Prometheus and every service on the default ports")
    up.add_argument("--model", default=None, help="pose model version (default: active)")
    up.set_defaults(func=_cmd_up)
    sub.add_parser("down", help="stop the local system").set_defaults(func=_cmd_down)
    st = sub.add_parser("status", help="health of each part of the local system")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_cmd_status)

    pose = sub.add_parser("pose", help="send one frame to a pose service and print its answer as JSON")
    pose.add_argument("--target", default="127.0.0.1:50052", help="HOST:PORT")
    pose.add_argument("--rgb", required=True)
    pose.add_argument("--depth", required=True)
    pose.add_argument("--intrinsics", required=True, help="fx,fy,cx,cy")
    pose.add_argument("--depth-scale", type=float, default=0.001)
    pose.add_argument("--timeout", type=float, default=10.0, help="deadline, seconds")
    pose.set_defaults(func=_cmd_pose)

    robot = sub.add_parser("robot", help="play a robot in the lab cell against the running services")
    robot.add_argument("--scenes", type=int, required=True)
    robot.add_argument("--seed", type=int, required=True)
    robot.add_argument("--slice", choices=("nominal", "hard"), default="nominal")
    robot.add_argument("--json", action="store_true", help="one JSON document with every scene")
    robot.add_argument(
        "--poses",
        choices=("service", "ground-truth"),
        default="service",
        help="ground-truth: plan on the true poses (the planner's ceiling)",
    )
    robot.add_argument("--camera", default="127.0.0.1:50051")
    robot.add_argument("--pose-target", default="127.0.0.1:50052", help="pose service (or the shadow, 50054)")
    robot.add_argument("--grasp", default="127.0.0.1:50053")
    robot.add_argument("--stage", default="lab", help="pilot stage label on the robot's metrics")
    robot.add_argument("--metrics-port", type=int, default=0, help="expose the robot's metrics here (9060)")
    robot.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="where hard cases are queued")
    robot.add_argument("--no-hard-cases", action="store_true", help="do not report failures to the flywheel")
    robot.set_defaults(func=_cmd_robot)

    pilot = sub.add_parser("pilot", help="stage a candidate model: lab, pilot cell, production (canary)")
    pilot.add_argument(
        "--candidate", required=True, help="registry version, or `degraded` to watch a rollback"
    )
    pilot.add_argument("--config", default=None, help="YAML stages and gates (default: built in)")
    pilot.add_argument("--out", default=None, help="report folder (default runs/pilot/<time>-<candidate>)")
    pilot.add_argument("--json", action="store_true")
    pilot.set_defaults(func=_cmd_pilot)

    from graspstack.flywheel.cli import register as register_flywheel

    register_flywheel(sub)

    base = sub.add_parser("baseline", help="fit the baselines").add_subparsers(
        dest="baseline_command", required=True
    )
    fit = base.add_parser("fit-mean", help="per-class mean pose of a training set")
    fit.add_argument("--data", required=True)
    fit.add_argument("--out", default="models/baselines/mean_pose.json")
    fit.set_defaults(func=_cmd_fit_mean)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"graspstack: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
