"""The time-budgeted training loop both stages use (and the flywheel's fine-tuning through them).

The schedule is set by wall-clock time rather than epochs (warm-up, then cosine decay over the
budget), so a run finishes when promised on whatever machine it lands on. Each stage supplies only
`step(elapsed_s) -> (loss, {name: loss term})`: its own batch and losses.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

Step = Callable[[float], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def mixed_sampler(n_first: int, n_total: int, share_first: float):
    """Batch indices with `share_first` of their items from the first n_first entries, the rest from
    the others: the flywheel's new cases beside a replay of the parent's data, or mined hard crops
    beside the rest (`sampler` of the training loops)."""

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        k = rng.binomial(n, share_first)
        return np.concatenate([rng.integers(0, n_first, k), rng.integers(n_first, n_total, n - k)])

    return sample


def cosine_lr(frac: float, base: float, warmup: float = 0.03) -> float:
    if frac < warmup:
        return base * frac / warmup
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (frac - warmup) / (1.0 - warmup))))


def train_for(
    net: torch.nn.Module,
    step: Step,
    minutes: float,
    lr: float,
    desc: str,
    checkpoint: Path | None = None,
    checkpoint_every_s: float = 300.0,
    log_every: int = 50,
) -> dict:
    """AdamW on `net` until the budget is spent; returns steps, seconds and the loss history.

    With `checkpoint`, the weights are saved there every few minutes, so what comes after the network
    can be tuned while training goes on. The net is left in eval mode.
    """
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    budget = minutes * 60.0
    t0 = time.monotonic()
    steps, history, running = 0, [], {}
    last_checkpoint = t0
    bar = tqdm(total=int(budget), desc=desc, unit="s", file=sys.stderr)
    while (elapsed := time.monotonic() - t0) < budget:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(elapsed / budget, lr)
        loss, terms = step(elapsed)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        steps += 1
        for k, v in terms.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if steps % log_every == 0:
            avg = {k: round(v / log_every, 4) for k, v in running.items()}
            history.append({"step": steps, "seconds": round(time.monotonic() - t0), **avg})
            bar.set_postfix(avg)
            running = {}
        bar.update(int(time.monotonic() - t0) - bar.n)
        if checkpoint is not None and time.monotonic() - last_checkpoint > checkpoint_every_s:
            last_checkpoint = time.monotonic()
            save_file({k: v.detach().clone() for k, v in net.state_dict().items()}, str(checkpoint))
    bar.close()
    net.eval()
    return {"steps": steps, "seconds": round(time.monotonic() - t0, 1), "loss_history": history}


def frame_net_info(roots: list[Path], n_train: int, n_held: int, run: dict, batch: int) -> dict:
    """The card entry's common part for a frame net (wayround.py, handle.py) trained by train_for."""
    return {
        "data": [str(r) for r in roots],
        "train_crops": n_train,
        "held_out_crops": n_held,
        "steps": run["steps"],
        "batch": batch,
        "minutes": round(run["seconds"] / 60.0, 1),
    }
