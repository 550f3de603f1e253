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
    render.add_argument("--slice", choices=("nominal", "hard"), default="nominal")
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
    ev.add_argument("--predictor", required=True, help="mean | scripted")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.add_argument("--plot", default=None, help="write error histograms to this PNG")
    ev.add_argument("--records", default=None, help="write per-object results to this JSON file")
    ev.add_argument("--limit", type=int, default=None, help="score only the first N scenes")
    ev.set_defaults(func=_cmd_eval)

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
