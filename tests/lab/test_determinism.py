"""Same seed, same scenes, whatever the number of worker processes."""

import hashlib

from lab.dataset import render_dataset


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "dataset.json"):
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_on_one_or_two_workers(tmp_path):
    render_dataset(tmp_path / "one", 4, seed=11, slice_name="hard", workers=1, progress=False)
    render_dataset(tmp_path / "two", 4, seed=11, slice_name="hard", workers=2, progress=False)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")
    render_dataset(tmp_path / "other", 4, seed=12, slice_name="hard", workers=1, progress=False)
    assert _digest(tmp_path / "other") != _digest(tmp_path / "one")


def test_extending_a_dataset_renders_only_new_scenes(tmp_path):
    render_dataset(tmp_path / "a", 2, seed=3, slice_name="nominal", workers=1, progress=False)
    render_dataset(tmp_path / "a", 2, seed=3, slice_name="nominal", workers=1, start=2, progress=False)
    render_dataset(tmp_path / "b", 4, seed=3, slice_name="nominal", workers=1, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
