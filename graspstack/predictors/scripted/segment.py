"""Object segments: pixels standing above the table, split by colour class and by depth edges."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from graspstack.predictors.scripted.classify import UNKNOWN, ColourModel
from graspstack.predictors.scripted.table import Plane

MIN_HEIGHT_M = 0.005  # lowest height above the table that counts as object, before the noise term
MIN_AREA_M2 = 2.5e-4  # 2.5 cm^2: about a quarter of a lego's top face
FILL_RADIUS_PX = 7  # colourless pixels take the class of a coloured pixel this close


@dataclass
class Segment:
    class_index: int
    mask: np.ndarray  # HxW bool
    points: np.ndarray  # (N, 3) camera frame
    area_m2: float


def object_mask(points: np.ndarray, valid: np.ndarray, plane: Plane) -> np.ndarray:
    """Pixels clearly above the table; the margin grows with the sensor noise at that depth."""
    h = plane.height(points)
    thr = np.maximum(MIN_HEIGHT_M, 4.0 * plane.depth_sigma(points[..., 2]))
    mask = (valid & (h > thr)).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)


def depth_edges(depth_m: np.ndarray, plane: Plane) -> np.ndarray:
    """Pixels where depth jumps by more than the noise allows: borders between touching objects."""
    gx = np.abs(np.diff(depth_m, axis=1, append=depth_m[:, -1:]))
    gy = np.abs(np.diff(depth_m, axis=0, append=depth_m[-1:, :]))
    thr = np.maximum(0.012, 6.0 * plane.depth_sigma(depth_m))
    return (gx > thr) | (gy > thr)


def label_classes(rgb: np.ndarray, mask: np.ndarray, colours: ColourModel) -> np.ndarray:
    """Class index per object pixel (UNKNOWN elsewhere); colourless pixels filled from neighbours."""
    labels = np.full(mask.shape, UNKNOWN, dtype=np.int32)
    labels[mask] = colours.classify_pixels(rgb[mask])
    known = labels >= 0
    if known.any() and (mask & ~known).any():
        # Nearest coloured pixel (distance transform with labels) fills jenga text and highlights.
        dist, nearest = cv2.distanceTransformWithLabels(
            (~known).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        ys, xs = np.nonzero(known)
        lut = np.full(nearest.max() + 1, UNKNOWN, dtype=np.int32)
        lut[nearest[ys, xs]] = labels[ys, xs]
        fill = mask & ~known & (dist <= FILL_RADIUS_PX)
        labels[fill] = lut[nearest[fill]]
    return labels


def segment_objects(
    rgb: np.ndarray,
    depth_m: np.ndarray,
    points: np.ndarray,
    valid: np.ndarray,
    plane: Plane,
    colours: ColourModel,
    fx: float,
) -> list[Segment]:
    mask = object_mask(points, valid, plane)
    labels = label_classes(rgb, mask, colours)
    edges = depth_edges(depth_m, plane)
    segments = []
    for ci in range(len(colours.classes)):
        m = ((labels == ci) & ~edges).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        n, comp = cv2.connectedComponents(m, connectivity=8)
        for k in range(1, n):
            seg = comp == k
            pts = points[seg]
            # Metric area of the segment: each pixel covers (z / f)^2 square metres.
            area = float(np.sum((pts[:, 2] / fx) ** 2))
            if area < MIN_AREA_M2:
                continue
            segments.append(Segment(ci, seg, pts, area))
    return segments
