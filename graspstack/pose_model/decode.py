"""From PoseNet's per-cell outputs to object instances with coarse poses (numpy, one frame).

Instances come from centre voting: every object cell predicts where its object's centre projects,
the votes of a class pile up at one point per object, and the peaks of the vote map (blurred) are
the objects. Cells then join the peak their vote lands nearest to. Two touching ducks give two
peaks as long as their centres are apart by more than the peak suppression radius, a third of the
object's smallest side.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from graspstack.catalogue import CATALOGUE, CLASS_NAMES
from graspstack.pose_model.geometry import canonical_symmetric
from graspstack.pose_model.network import OUTPUT_STRIDE

MIN_CELLS = 3  # a lego at 0.9 m covers about 4 cells; fewer is mostly noise
VOTE_GRID = 2  # vote map resolution, input pixels per bin
# A peak must hold a quarter of the strongest vote pile it competes with: a weaker one is an object's
# stray votes. For most classes that is the class's strongest pile in the frame. For legos and
# teddies it is the strongest within this many of the class's smallest sides: a lego half hidden by
# a mug, with four cells at probability 0.6, piles an eighth of what a lego in full view does, and
# the frame-wide rule dropped it. Validation hard: legos +4 / -2, teddies +2 (two side by side),
# false positives 52 -> 51, nominal and diagnostic unchanged. For all classes: jenga false positives
# 3 -> 10 (a long block's votes spread into a second pile), mug and duck no gain.
PEAK_LOCAL_SIDES = {"lego": 2.0, "teddy": 2.0}


@dataclass
class Instance:
    class_name: str
    cells: np.ndarray  # (N, 2) row, col of the output cells that belong to it
    centre_px: np.ndarray  # (2,) projected object centre, input pixels
    rot_allo: np.ndarray  # (3, 3)
    centre_z: float  # metres, camera depth of the object centre (nan if no depth)
    score: float  # mean class probability over its cells


def _rot6_to_matrix(r6: np.ndarray) -> np.ndarray:
    a, b = r6[..., :3], r6[..., 3:]
    x = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - (x * b).sum(-1, keepdims=True) * x
    y = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def _mean_rotation(Rs: np.ndarray, weights: np.ndarray, class_name: str) -> np.ndarray:
    """Chordal mean of rotations, after turning each into the symmetric equivalent nearest the first
    estimate (a symmetric object's cells may disagree only by a symmetry)."""
    if len(CATALOGUE[class_name].symmetries) > 1:
        ref = Rs[int(np.argmax(weights))]
        Rs = canonical_symmetric(Rs, ref, class_name)
    M = np.einsum("n,nij->ij", weights, Rs)
    U, _, Vt = np.linalg.svd(M)
    return U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt


def decode(
    logits: np.ndarray,
    offset: np.ndarray,
    rot6: np.ndarray,
    dz: np.ndarray,
    depth_in: np.ndarray,
    fx_in: float,
) -> list[Instance]:
    """logits (C, h, w), offset (2, h, w) input px, rot6 (6, h, w), dz (h, w); depth_in at input res."""
    s = OUTPUT_STRIDE
    C, h, w = logits.shape
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    prob = e / e.sum(axis=0, keepdims=True)
    label = prob.argmax(axis=0)
    cell_depth = depth_in[s // 2 :: s, s // 2 :: s][:h, :w]
    valid_depth = cell_depth[cell_depth > 0]
    z_scene = float(np.median(valid_depth)) if len(valid_depth) else 0.7

    rows, cols = np.nonzero(label > 0)
    if len(rows) == 0:
        return []
    u = cols * s + (s - 1) / 2.0
    v = rows * s + (s - 1) / 2.0
    votes = np.stack([u + offset[0, rows, cols], v + offset[1, rows, cols]], -1)
    gh, gw = (h * s) // VOTE_GRID, (w * s) // VOTE_GRID
    out: list[Instance] = []
    for ci in range(1, C):
        sel = np.nonzero(label[rows, cols] == ci)[0]
        if len(sel) < MIN_CELLS:
            continue
        name = CLASS_NAMES[ci - 1]
        size_px = min(CATALOGUE[name].size_m) * fx_in / z_scene
        vb = np.clip((votes[sel] / VOTE_GRID).astype(int), [0, 0], [gw - 1, gh - 1])
        vmap = np.zeros((gh, gw), np.float32)
        np.add.at(vmap, (vb[:, 1], vb[:, 0]), prob[ci, rows[sel], cols[sel]])
        sigma = max(1.0, size_px / 6.0 / VOTE_GRID)
        vmap = cv2.GaussianBlur(vmap, (0, 0), sigma)
        k = max(3, int(size_px / VOTE_GRID * 0.66) | 1)
        sides = PEAK_LOCAL_SIDES.get(name)
        if sides:
            kr = max(3, int(sides * size_px / VOTE_GRID) | 1)
            strongest = cv2.dilate(vmap, np.ones((kr, kr), np.uint8))
        else:
            strongest = vmap.max()
        peaks = (
            (vmap >= cv2.dilate(vmap, np.ones((k, k), np.uint8)))
            & (vmap > 0.25 * strongest)
            & (vmap > 0.5 / (2 * np.pi * sigma**2))
        )
        py, px = np.nonzero(peaks)
        if len(py) == 0:
            continue
        centres = np.stack([px, py], -1) * VOTE_GRID + VOTE_GRID / 2.0
        d = np.linalg.norm(votes[sel, None] - centres[None], axis=-1)
        owner = d.argmin(axis=1)
        near = d[np.arange(len(sel)), owner] < max(6.0, 0.5 * max(CATALOGUE[name].size_m) * fx_in / z_scene)
        for j in range(len(centres)):
            m = sel[(owner == j) & near]
            if len(m) < MIN_CELLS:
                continue
            r, c = rows[m], cols[m]
            wts = prob[ci, r, c]
            Rs = _rot6_to_matrix(rot6[:, r, c].T)
            z = cell_depth[r, c]
            ok = z > 0
            centre_z = float(np.median(z[ok] + dz[r, c][ok])) if ok.any() else float("nan")
            out.append(
                Instance(
                    class_name=name,
                    cells=np.stack([r, c], -1),
                    centre_px=np.median(votes[m], axis=0),
                    rot_allo=_mean_rotation(Rs, wts, name),
                    centre_z=centre_z,
                    score=float(wts.mean()),
                )
            )
    return _merge_class_fragments(out, fx_in)


def _merge_class_fragments(instances: list[Instance], fx_in: float) -> list[Instance]:
    """One object whose cells split between two classes gives two instances at nearly one centre.

    The larger (cells x score) keeps its class and takes the other's cells. Centres closer than 60%
    of the larger of the two classes' smallest sides count as one object: a lego lying on a jenga
    (centres ~2.6 cm apart) stays two.
    """
    order = sorted(instances, key=lambda i: -len(i.cells) * i.score)
    kept: list[Instance] = []
    for inst in order:
        host = None
        for k in kept:
            if k.class_name == inst.class_name:
                continue
            z = k.centre_z if np.isfinite(k.centre_z) else 0.7
            d_px = float(np.linalg.norm(k.centre_px - inst.centre_px)) * z / fx_in
            d_z = abs(k.centre_z - inst.centre_z) if np.isfinite(k.centre_z - inst.centre_z) else 0.0
            reach = 0.6 * max(min(CATALOGUE[k.class_name].size_m), min(CATALOGUE[inst.class_name].size_m))
            if np.hypot(d_px, d_z) < reach:
                host = k
                break
        if host is None:
            kept.append(inst)
        else:
            host.cells = np.concatenate([host.cells, inst.cells])
    return kept


def stray_cells(
    logits: np.ndarray,
    instances: list[Instance],
    depth_in: np.ndarray,
    class_name: str,
    min_cells: int,
    limit: int,
) -> list[tuple[np.ndarray, float]]:
    """Groups of cells labelled `class_name` that no instance of that class holds, largest first (the
    `limit` largest of at least `min_cells`), as (centre, input px; surface depth, m).

    A small object's cells go astray two ways: their votes fall short of a peak (a lego beside a mug
    whose two or three cells vote apart), or their instance is merged into a touching object of
    another class (`_merge_class_fragments`). Each group is a place worth a full-resolution crop.
    """
    ci = CLASS_NAMES.index(class_name) + 1
    s = OUTPUT_STRIDE
    mask = logits.argmax(axis=0) == ci
    for inst in instances:
        if inst.class_name == class_name:
            mask[inst.cells[:, 0], inst.cells[:, 1]] = False
    if mask.sum() < min_cells:
        return []
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out = []
    for k in sorted(range(1, n), key=lambda k: -stats[k, cv2.CC_STAT_AREA]):
        if stats[k, cv2.CC_STAT_AREA] < min_cells or len(out) == limit:
            break
        # Every input pixel of the group's cells, not only their centres: a small object at another's
        # edge sits where the sensor drops pixels, often the cell centres among them.
        pixels = np.kron(labels == k, np.ones((s, s), bool))  # the cells' input pixels
        z = depth_in[: pixels.shape[0], : pixels.shape[1]][pixels]
        z = z[z > 0]
        if not len(z):
            continue
        centre = centroids[k] * s + (s - 1) / 2.0  # (col, row) -> input px, as decode's cell centres
        out.append((centre, float(np.median(z))))
    return out
