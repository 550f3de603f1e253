"""Stage 1's stray cells: a class's cells that no instance of that class holds become proposals."""

from __future__ import annotations

import numpy as np

from graspstack.catalogue import CLASS_NAMES
from graspstack.pose_model.decode import Instance, stray_cells
from graspstack.pose_model.network import N_CLASSES, OUTPUT_STRIDE

H, W = 60, 80  # output cells of a 320 x 240 input
LEGO = CLASS_NAMES.index("lego") + 1
TEDDY = CLASS_NAMES.index("teddy") + 1


def _logits(labelled: dict[int, list[tuple[int, int]]]) -> np.ndarray:
    logits = np.full((N_CLASSES, H, W), -4.0, np.float32)
    logits[0] = 4.0  # background
    for ci, cells in labelled.items():
        for r, c in cells:
            logits[ci, r, c], logits[0, r, c] = 4.0, -4.0
    return logits


def _instance(name: str, cells: list[tuple[int, int]]) -> Instance:
    return Instance(name, np.array(cells), np.zeros(2), np.eye(3), 0.7, 0.9)


def test_lego_cells_no_lego_instance_holds_are_proposed_where_they_lie():
    held = [(10, 10), (10, 11), (11, 10), (11, 11)]  # a lego stage 1 decoded
    beside_teddy = [(30, 40), (30, 41), (31, 40)]  # merged into the teddy beside it
    lone = [(50, 70)]  # a single cell: noise at this size
    teddy = [(30, 42), (31, 42), (32, 42)]
    logits = _logits({LEGO: held + beside_teddy + lone, TEDDY: teddy})
    depth = np.full((H * OUTPUT_STRIDE, W * OUTPUT_STRIDE), 0.80, np.float32)
    s = OUTPUT_STRIDE
    depth[30 * s : 32 * s, 40 * s : 42 * s] = 0.75  # the lego stands 5 cm above the table here
    depth[30 * s + s // 2, 40 * s + s // 2] = 0.0  # dropped pixels at the cells' centres ...
    depth[31 * s + s // 2, 40 * s + s // 2] = 0.0
    instances = [_instance("lego", held), _instance("teddy", beside_teddy + teddy)]

    found = stray_cells(logits, instances, depth, "lego", min_cells=2, limit=3)

    assert len(found) == 1  # not the held lego, not the lone cell
    centre, z = found[0]
    expected_u = np.mean([c for _, c in beside_teddy]) * s + (s - 1) / 2.0
    expected_v = np.mean([r for r, _ in beside_teddy]) * s + (s - 1) / 2.0
    assert np.allclose(centre, [expected_u, expected_v])
    assert z == 0.75  # ... but the cells' other pixels still give its depth


def test_strays_come_largest_first_up_to_the_limit_and_need_some_depth():
    sizes = (2, 4, 3)  # cells in a row, at rows 5, 15 and 25
    logits = _logits({LEGO: [(5 + 10 * k, 5 + i) for k, n in enumerate(sizes) for i in range(n)]})
    depth = np.full((H * OUTPUT_STRIDE, W * OUTPUT_STRIDE), 0.6, np.float32)
    found = stray_cells(logits, [], depth, "lego", min_cells=2, limit=2)
    rows = [round((v - (OUTPUT_STRIDE - 1) / 2.0) / OUTPUT_STRIDE) for (_, v), _ in found]
    assert rows == [15, 25]  # the four cells, then the three

    assert stray_cells(logits, [], np.zeros_like(depth), "lego", min_cells=2, limit=3) == []
