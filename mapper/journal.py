"""The journal of acknowledged batches: append-only segment files in the directory PATH.journal.d.

Every batch the store merged is appended here (by the group commit thread) before it is acknowledged,
and replayed after a restart on top of the last checkpoint of the edge file; a checkpoint then drops the
segments it includes. Each record is

    u32 payload length | u32 CRC-32 of the rest | u64 position | i64 received ns | payload

where the payload is the serialized ReportEdgesRequest as received. A record is written with one
write(): a process killed at any moment leaves whole records in the page cache, at worst followed by a
torn tail, which the CRC detects and the next open cuts off. With fsync=True every append is also
flushed to the disk (and a new segment's directory entry), so acknowledged batches survive power loss.

Plain files rather than a SQLite table: each batch is written once (not to a WAL and then to the
database) and a checkpoint drops a segment by unlinking it (not by freeing its pages one by one).
Measured on 300 batches of 218 kB: 0.87 us per edge in SQLite, 0.06 us here.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Final

log = logging.getLogger(__name__)

JournalRow = tuple[int, int, bytes]  # (position, received ns, serialized ReportEdgesRequest)

_HEADER: Final = struct.Struct("<IIQq")  # length, crc, position, received
_BODY: Final = struct.Struct("<Qq")  # what the CRC covers before the payload
# A new segment is started once the current one holds this much, so checkpoints can drop the old ones.
SEGMENT_BYTES: Final[int] = 16 * 1024 * 1024
_SUFFIX: Final[str] = ".seg"


def _record(row: JournalRow) -> bytes:
    position, received, payload = row
    body = _BODY.pack(position, received)
    crc = zlib.crc32(payload, zlib.crc32(body))
    return _HEADER.pack(len(payload), crc, position, received) + payload


def _records(data: bytes, name: str) -> Iterator[tuple[int, JournalRow]]:
    """(end offset, row) of each whole record in a segment's bytes; stops at the first torn or corrupt one."""
    offset = 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            log.warning("journal segment %s: torn record header at byte %d, ignored", name, offset)
            return
        length, crc, position, received = _HEADER.unpack_from(data, offset)
        start, end = offset + _HEADER.size, offset + _HEADER.size + length
        payload = data[start:end]
        if end > len(data) or zlib.crc32(payload, zlib.crc32(_BODY.pack(position, received))) != crc:
            log.warning("journal segment %s: torn or corrupt record at byte %d, ignored with what follows", name, offset)
            return
        offset = end
        yield offset, (position, received, payload)


class JournalFile:
    """The journal; one writer (callers serialise access)."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self._dir = path.with_name(path.name + ".d")
        self._dir.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        # first position of each segment -> its path, in order; the last one is appended to
        self._segments: dict[int, Path] = {}
        self._last_position = 0
        for seg in sorted(self._dir.glob(f"*{_SUFFIX}")):
            try:
                first = int(seg.stem)
            except ValueError:
                log.warning("journal: ignoring %s (not a segment name)", seg)
                continue
            self._segments[first] = seg
        self._file: BinaryIO | None = None
        self._size = 0
        if self._segments:
            self._open_last()
        self._import_legacy(path)

    def _open_last(self) -> None:
        """Open the newest segment for appending, cut after its last whole record."""
        first = max(self._segments)
        seg = self._segments[first]
        data = seg.read_bytes()
        whole = 0
        for whole, row in _records(data, seg.name):
            self._last_position = max(self._last_position, row[0])
        self._file = seg.open("r+b", buffering=0)
        if whole < len(data):
            self._file.truncate(whole)
        self._file.seek(whole)
        self._size = whole

    def _import_legacy(self, path: Path) -> None:
        """A journal written by an earlier version (a SQLite file at PATH.journal) is moved into segments."""
        if not path.is_file():
            return
        db = sqlite3.connect(path)
        try:
            rows = list(db.execute("SELECT id, received, batch FROM journal ORDER BY id"))
        except sqlite3.DatabaseError as exc:
            log.warning("journal: cannot read the earlier journal %s (%s); left in place", path, exc)
            return
        finally:
            db.close()
        fresh = [row for row in rows if row[0] > self._last_position]
        if fresh:
            self.append(fresh)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        log.info("journal: moved %d batches from the earlier journal file %s", len(fresh), path)

    def after(self, through: int) -> Iterator[JournalRow]:
        """Every journaled batch with a position above `through`, in order."""
        for _, seg in sorted(self._segments.items()):
            for _, row in _records(seg.read_bytes(), seg.name):
                if row[0] > through:
                    yield row

    def append(self, rows: Sequence[JournalRow]) -> None:
        """Append the rows (in one write); on failure the journal is left as it was."""
        if not rows:
            return
        if self._file is None or self._size >= SEGMENT_BYTES:
            self._start_segment(rows[0][0])
        assert self._file is not None
        data = b"".join(_record(row) for row in rows)
        try:
            written = self._file.write(data)
            if written != len(data):
                raise OSError(f"short write to the journal ({written} of {len(data)} bytes)")
            if self._fsync:
                os.fsync(self._file.fileno())
        except BaseException:
            self._file.truncate(self._size)  # no torn record before the next append
            self._file.seek(self._size)
            raise
        self._size += len(data)
        self._last_position = max(self._last_position, rows[-1][0])

    def _start_segment(self, first: int) -> None:
        if self._file is not None:
            self._file.close()
        seg = self._dir / f"{first:020d}{_SUFFIX}"
        self._file = seg.open("ab", buffering=0)
        self._size = self._file.tell()
        self._segments[first] = seg
        if self._fsync:
            fd = os.open(self._dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def drop_through(self, through: int) -> None:
        """Forget the batches up to `through` (a checkpoint holds them): unlink the segments holding only those."""
        firsts = sorted(self._segments)
        for i, first in enumerate(firsts):
            current = i == len(firsts) - 1
            done = (self._last_position <= through) if current else (firsts[i + 1] <= through + 1)
            if not done:
                continue
            if current and self._file is not None:
                self._file.close()
                self._file = None
                self._size = 0
            self._segments.pop(first).unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
