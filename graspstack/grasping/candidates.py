"""Antipodal grasp candidates per object class, in the object frame, computed once from the mesh.

A candidate is a contact pair (two points where a line through the object meets its surface, both
inside the friction cone about that line) times an approach direction around the line. Contacts are
found by intersecting lines with every triangle rather than by pairing sampled points, so meshes made
of overlapping convex pieces (duck, teddy) or with cavities (mug) need no consistent normals: any
pair of hits on a line is a contact pair, and the pairs where a finger would sit inside material are
removed afterwards by the collision test of the fingers' swept columns against the object's own
surface samples.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path

import numpy as np

from graspstack.catalogue import CATALOGUE, pybullet_data_path
from graspstack.grasping.gripper import DEFAULT_GRIPPER, GripperSpec
from graspstack.object_models import ObjectModel, object_model

NUM_LINES = 800  # lines intersected with the mesh to find contact pairs
NUM_APPROACHES = 16  # approach directions around each contact line, every 22.5 degrees
MAX_PAIRS = 300  # contact pairs kept per class (seeded subsample), bounds planning time
NUM_COLLISION_POINTS = 3000  # surface samples for the self-collision test
NUM_NEIGHBOUR_POINTS = 500  # coarser samples the planner tests neighbours with
MIN_CONTACT_DEPTH_M = 0.008  # contact at least this far up the finger from its tip
COLLISION_MARGIN_M = 0.002
# Precomputed candidates ship here (a few hundred kB); a file is used only if its key matches.
CACHE_DIR = Path(__file__).resolve().parents[2] / "models" / "grasps"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class GraspCandidates:
    """K candidates of one class; each places a contact frame (x = closing, z = approach) at `centre`."""

    class_name: str
    rotation: np.ndarray  # (K, 3, 3) columns x, y, z of the contact frame in the object frame
    centre: np.ndarray  # (K, 3) midpoint of the two contacts, object frame
    contact_width_m: np.ndarray  # (K,) distance between the contacts
    opening_m: np.ndarray  # (K,) pre-grasp opening
    max_depth_m: (
        np.ndarray
    )  # (K,) deepest the fingertips may pass the contact centre without hitting the object
    quality: np.ndarray  # (K,) in [0, 1], pose independent
    com_offset: np.ndarray  # (K, 3) centre of mass minus contact centre, object frame
    neighbour_points: np.ndarray  # (M, 3) surface samples used when this class is someone's neighbour


def surface_samples(model: ObjectModel, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n points sampled by area on the mesh, with the index of the face each lies on."""
    return model.sample_surface_with_faces(n, seed)


def face_normals(model: ObjectModel) -> np.ndarray:
    tri = model.vertices[model.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def centre_of_mass(class_name: str) -> np.ndarray:
    """The URDF's inertial origin in the object frame: where the simulated gravity pulls."""
    urdf = Path(pybullet_data_path()) / CATALOGUE[class_name].urdf
    origin = ET.parse(urdf).getroot().find("link/inertial/origin")
    xyz = origin.get("xyz", "0 0 0") if origin is not None else "0 0 0"
    return np.array([float(v) for v in xyz.split()])


def line_hits(
    model: ObjectModel, origins: np.ndarray, dirs: np.ndarray, chunk: int = 64
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each line o + t d (t any sign), the sorted parameters t and face ids where it meets the mesh."""
    tri = model.vertices[model.faces]
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    out = []
    for s in range(0, len(origins), chunk):
        o, d = origins[s : s + chunk, None, :], dirs[s : s + chunk, None, :]  # Möller–Trumbore, vectorised
        p = np.cross(d, e2[None])
        det = np.einsum("lfk,fk->lf", p, e1)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tv = o - v0[None]
        u = np.einsum("lfk,lfk->lf", tv, p) * inv
        q = np.cross(tv, e1[None])
        v = np.einsum("lfk,lfk->lf", np.broadcast_to(d, q.shape), q) * inv
        t = np.einsum("lfk,fk->lf", q, e2) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1)
        for row in range(hit.shape[0]):
            faces = np.nonzero(hit[row])[0]
            order = np.argsort(t[row, faces])
            out.append((t[row, faces][order], faces[order]))
    return out


def face_components(model: ObjectModel) -> np.ndarray:
    """Connected piece (faces sharing vertices, up to duplicated positions) of every face."""
    _, vid = np.unique(np.round(model.vertices, 7), axis=0, return_inverse=True)
    parent = np.arange(vid.max() + 1)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b, c in vid.reshape(-1)[model.faces]:
        ra, rb, rc = find(a), find(b), find(c)
        parent[rb] = ra
        parent[find(rc)] = ra
    return np.array([find(v) for v in vid.reshape(-1)[model.faces[:, 0]]])


def outside_gaps(faces: np.ndarray, component: np.ndarray) -> np.ndarray:
    """For hits sorted along a line: is each of the len+1 gaps between them outside all material?

    Each connected piece of the mesh is taken as a closed solid (ray parity per piece), so overlapping
    convex pieces count as their union. A piece the line meets an odd number of times is not closed
    there and is ignored rather than trusted.
    """
    comp = component[faces]
    outside = np.ones(len(faces) + 1, dtype=bool)
    for piece in np.unique(comp):
        mine = comp == piece
        if mine.sum() % 2:
            continue
        inside = np.concatenate([[0], np.cumsum(mine)]) % 2 == 1
        outside &= ~inside
    return outside


def _antipodal_pairs(
    model: ObjectModel, com: np.ndarray, gripper: GripperSpec, seed: int
) -> tuple[np.ndarray, ...]:
    """Contact pairs (p1, p2, cone angle used) on lines along sampled surface normals.

    A pair is two hits with open space before the first and after the second, so a finger can stand
    there; material or holes between them are allowed (a mug wall pinched at the rim is a grasp).
    """
    normals = face_normals(model)
    component = face_components(model)
    # Half the lines run along surface normals (thin walls, rims, handles); half pass near the centre
    # of mass in random directions (whole-body pinches across lumpy, faceted shapes like the teddy).
    points, faces = surface_samples(model, NUM_LINES // 2, seed)
    rng = np.random.default_rng(seed + 3)
    through = com + rng.normal(scale=0.25 * model.extent, size=(NUM_LINES // 2, 3))
    random_dirs = rng.normal(size=(NUM_LINES // 2, 3))
    points = np.vstack([points, through])
    dirs = np.vstack([normals[faces], random_dirs / np.linalg.norm(random_dirs, axis=1, keepdims=True)])
    cos_cone = np.cos(gripper.friction_cone_rad)
    p1s, p2s, angles = [], [], []
    for point, d, (t, f) in zip(points, dirs, line_hits(model, points, dirs), strict=True):
        # The friction cone is symmetric in the normal's sign, so the mesh's winding does not matter.
        cos_at = np.minimum(np.abs(normals[f] @ d), 1.0)
        free = outside_gaps(f, component)
        for i in range(len(t)):
            for j in range(i + 1, len(t)):
                width = t[j] - t[i]
                if not (free[i] and free[j + 1] and gripper.fits(width)):
                    continue
                if min(cos_at[i], cos_at[j]) < cos_cone:
                    continue
                p1s.append(point + t[i] * d)
                p2s.append(point + t[j] * d)
                angles.append(np.arccos(min(cos_at[i], cos_at[j])))
    return np.asarray(p1s).reshape(-1, 3), np.asarray(p2s).reshape(-1, 3), np.asarray(angles)


def _frames(axes: np.ndarray) -> np.ndarray:
    """(P*A, 3, 3) contact frames: x along each axis, z turning around it in NUM_APPROACHES steps."""
    helper = np.where(np.abs(axes[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    u = np.cross(axes, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(axes, u)
    theta = 2 * np.pi * np.arange(NUM_APPROACHES) / NUM_APPROACHES
    z = np.cos(theta)[None, :, None] * u[:, None] + np.sin(theta)[None, :, None] * v[:, None]
    x = np.broadcast_to(axes[:, None], z.shape)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1).reshape(-1, 3, 3)


def column_depth_limit(
    points_local: np.ndarray, opening: np.ndarray, gripper: GripperSpec, margin: float = COLLISION_MARGIN_M
) -> np.ndarray:
    """How far the fingertips may pass the contact centre (along z) before the gripper touches a point.

    points_local: (K, M, 3) points in each candidate's contact frame; opening: (K,). The fingers and
    the palm are extended backwards without end, so the answer also covers the approach path.
    Returns (K,), +inf where nothing is in the way.
    """
    x, y, z = points_local[..., 0], points_local[..., 1], points_local[..., 2]
    half = opening[:, None] / 2
    ax = np.abs(x)
    in_finger = (
        (np.abs(y) < gripper.finger_width_m / 2 + margin)
        & (ax > half - margin)
        & (ax < half + gripper.finger_thickness_m + margin)
    )
    in_palm = (ax < gripper.palm_length_m / 2 + margin) & (np.abs(y) < gripper.palm_width_m / 2 + margin)
    finger_limit = np.where(in_finger, z, np.inf).min(axis=1) - margin
    palm_limit = np.where(in_palm, z, np.inf).min(axis=1) + gripper.finger_depth_m - margin
    return np.minimum(finger_limit, palm_limit)


def compute_candidates(
    class_name: str, gripper: GripperSpec = DEFAULT_GRIPPER, seed: int = 0
) -> GraspCandidates:
    model = object_model(class_name)
    rng = np.random.default_rng(seed)
    com = centre_of_mass(class_name)
    p1, p2, cone_angle = _antipodal_pairs(model, com, gripper, seed)
    # Many lines find nearly the same pair (a mug's rim offers hundreds): keep one pair per cell of
    # (centre on a 5 mm grid, axis direction on a 0.15 grid), then subsample what is left.
    axis = (p2 - p1) / np.linalg.norm(p2 - p1, axis=1, keepdims=True)
    axis *= np.sign(axis[np.arange(len(axis)), np.argmax(np.abs(axis), axis=1)])[:, None]
    key = np.hstack([np.round((p1 + p2) / 2 / 0.005), np.round(axis / 0.15)])
    _, first = np.unique(key, axis=0, return_index=True)
    first = np.sort(first)
    p1, p2, cone_angle = p1[first], p2[first], cone_angle[first]
    if len(p1) > MAX_PAIRS:
        keep = np.sort(rng.choice(len(p1), MAX_PAIRS, replace=False))
        p1, p2, cone_angle = p1[keep], p2[keep], cone_angle[keep]
    width = np.linalg.norm(p2 - p1, axis=1)
    axes = (p2 - p1) / width[:, None]
    centre_pair = (p1 + p2) / 2

    rotation = _frames(axes)
    centre = np.repeat(centre_pair, NUM_APPROACHES, axis=0)
    contact_width = np.repeat(width, NUM_APPROACHES)
    opening = np.array([gripper.opening_for(w) for w in contact_width])

    cloud, _ = surface_samples(model, NUM_COLLISION_POINTS, seed + 1)
    max_depth = np.empty(len(centre))
    for s in range(0, len(centre), 256):  # chunks keep the (K, M, 3) array small
        local = np.einsum("kji,kmj->kmi", rotation[s : s + 256], cloud[None] - centre[s : s + 256, None])
        max_depth[s : s + 256] = column_depth_limit(local, opening[s : s + 256], gripper)

    # Pose-independent quality: how far inside the friction cone both contacts are, and the opening
    # to spare (slack for pose error; 2 cm or more counts as full). How much gravity twists the object
    # about the grasp axis depends on the pose, so the planner scores that from `com_offset`.
    cone_margin = 1.0 - cone_angle / gripper.friction_cone_rad
    spare = gripper.max_opening_m - width - 2 * gripper.clearance_m
    quality_pair = 0.7 * cone_margin + 0.3 * np.clip(spare / 0.02, 0.0, 1.0)
    quality = np.repeat(quality_pair, NUM_APPROACHES)
    com_offset = centre_of_mass(class_name) - centre

    ok = max_depth >= MIN_CONTACT_DEPTH_M
    neighbour_points, _ = surface_samples(model, NUM_NEIGHBOUR_POINTS, seed + 2)
    return GraspCandidates(
        class_name,
        rotation[ok],
        centre[ok],
        contact_width[ok],
        opening[ok],
        max_depth[ok],
        quality[ok],
        com_offset[ok],
        neighbour_points,
    )


def cache_key(class_name: str, gripper: GripperSpec = DEFAULT_GRIPPER, seed: int = 0) -> str:
    """Changes whenever anything the candidates depend on changes: mesh, gripper, sampling settings."""
    model = object_model(class_name)
    settings = {
        "format": CACHE_FORMAT,
        "gripper": asdict(gripper),
        "seed": seed,
        "sampling": [NUM_LINES, NUM_APPROACHES, MAX_PAIRS, NUM_COLLISION_POINTS, NUM_NEIGHBOUR_POINTS],
        "margins": [MIN_CONTACT_DEPTH_M, COLLISION_MARGIN_M],
        "com": centre_of_mass(class_name).tolist(),
    }
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(model.vertices.tobytes())
    h.update(model.faces.tobytes())
    return h.hexdigest()[:16]


def save_candidates(cand: GraspCandidates, path: Path, key: str) -> None:
    arrays = {f.name: getattr(cand, f.name) for f in fields(cand) if f.name != "class_name"}
    np.savez_compressed(path, key=key, **{k: v.astype(np.float32) for k, v in arrays.items()})


def load_candidates(class_name: str, path: Path, key: str) -> GraspCandidates | None:
    if not path.exists():
        return None
    with np.load(path) as data:
        if str(data["key"]) != key:
            return None
        arrays = {
            f.name: data[f.name].astype(np.float64) for f in fields(GraspCandidates) if f.name != "class_name"
        }
    return GraspCandidates(class_name, **arrays)


@cache
def grasp_candidates(class_name: str) -> GraspCandidates:
    """The default gripper's candidates for a class: from models/grasps/ when its file is current,
    computed otherwise (about a second per class); kept in memory either way."""
    key = cache_key(class_name)
    loaded = load_candidates(class_name, CACHE_DIR / f"{class_name}.npz", key)
    return loaded if loaded is not None else compute_candidates(class_name)


def write_cache() -> None:
    """Regenerate models/grasps/: `python -m graspstack.grasping` after changing the gripper or sampling."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for name in CATALOGUE:
        save_candidates(compute_candidates(name), CACHE_DIR / f"{name}.npz", cache_key(name))
        print(name, (CACHE_DIR / f"{name}.npz").stat().st_size, "bytes")
