"""Model registry: versioned folders under models/pose/, one of them named in models/pose/ACTIVE.

A version folder holds `weights.safetensors` (stage 1, PoseNet), `crop.safetensors` when the version
has a second stage (CropNet), one file per frame net it has (nets that judge one pose hypothesis on
the frame: `wayround.safetensors`, the lego way-round net of wayround.py; `handle.safetensors`, the
mug handle net of handle.py; `studs.safetensors`, the lego studs net of studs.py), and `card.json`
(what it was trained on, how long, how it scores).
The pose service and `graspstack eval --predictor model[:VERSION]` load by version, so a pilot can
promote and roll back by rewriting one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from graspstack.pose_model.network import PoseNet

MODELS_DIR = Path(__file__).resolve().parents[2] / "models" / "pose"
WEIGHTS_FILE = "weights.safetensors"
CROP_WEIGHTS_FILE = "crop.safetensors"  # the second stage (CropNet); versions without it are one-stage
WAYROUND_WEIGHTS_FILE = "wayround.safetensors"
HANDLE_WEIGHTS_FILE = "handle.safetensors"
STUDS_WEIGHTS_FILE = "studs.safetensors"
FRAME_NET_FILES = {
    "wayround": WAYROUND_WEIGHTS_FILE,
    "handle": HANDLE_WEIGHTS_FILE,
    "studs": STUDS_WEIGHTS_FILE,
}
CARD_FILE = "card.json"
ACTIVE_FILE = "ACTIVE"


def _root(root: str | Path | None) -> Path:
    return Path(root or os.environ.get("GRASPSTACK_MODELS", MODELS_DIR))


def list_versions(root: str | Path | None = None) -> list[str]:
    r = _root(root)
    if not r.exists():
        return []
    return sorted(p.name for p in r.iterdir() if (p / WEIGHTS_FILE).exists())


def active_version(root: str | Path | None = None) -> str:
    f = _root(root) / ACTIVE_FILE
    if not f.exists():
        raise FileNotFoundError(f"no active pose model: {f} is missing")
    return f.read_text().strip()


def activate(version: str, root: str | Path | None = None) -> None:
    r = _root(root)
    if version not in list_versions(r):
        raise ValueError(f"unknown pose model version {version!r}; have {list_versions(r)}")
    tmp = r / (ACTIVE_FILE + ".tmp")
    tmp.write_text(version + "\n")
    tmp.replace(r / ACTIVE_FILE)  # atomic: a reader never sees a half-written name


def save_version(version: str, net: PoseNet, card: dict, root: str | Path | None = None) -> Path:
    d = _root(root) / version
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(d / WEIGHTS_FILE), metadata={"width": str(card.get("width", 24))})
    write_card(version, card, root)
    return d


def write_card(version: str, card: dict, root: str | Path | None = None) -> None:
    (_root(root) / version / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")


def load_card(version: str, root: str | Path | None = None) -> dict:
    return json.loads((_root(root) / version / CARD_FILE).read_text())


def load_network(version: str | None = None, root: str | Path | None = None) -> tuple[PoseNet, str]:
    """The network of `version` (default: the active one) in eval mode, and its version name."""
    version = version or active_version(root)
    d = _root(root) / version
    if not (d / WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"no pose model {version!r} under {_root(root)}")
    card = json.loads((d / CARD_FILE).read_text()) if (d / CARD_FILE).exists() else {}
    net = PoseNet(int(card.get("width", 24)))
    net.load_state_dict(load_file(str(d / WEIGHTS_FILE)))
    net.eval()
    return net, version


def load_crop_network(version: str, root: str | Path | None = None):
    """The CropNet of `version` in eval mode, or None for a one-stage version."""
    from graspstack.pose_model.crop_net import CropNet

    d = _root(root) / version
    if not (d / CROP_WEIGHTS_FILE).exists():
        return None
    card = json.loads((d / CARD_FILE).read_text()) if (d / CARD_FILE).exists() else {}
    net = CropNet(int(card.get("crop_width", 32)))
    net.load_state_dict(load_file(str(d / CROP_WEIGHTS_FILE)))
    return net.eval()


def _frame_net(kind: str) -> torch.nn.Module:
    from graspstack.pose_model.handle import HandleNet
    from graspstack.pose_model.studs import StudsNet
    from graspstack.pose_model.wayround import WayRoundNet

    return {"wayround": WayRoundNet, "handle": HandleNet, "studs": StudsNet}[kind]()


def load_frame_network(kind: str, version: str, root: str | Path | None = None):
    """The frame net `kind` (FRAME_NET_FILES) of `version` in eval mode, or None where it has none."""
    path = _root(root) / version / FRAME_NET_FILES[kind]
    if not path.exists():
        return None
    net = _frame_net(kind)
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def save_frame_network(kind: str, version: str, net: torch.nn.Module, root: str | Path | None = None) -> None:
    _save_weights(version, net, FRAME_NET_FILES[kind], root)


def save_crop_network(version: str, net: torch.nn.Module, root: str | Path | None = None) -> None:
    _save_weights(version, net, CROP_WEIGHTS_FILE, root)


def _save_weights(version: str, net: torch.nn.Module, file_name: str, root: str | Path | None) -> None:
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(_root(root) / version / file_name))


def fold_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Fold every BatchNorm that follows a conv into the conv (inference only; ~20% faster on CPU)."""
    for module in net.modules():
        if not isinstance(module, torch.nn.Sequential):
            continue
        layers = list(module)
        for i in range(len(layers) - 1):
            conv, bn = layers[i], layers[i + 1]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
                module[i] = fused
                module[i + 1] = torch.nn.Identity()
    return net
