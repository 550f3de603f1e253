"""The table textures are made once per machine by whichever render worker gets there first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2

MAKE_TEXTURES = "from lab.cell import _texture_files; _texture_files()"


def test_parallel_workers_making_the_textures_all_succeed(tmp_path: Path) -> None:
    # A fresh machine: no texture folder yet, and several render workers start at once.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    workers = [
        subprocess.Popen([sys.executable, "-c", MAKE_TEXTURES], env=env, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    errors = [w.communicate()[1].decode() for w in workers]
    assert [w.returncode for w in workers] == [0] * 6, errors
    folder = tmp_path / "graspstack_textures_v1"
    assert sorted(p.name for p in folder.iterdir()) == [f"table_{i}.png" for i in range(4)]
    assert all(cv2.imread(str(p)).shape == (256, 256, 3) for p in folder.iterdir())
