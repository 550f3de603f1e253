"""Shared fixtures: rendered lab scenes are cheap (a fraction of a second) but shared per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def lab_cell():
    from lab.cell import LabCell

    cell = LabCell()
    yield cell
    cell.close()


@pytest.fixture(scope="session")
def nominal_scenes(lab_cell):
    from lab.scenes import render_scene

    return [render_scene(lab_cell, "nominal", 4242, i) for i in range(6)]


@pytest.fixture(scope="session")
def hard_scenes(lab_cell):
    from lab.scenes import render_scene

    return [render_scene(lab_cell, "hard", 4242, i) for i in range(3)]
