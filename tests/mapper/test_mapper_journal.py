"""The journal of acknowledged batches (segment files): what was appended is replayed in order after a
reopen, a torn tail (a process killed inside a write) is cut off, checkpointed segments are dropped, and
a journal left by an earlier version (a SQLite file) is taken over."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge_testing import edge, workload
from mapper import journal
from mapper.journal import JournalFile
from mapper.store import EdgeStore
from netmapper_api.v1 import mapper_pb2


def _rows(first: int, n: int, size: int = 100) -> list[tuple[int, int, bytes]]:
    return [(p, p * 1000, bytes([p % 256]) * size) for p in range(first, first + n)]


def test_appended_rows_come_back_in_order_after_a_reopen(tmp_path: Path) -> None:
    j = JournalFile(tmp_path / "e.db.journal")
    j.append(_rows(1, 3))
    j.append(_rows(4, 2))
    j.close()
    again = JournalFile(tmp_path / "e.db.journal")
    assert list(again.after(0)) == _rows(1, 5)
    assert [r[0] for r in again.after(3)] == [4, 5]
    again.append(_rows(6, 1))
    assert [r[0] for r in again.after(0)] == [1, 2, 3, 4, 5, 6]


def test_a_torn_tail_is_cut_off_and_appending_goes_on(tmp_path: Path) -> None:
    j = JournalFile(tmp_path / "e.db.journal")
    j.append(_rows(1, 3))
    j.close()
    (seg,) = (tmp_path / "e.db.journal.d").iterdir()
    whole = seg.stat().st_size
    with seg.open("ab") as f:  # a record whose write was cut short by kill -9
        f.write(journal._record((4, 0, b"x" * 500))[:37])
    again = JournalFile(tmp_path / "e.db.journal")
    assert seg.stat().st_size == whole
    again.append(_rows(4, 1))
    assert [r[0] for r in again.after(0)] == [1, 2, 3, 4]


def test_a_corrupt_record_ends_the_replay_of_its_segment(tmp_path: Path) -> None:
    j = JournalFile(tmp_path / "e.db.journal")
    j.append(_rows(1, 3))
    j.close()
    (seg,) = (tmp_path / "e.db.journal.d").iterdir()
    data = bytearray(seg.read_bytes())
    data[-5] ^= 0xFF  # a flipped bit in the last record's payload
    seg.write_bytes(bytes(data))
    assert [r[0] for r in JournalFile(tmp_path / "e.db.journal").after(0)] == [1, 2]


def test_checkpointed_segments_are_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "SEGMENT_BYTES", 1000)  # a new segment every few rows
    j = JournalFile(tmp_path / "e.db.journal")
    for p in range(1, 31, 3):
        j.append(_rows(p, 3))
    segments = lambda: sorted(s.name for s in (tmp_path / "e.db.journal.d").iterdir())  # noqa: E731
    assert len(segments()) > 3
    j.drop_through(14)
    assert [r[0] for r in j.after(14)] == list(range(15, 31))
    assert min(r[0] for r in j.after(0)) <= 15  # a segment holding 15 is kept whole
    j.drop_through(30)
    assert segments() == [] and list(j.after(0)) == []
    j.append(_rows(31, 1))
    assert [r[0] for r in JournalFile(tmp_path / "e.db.journal").after(0)] == [31]


def test_a_failed_append_leaves_no_torn_record(tmp_path: Path) -> None:
    j = JournalFile(tmp_path / "e.db.journal")
    j.append(_rows(1, 1))

    class FullDisk:
        def __init__(self, f: object) -> None:
            self.f = f

        def write(self, data: bytes) -> int:
            self.f.write(data[:10])  # type: ignore[attr-defined]
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> object:
            return getattr(self.f, name)

    j._file = FullDisk(j._file)  # type: ignore[assignment]
    with pytest.raises(OSError):
        j.append(_rows(2, 1))
    j._file = j._file.f  # type: ignore[union-attr]
    j.append(_rows(2, 1))
    assert [r[0] for r in JournalFile(tmp_path / "e.db.journal").after(0)] == [1, 2]


def test_a_journal_of_the_earlier_sqlite_format_is_replayed(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    with EdgeStore(db):
        pass
    batch = mapper_pb2.ReportEdgesRequest(node="n", edges=[edge(workload("a"), workload("b"))]).SerializeToString()
    with sqlite3.connect(f"{db}.journal") as old:
        old.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY, received INTEGER NOT NULL, batch BLOB NOT NULL)")
        old.execute("INSERT INTO journal VALUES (1, ?, ?)", (time.time_ns(), batch))
    old.close()
    with EdgeStore(db) as store:
        assert len(store) == 1
    assert not Path(f"{db}.journal").exists()
    with EdgeStore(db) as store:
        assert len(store) == 1 and store.list()[0].count == 1


def test_with_fsync_every_append_and_new_segment_is_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--fsync: the appends and the segments' directory entries go through fsync (counted), and read back."""
    import os

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(journal.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(journal, "SEGMENT_BYTES", 1000)
    j = JournalFile(tmp_path / "e.db.journal", fsync=True)
    for p in range(1, 13, 3):
        j.append(_rows(p, 3))
    segments = len(list((tmp_path / "e.db.journal.d").iterdir()))
    assert segments > 1
    assert len(synced) == 4 + segments  # one per append, one per new segment's directory entry
    j.close()
    assert [r[0] for r in JournalFile(tmp_path / "e.db.journal").after(0)] == list(range(1, 13))
