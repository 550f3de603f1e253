"""Class from colour: every catalogue class has one distinct body colour.

Chromaticity (r, g, b) / (r + g + b) does not change when a light gets brighter or dimmer (ambient
and diffuse scale all channels alike), so one centre per class fits every scene of the envelope.
Specular highlights and very dark pixels (jenga's printed text, deep shadow) carry no colour and are
labelled UNKNOWN; the segmenter fills them from their neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graspstack.catalogue import CLASS_NAMES

UNKNOWN = -1
MIN_BRIGHTNESS = 45  # r + g + b below this (of 765) has too little signal for a colour


@dataclass(frozen=True)
class ColourModel:
    classes: tuple[str, ...]
    centres: np.ndarray  # (C, 3) median chromaticity per class
    radius: np.ndarray  # (C,) accept a pixel within this chromaticity distance of the centre

    def classify_pixels(self, rgb: np.ndarray) -> np.ndarray:
        """(..., 3) uint8 colours to class indices into `classes`, UNKNOWN where no class fits."""
        c = rgb.astype(np.float32)
        s = c.sum(axis=-1, keepdims=True)
        chrom = c / np.maximum(s, 1.0)
        d = np.linalg.norm(chrom[..., None, :] - self.centres.astype(np.float32), axis=-1)
        label = d.argmin(axis=-1)
        ok = (np.take_along_axis(d, label[..., None], axis=-1)[..., 0] < self.radius[label]) & (
            s[..., 0] >= MIN_BRIGHTNESS
        )
        return np.where(ok, label, UNKNOWN)

    def to_json(self) -> dict:
        return {
            c: {
                "chromaticity": [round(float(v), 4) for v in self.centres[i]],
                "radius": round(float(self.radius[i]), 4),
            }
            for i, c in enumerate(self.classes)
        }

    @classmethod
    def from_json(cls, data: dict) -> ColourModel:
        classes = tuple(c for c in CLASS_NAMES if c in data)
        return cls(
            classes,
            np.array([data[c]["chromaticity"] for c in classes]),
            np.array([data[c]["radius"] for c in classes]),
        )


def fit_colour_model(samples: dict[str, np.ndarray]) -> ColourModel:
    """Centres from per-class pixel samples ((N, 3) uint8 RGB); radius from their spread.

    The radius is the 90th percentile distance to the centre, at least 0.03, and at most 45% of the
    distance to the nearest other centre so that no two classes overlap.
    """
    classes = tuple(c for c in CLASS_NAMES if c in samples)
    chroms = []
    for c in classes:
        px = samples[c].astype(np.float64)
        s = px.sum(axis=1)
        px = px[s >= MIN_BRIGHTNESS]
        chroms.append(px / px.sum(axis=1, keepdims=True))
    centres = np.array([np.median(ch, axis=0) for ch in chroms])
    radius = []
    for i, ch in enumerate(chroms):
        spread = np.percentile(np.linalg.norm(ch - centres[i], axis=1), 90)
        nearest = min(np.linalg.norm(centres[i] - centres[j]) for j in range(len(classes)) if j != i)
        radius.append(float(np.clip(spread * 1.5, 0.03, 0.45 * nearest)))
    return ColourModel(classes, centres, np.array(radius))


def lab_colour_samples(
    scenes_per_slice: int = 12, seed: int = 7001, per_object: int = 400
) -> dict[str, np.ndarray]:
    """Pixel colours of each class from lab scenes (both slices), cut out with the lab's masks.

    Generator of the `colour` section of models/baselines/scripted_priors.json (with fit_colour_model).
    """
    from lab.cell import LabCell
    from lab.scenes import render_scene

    rng = np.random.default_rng(seed)
    samples: dict[str, list[np.ndarray]] = {c: [] for c in CLASS_NAMES}
    cell = LabCell()
    try:
        for slice_name in ("nominal", "hard"):
            for i in range(scenes_per_slice):
                r = render_scene(cell, slice_name, seed, i)
                for k, obj in enumerate(r.scene.objects):
                    px = r.rgb[r.masks == k + 1]
                    if len(px):
                        samples[obj.class_name].append(px[rng.integers(0, len(px), size=per_object)])
    finally:
        cell.close()
    return {c: np.concatenate(v) for c, v in samples.items() if v}
