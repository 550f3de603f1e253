"""The revision A/B: another revision checked out beside this tree, both timed on the same frames."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def revisions(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is a folder of the repository, not installed
    return importlib.import_module("benchmarks.revisions")


def test_both_trees_time_the_same_frames_and_the_worktree_is_removed(tmp_path, revisions):
    from lab.dataset import render_dataset

    render_dataset(tmp_path / "nominal", 2, seed=31, slice_name="nominal", progress=False)
    before = _worktrees()
    result = revisions.compare("HEAD", tmp_path / "nominal", 2, "mean", passes=2)
    for tree in ("HEAD", "this tree"):
        assert result[tree]["frames"] == 4  # two passes of two frames
        assert result[tree]["total_ms"]["n"] == 4 and result[tree]["total_ms"]["p50"] is not None
    assert _worktrees() == before


def _worktrees() -> list[str]:
    out = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_a_revision_that_cannot_time_is_an_error_not_a_result(tmp_path, revisions):
    from lab.dataset import render_dataset

    render_dataset(tmp_path / "nominal", 1, seed=31, slice_name="nominal", progress=False)
    with pytest.raises(RuntimeError, match="no-such-predictor"):
        revisions.compare("HEAD", tmp_path / "nominal", 1, "no-such-predictor", passes=1)
