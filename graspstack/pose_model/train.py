"""`graspstack train`: fit PoseNet (stage 1) and CropNet (stage 2) on lab scenes, validate, register.

`--stage all` trains both; `--stage crops --base VERSION` trains only the second stage on top of an
existing version's detector (which is copied into the new version, so each version is self-contained);
`--stage detector --base VERSION` fine-tunes that version's detector and keeps its CropNet;
`--stage wayround --base VERSION` trains the lego way-round net (wayround.py), `--stage handle
--base VERSION` the mug handle net (handle.py), `--stage studs --base VERSION` the lego studs net
(studs.py), and adds it to that version's folder (or to a copy of
it named --version), leaving its other weights as they are.

The schedule is set by wall-clock time rather than epochs (cosine decay over the budget), so a run
finishes when promised on whatever machine it lands on; the data size then decides how many epochs
that is. Validation runs the full predictor (network + depth refinement) on held-out scenes and
scores it with the contract metric per slice and class.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from graspstack.pose_model.budget import mixed_sampler, train_for
from graspstack.pose_model.crop_train import blended, train_crop_net
from graspstack.pose_model.crops import concat_crops, load_crops
from graspstack.pose_model.data import SceneArrays, build_cache, concat, load_cache
from graspstack.pose_model.losses import pose_losses, total_loss
from graspstack.pose_model.mining import hard_first, load_mined_crops
from graspstack.pose_model.network import INPUT_HW, PoseNet
from graspstack.pose_model.ranker import RANKER_FILE
from graspstack.pose_model.registry import (
    CROP_WEIGHTS_FILE,
    FRAME_NET_FILES,
    WEIGHTS_FILE,
    _root,
    activate,
    load_card,
    load_crop_network,
    load_network,
    save_crop_network,
    save_frame_network,
    save_version,
    write_card,
)
from graspstack.pose_model.targets import make_batch
from graspstack.pose_model.widen import widen_crop_net


def cached(root: Path, workers: int = 2) -> SceneArrays:
    """The cache of a scene folder, built on first use (and rebuilt when scenes were added)."""
    h, w = INPUT_HW
    path = root / f"cache_{h}x{w}.npz"
    n_scenes = _scene_count(root)
    meta = path.with_suffix(".json")
    if not path.exists() or json.loads(meta.read_text()).get("scenes") != n_scenes:
        build_cache(root, path, workers=workers)
    return load_cache(path)


class GrowingData:
    """The training set of several scene folders, re-read while training when folders grow.

    Lab data is rendered while training runs (renders finish one folder after another); a
    folder is re-cached only when its scene count changed, at most every `every_s` seconds.
    """

    def __init__(self, roots: list[Path], every_s: float = 300.0) -> None:
        self.roots, self.every_s = roots, every_s
        self.parts: dict[Path, SceneArrays] = {}
        self.last = -math.inf
        self.data: SceneArrays | None = None

    def get(self, now: float) -> SceneArrays:
        if now - self.last >= self.every_s:
            self.last = now
            changed = False
            for r in self.roots:
                n = _scene_count(r)
                if n and (r not in self.parts or len(self.parts[r]) != n):
                    self.parts[r] = cached(r)
                    changed = True
            if changed or self.data is None:
                self.data = concat(list(self.parts.values()))
        return self.data


def _scene_count(root: Path) -> int:
    if not root.exists():
        return 0
    return sum(1 for p in root.iterdir() if p.name.isdigit() and (p / "scene.json").exists())


def train_network(
    source: GrowingData,
    minutes: float,
    batch_size: int = 16,
    lr: float = 2e-3,
    width: int = 24,
    seed: int = 0,
    log_every: int = 50,
    checkpoint: Path | None = None,
    checkpoint_every_s: float = 300.0,
    net: PoseNet | None = None,
    sampler=None,
) -> tuple[PoseNet, dict]:
    """Train (or, given `net`, fine-tune) within `minutes`; with `checkpoint`, the weights are saved
    there every few minutes so the pipeline after the network can be tuned while training goes on.
    `sampler(rng, n)` picks each batch's scenes (default uniform)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = net or PoseNet(width)

    def step(elapsed: float):
        data = source.get(elapsed)
        idx = sampler(rng, batch_size) if sampler else rng.integers(0, len(data), size=batch_size)
        batch = make_batch(data, idx, rng)
        losses = pose_losses(net(batch.x), batch)
        return total_loss(losses), losses

    run = train_for(net, step, minutes, lr, "train", checkpoint, checkpoint_every_s, log_every)
    info = {
        "steps": run["steps"],
        "batch_size": batch_size,
        "samples_seen": run["steps"] * batch_size,
        "epochs": round(run["steps"] * batch_size / len(source.data), 2) if source.data else 0.0,
        "lr": lr,
        "seconds": run["seconds"],
        "loss_history": run["loss_history"],
    }
    return net, info


def _dataset_info(root: Path) -> dict:
    """Seed, slice and size of a rendered folder (from the first scene's annotations)."""
    dirs = sorted(p for p in root.iterdir() if p.name.isdigit()) if root.exists() else []
    ann = json.loads((dirs[0] / "annotations.json").read_text()) if dirs else {}
    return {"path": str(root), "slice": ann.get("slice"), "seed": ann.get("seed"), "scenes": len(dirs)}


def validate(version: str, val_dirs: list[Path], limit: int | None = None) -> dict:
    """Contract metric of the full predictor on each validation folder, per slice and class."""
    from graspstack.evaluation import run_evaluation
    from graspstack.pose_model.infer import ModelPredictor

    predictor = ModelPredictor(version)
    out: dict = {"slices": {}, "latency_ms": {}}
    for d in val_dirs:
        if not _scene_count(d):
            continue
        result = run_evaluation(d, predictor, limit=limit)
        out["slices"].update(result.report["slices"])
        out["latency_ms"][d.name] = result.report["latency_ms"]
        out.setdefault("data", []).append(
            {**_dataset_info(d), "scored": result.report["latency_ms"].get("n")}
        )
    return out


ARCHITECTURE = (
    "two-stage: PoseNet FCN on 320x240 RGB-D + rays (class, centre votes, centre depth) proposes objects, "
    "plus above-table blobs it missed; CropNet on a 64x64 RGB-D crop per proposal (class, visible mask, "
    "dense object coordinates); RANSAC rigid fit of the 3D-3D correspondences; ICP polish on the depth"
)


def train_crop_stage(
    train_dirs: list[Path],
    minutes: float,
    version: str,
    width: int | None = None,
    init_from: str | None = None,
    lr: float = 2e-3,
    mine: str | None = None,
    mine_share: float = 0.35,
    blend: float | None = None,
) -> dict:
    """Train the second stage on the crops of `train_dirs`; with `init_from`, fine-tune that version's
    CropNet instead of starting from random weights (fresh scenes for a shipped model), widened first
    to `width` when that is wider (widen.py: the wide net starts as the narrow one). With `mine`, a
    `mine_share` of every batch comes from the crops of objects that version gets out of spec
    (mining.py). With `blend`, the fine-tuned weights are averaged with `init_from`'s, that share of
    them kept (crop_train.blended)."""
    if blend is not None and not init_from:
        raise ValueError("--crop-blend needs --crop-from: the weights the fine-tuned ones are averaged with")
    sampler, recipe = None, {}
    if mine:
        parts = [load_mined_crops(r, mine) for r in train_dirs]
        data, n_hard = hard_first(concat_crops([c for c, _ in parts]), np.concatenate([h for _, h in parts]))
        if not n_hard:
            raise ValueError(f"--crop-mine {mine}: that version gets every training object within spec")
        sampler = mixed_sampler(n_hard, len(data), mine_share)
        recipe = {"mined_by": mine, "hard_crops": n_hard, "hard_share": mine_share}
    else:
        data = concat_crops([load_crops(r) for r in train_dirs])
    checkpoint = Path(tempfile.gettempdir()) / f"graspstack-crops-{version}.safetensors"
    init = None
    if init_from:
        init = load_crop_network(init_from)
        if init is None:
            raise ValueError(f"--crop-from {init_from}: that version has no CropNet to fine-tune")
        init = init.train()
        from_width = init.enc1[0][0].out_channels
        if width and width > from_width:
            init = widen_crop_net(init, width)
        width = max(width or 0, from_width)
    width = width or 32
    start = copy.deepcopy(init) if blend is not None else None
    net, info = train_crop_net(
        data, minutes, lr=lr, width=width, net=init, sampler=sampler, checkpoint=checkpoint
    )
    if start is not None:
        net = blended(start, net, blend)
        recipe["blend"] = f"{blend} of the fine-tuned weights, {1 - blend:.2g} of {init_from}'s"
    save_crop_network(version, net.eval())
    training = {k: v for k, v in info.items() if k != "loss_history"} | {"crops": len(data)} | recipe
    if init_from:
        training["init"] = f"{init_from}'s CropNet" + (f", widened to {width}" if width > from_width else "")
    return {
        "crop_width": width,
        "crop_parameters": sum(p.numel() for p in net.parameters()),
        "crop_training": training,
        "crop_loss_history": info["loss_history"][-10:],
    }


_KEPT = {"crops": "detector", "detector": "CropNet"}
_CROP_CARD_KEYS = ("crop_width", "crop_parameters", "crop_training", "crop_loss_history")


def _copy_weights(base: str, version: str, file_name: str) -> None:
    """The stage a new version keeps from its base: the base's weights file, byte for byte."""
    shutil.copyfile(_root(None) / base / file_name, _root(None) / version / file_name)


FRAME_NET_TRAINERS = {
    "wayround": "graspstack.pose_model.wayround_train:train_wayround",
    "handle": "graspstack.pose_model.handle_train:train_handle",
    "studs": "graspstack.pose_model.studs_train:train_studs",
}


@contextmanager
def _adding_to(base: str, version: str | None) -> Iterator[str]:
    """The version a part is added to: `base` itself (in place), or a copy of it named `version`. A
    copy made here is removed again when adding the part fails, so a failed run leaves no half-made
    version in the registry for a pilot to pick up (an existing `version` is refused, not touched)."""
    version = version or base
    if version == base:
        yield version
        return
    made = _root(None) / version
    shutil.copytree(_root(None) / base, made)
    try:
        yield version
    except BaseException:
        shutil.rmtree(made, ignore_errors=True)
        raise


def _with_card_entry(version: str, key: str, info: dict) -> dict:
    """version's card with card[key] = info, stamped with when it was trained, written back."""
    card = load_card(version) | {"version": version}
    card[key] = info | {"trained_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    write_card(version, card)
    return card


def add_frame_net(kind: str, base: str, version: str | None, train_dirs: list[str], minutes: float) -> dict:
    """Train the frame net `kind` (FRAME_NET_TRAINERS) and add it to `base` (in place) or to a copy of
    `base` named `version`; its card entry is card[kind]."""
    module, name = FRAME_NET_TRAINERS[kind].split(":")
    train = getattr(importlib.import_module(module), name)

    torch.set_num_threads(2)
    with _adding_to(base, version) as version:
        net, info = train([Path(d) for d in train_dirs], minutes)
        save_frame_network(kind, version, net)
        return _with_card_entry(version, kind, info)


def add_ranker(base: str, version: str | None, train_dirs: list[str]) -> dict:
    """Learn the hypothesis ranker (ranker.py) on `base`'s own pipeline over `train_dirs` and add it to
    `base` (in place) or to a copy of `base` named `version`; its card entry is card["ranker"]."""
    from graspstack.pose_model.ranker_train import train_ranker

    torch.set_num_threads(2)
    started = time.monotonic()
    with _adding_to(base, version) as version:
        # The old ranker goes first. The replay chooses for itself whatever ranker is loaded
        # (ranker_train.RecordingPredictor), but in place, one this code can no longer read would stop
        # the base from loading at all.
        (_root(None) / version / RANKER_FILE).unlink(missing_ok=True)
        ranker, info = train_ranker(base, [Path(d) for d in train_dirs])
        ranker.save(_root(None) / version)
        minutes = round((time.monotonic() - started) / 60.0, 1)
        return _with_card_entry(version, "ranker", info | {"minutes": minutes})


def run_training(
    train_dirs: list[str],
    val_dirs: list[str],
    version: str | None,
    minutes: float,
    val_limit: int | None = None,
    make_active: bool = False,
    batch_size: int = 16,
    width: int = 24,
    stage: str = "all",
    base: str | None = None,
    crop_minutes: float = 35.0,
    crop_from: str | None = None,
    crop_lr: float = 2e-3,
    lr: float = 2e-3,
    crop_width: int | None = None,
    crop_mine: str | None = None,
    crop_mine_share: float = 0.35,
    crop_blend: float | None = None,
) -> dict:
    if stage == "ranker":
        if not base:
            raise ValueError(
                "--stage ranker needs --base VERSION (whose pipeline the ranker learns to choose for)"
            )
        return add_ranker(base, version, train_dirs)
    if stage in FRAME_NET_TRAINERS:
        if not base:
            raise ValueError(f"--stage {stage} needs --base VERSION (the version the net is added to)")
        return add_frame_net(stage, base, version, train_dirs, minutes)
    torch.set_num_threads(2)
    started = time.monotonic()
    roots = [Path(d) for d in train_dirs]
    version = version or datetime.now(UTC).strftime("v%Y%m%d-%H%M")
    if stage in ("crops", "detector") and not base:
        raise ValueError(f"--stage {stage} needs --base VERSION (whose {_KEPT[stage]} the new version keeps)")
    base_card = load_card(base) if stage in _KEPT else {}
    if stage == "crops":
        (_root(None) / version).mkdir(parents=True, exist_ok=True)
        _copy_weights(base, version, WEIGHTS_FILE)
        card = {
            "version": version,
            "architecture": ARCHITECTURE,
            "width": base_card.get("width", width),
            "parameters": base_card.get("parameters"),
            "detector_from": base,
            "detector_train_data": base_card.get("train_data"),
            "detector_training": base_card.get("training"),
        }
    else:
        init = None
        if stage == "detector":
            if not (_root(None) / base / CROP_WEIGHTS_FILE).exists():
                raise ValueError(f"--stage detector --base {base}: that version has no CropNet to keep")
            init = load_network(base)[0].train()
            width = base_card.get("width", width)
        source = GrowingData(roots)
        checkpoint = Path(tempfile.gettempdir()) / f"graspstack-pose-{version}.safetensors"
        net, info = train_network(
            source, minutes, batch_size=batch_size, lr=lr, width=width, checkpoint=checkpoint, net=init
        )
        training = {k: v for k, v in info.items() if k != "loss_history"}
        if init is not None:
            training["init"] = f"{base}'s detector"
        card = {
            "version": version,
            "architecture": ARCHITECTURE,
            "width": width,
            "parameters": sum(p.numel() for p in net.parameters()),
            "training": training,
            "loss_history": info["loss_history"][-20:],
        }
        save_version(version, net, card)
    card["trained_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    card["train_data"] = [_dataset_info(r) for r in roots]
    if stage == "detector":
        # The second stage is the base's, unchanged: copied with what its card says about it.
        _copy_weights(base, version, CROP_WEIGHTS_FILE)
        card |= {k: base_card[k] for k in _CROP_CARD_KEYS if k in base_card}
        card["crop_from"] = base
        card["crop_train_data"] = base_card.get("train_data")
    else:
        card |= train_crop_stage(
            roots,
            crop_minutes,
            version,
            width=crop_width,
            init_from=crop_from,
            lr=crop_lr,
            mine=crop_mine,
            mine_share=crop_mine_share,
            blend=crop_blend,
        )
    for kind, file_name in FRAME_NET_FILES.items():
        if stage in _KEPT and (_root(None) / base / file_name).exists():
            # The frame nets look at the frame, not at either network's outputs: a version that
            # retrains one of them keeps its base's, as they are.
            _copy_weights(base, version, file_name)
            card[kind] = base_card.get(kind, {}) | {"from": base}
    write_card(version, card)
    if val_dirs:
        from graspstack.pose_model.report import fit_calibration

        # Calibrate the confidence on the validation scenes, then validate with it (never on test).
        card["calibration"] = fit_calibration(version, list(val_dirs), limit=val_limit)
        write_card(version, card)
        card["validation"] = validate(version, [Path(d) for d in val_dirs], limit=val_limit)
    card["total_seconds"] = round(time.monotonic() - started, 1)
    write_card(version, card)
    if make_active:
        activate(version)
    return card
