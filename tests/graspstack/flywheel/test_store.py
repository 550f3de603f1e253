"""The durable store: idempotent by case id, content-addressed blobs, durable SQLite settings."""

from __future__ import annotations

from graspstack.flywheel.store import CaseStore


def test_storing_twice_keeps_one_case_and_one_copy_of_each_blob(store, cases):
    assert store.put(cases[0], "1-0") is True
    assert store.put(cases[0], "2-0") is False  # a redelivery
    assert store.count() == 1
    assert len([p for p in store.blob_dir.rglob("*") if p.is_file()]) == 2
    back = store.get(cases[0].case_id)
    assert back.rgb == cases[0].rgb and back.depth == cases[0].depth and back.meta() == cases[0].meta()


def test_same_frame_other_trigger_is_another_case_sharing_the_blobs(store, cases):
    other = store.get(store.put(cases[0]) and cases[0].case_id)
    other.trigger = "grasp_failure"
    assert store.put(other) is True
    assert store.count() == 2
    assert len([p for p in store.blob_dir.rglob("*") if p.is_file()]) == 2


def test_index_is_durable_and_survives_reopening(tmp_path, cases):
    s = CaseStore(tmp_path / "s")
    assert s.query("PRAGMA journal_mode")[0][0] == "wal"
    assert s.query("PRAGMA synchronous")[0][0] == 2  # FULL
    for c in cases[:5]:
        s.put(c)
    s.close()
    again = CaseStore(tmp_path / "s")
    assert again.count() == 5 and again.writable()
    assert again.size_bytes() > sum(len(c.rgb) + len(c.depth) for c in cases[:5])
    again.close()
