"""A wider CropNet that starts as a trained one: function-preserving widening (Net2WiderNet).

Fine-tuning a trained CropNet on more lab data stopped helping at its size (v8: validation tied), and
training a wider one from random weights would spend most of a time box relearning what the narrow
one knows. So every layer's new channels copy existing ones (a random old channel each), and the
layers that read them divide the copied input weights by the number of copies: the wide net computes
exactly what the narrow one did (in eval mode; in train mode the copies share batch statistics too).
A little noise on the copies' incoming weights breaks their symmetry, so training can pull them apart.
"""

from __future__ import annotations

import torch
from torch import nn

from graspstack.pose_model.crop_net import CropNet


def _mapping(old: int, new: int, gen: torch.Generator) -> torch.Tensor:
    """new channel -> the old channel it copies: the first `old` are themselves."""
    extra = torch.randint(0, old, (new - old,), generator=gen)
    return torch.cat([torch.arange(old), extra])


def _counts(mapping: torch.Tensor, old: int) -> torch.Tensor:
    return torch.bincount(mapping, minlength=old).float()


def _in_map(parts: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer reading the concatenation of several widened maps: index into the old input, and the
    divisor for each new input channel."""
    idx, div, offset = [], [], 0
    for mapping, old in parts:
        idx.append(mapping + offset)
        div.append(_counts(mapping, old)[mapping])
        offset += old
    return torch.cat(idx), torch.cat(div)


def _bn(bn: nn.BatchNorm2d, out_map: torch.Tensor) -> nn.BatchNorm2d:
    wide = nn.BatchNorm2d(len(out_map), eps=bn.eps, momentum=bn.momentum)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(wide, name).data.copy_(getattr(bn, name).data[out_map])
    wide.num_batches_tracked.copy_(bn.num_batches_tracked)
    return wide


def _conv(conv: nn.Conv2d, out_map: torch.Tensor | None, in_idx, in_div, noise: float, gen) -> nn.Conv2d:
    w = conv.weight.data
    if in_idx is not None:
        w = w[:, in_idx] / in_div[None, :, None, None]
    if out_map is not None:
        w = w[out_map]
    w = w.clone()
    wide = nn.Conv2d(
        w.shape[1],
        w.shape[0],
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        bias=conv.bias is not None,
    )
    if noise > 0 and out_map is not None:  # only the copies: the originals stay exact
        copies = w[conv.out_channels :]
        w[conv.out_channels :] = copies + noise * w.std() * torch.randn(copies.shape, generator=gen)
    wide.weight.data.copy_(w)
    if conv.bias is not None:
        wide.bias.data.copy_(conv.bias.data if out_map is None else conv.bias.data[out_map])
    return wide


def _conv_bn(block: nn.Sequential, out_map, in_idx, in_div, noise, gen) -> nn.Sequential:
    conv, bn, relu = block
    return nn.Sequential(_conv(conv, out_map, in_idx, in_div, noise, gen), _bn(bn, out_map), relu)


def _depthwise(conv: nn.Conv2d, out_map: torch.Tensor) -> nn.Conv2d:
    n = len(out_map)
    wide = nn.Conv2d(n, n, conv.kernel_size, conv.stride, conv.padding, groups=n, bias=False)
    wide.weight.data.copy_(conv.weight.data[out_map])
    return wide


def _sep_bn(block: nn.Sequential, out_map, in_idx, in_div, noise, gen) -> nn.Sequential:
    point, bn1, relu1, depth, bn2, relu2 = block
    return nn.Sequential(
        _conv(point, out_map, in_idx, in_div, noise, gen),
        _bn(bn1, out_map),
        relu1,
        _depthwise(depth, out_map),  # one filter per channel: a copy reads only its own channel
        _bn(bn2, out_map),
        relu2,
    )


def widen_crop_net(net: CropNet, width: int, noise: float = 0.01, seed: int = 0) -> CropNet:
    """A CropNet of `width` that computes what `net` does (up to `noise`, relative to each layer's
    weight spread)."""
    old_w = net.enc1[0][0].out_channels
    if width < old_w:
        raise ValueError(f"cannot widen a width-{old_w} CropNet to {width}")
    gen = torch.Generator().manual_seed(seed)
    wide = CropNet(width)
    sizes = {k: (k * old_w // 2, k * width // 2) for k in (2, 3, 4, 6)}  # w, 3w/2, 2w, 3w in halves
    maps = {k: _mapping(o, n, gen) for k, (o, n) in sizes.items()}
    old = {k: o for k, (o, _) in sizes.items()}

    def inputs(*ks: int):
        return _in_map([(maps[k], old[k]) for k in ks])

    # Encoder: each stage is two conv_bn layers at one width; the second reads the first.
    stages = [("enc1", 2), ("enc2", 3), ("enc3", 4), ("enc4", 6)]
    prev = None
    for name, k in stages:
        a, b = getattr(net, name)
        idx, div = (None, None) if prev is None else inputs(prev)
        first = _conv_bn(a, maps[k], idx, div, noise, gen)
        second = _conv_bn(b, maps[k], *inputs(k), noise, gen)
        setattr(wide, name, nn.Sequential(first, second))
        prev = k
    wide.cls = nn.Linear(width * 3, net.cls.out_features)
    idx, div = inputs(6)
    wide.cls.weight.data.copy_(net.cls.weight.data[:, idx] / div[None])
    wide.cls.bias.data.copy_(net.cls.bias.data)
    # Decoder: each reads the upsampled deeper map concatenated with the encoder's skip.
    wide.dec3 = _conv_bn(net.dec3, maps[4], *inputs(6, 4), noise, gen)
    wide.dec2 = _sep_bn(net.dec2, maps[3], *inputs(4, 3), noise, gen)
    wide.dec1 = nn.Sequential(
        _sep_bn(net.dec1[0], maps[2], *inputs(3, 2), noise, gen),
        _sep_bn(net.dec1[1], maps[2], *inputs(2), noise, gen),
    )
    wide.head = _conv(net.head, None, *inputs(2), 0.0, gen)
    return wide.train(net.training)
