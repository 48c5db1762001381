"""The mapper's SQLite file: one row per edge, plus a journal of acknowledged batches.

The store decides what to write; this module only knows the file and the thread that writes it.
Two kinds of write, both by one thread (GroupCommit), so they never wait on each other's locks:

- journal commits, every few milliseconds: the raw bytes of every batch merged since the last commit,
  in one transaction. A batch is acknowledged only after the commit that holds it, so `kill -9` at any
  moment loses nothing acknowledged. One row per batch: cheap however many edges it holds.
- checkpoints, every `checkpoint_interval` seconds (and on close, reset, expiry): the records changed
  since the last one, the last applied sequence of every sniffer instance, and the journal position the
  records include, in one transaction that also drops the journal rows up to that position.

Loading reads the edges and replays the journal rows after the checkpoint's position. The applied
sequences make a resent batch (a lost acknowledgement) merge once, also across a restart.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from netmapper_api.keys import ServiceName

log = logging.getLogger(__name__)

_SCHEMA: Final[str] = """
CREATE TABLE IF NOT EXISTS edges (
    id    INTEGER PRIMARY KEY,  -- the record's row, assigned by the store (a rowid: cheap upserts)
    edge  BLOB NOT NULL,        -- serialized netmapper.v1.Edge (identity, attributes, times, count, nodes)
    extra TEXT                  -- json of what the Edge proto cannot hold (more than one Service), or NULL
);
CREATE TABLE IF NOT EXISTS journal (
    id       INTEGER PRIMARY KEY,  -- position: the store numbers merged batches 1, 2, 3 ...
    received INTEGER NOT NULL,     -- mapper clock (ns) when merged: replay validates against it
    batch    BLOB NOT NULL         -- serialized netmapper.v1.ReportEdgesRequest as received
);
CREATE TABLE IF NOT EXISTS applied (
    instance TEXT PRIMARY KEY,     -- a sniffer run (ReportEdgesRequest.instance)
    sequence INTEGER NOT NULL,     -- the highest batch of that run merged
    seen     INTEGER NOT NULL      -- mapper clock (ns) of that batch: old instances are forgotten
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL         -- 'journal_through': the journal position the edges include
);
"""

Row = tuple[int, bytes, str | None]  # (id, serialized Edge, extra json)
JournalRow = tuple[int, int, bytes]  # (position, received ns, serialized ReportEdgesRequest)
AppliedRow = tuple[str, int, int]  # (instance, sequence, seen ns)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint writes, in one transaction."""

    rows: Sequence[Row]
    deleted: Sequence[int]  # edge rows to delete (expired, evicted)
    applied: Sequence[AppliedRow]
    forgotten_instances: Sequence[str]
    through: int  # journal position included; journal rows up to it are dropped
    delete_all: bool = False  # a reset: every edge row goes first


class EdgeFile:
    """One SQLite connection, used by whichever thread the store lets in (it serialises writers)."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit is in the OS before it returns, so a killed process loses nothing
        # committed; FULL (fsync per commit) also survives power loss, at a cost per commit.
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        # Let the WAL grow to 64 MiB before SQLite copies it into the file (with an fsync) inside some
        # commit: the journal writes a few MB per second under load, and acknowledgements wait for commits.
        self._db.execute("PRAGMA wal_autocheckpoint=16384")
        self._db.executescript(_SCHEMA)

    def rows(self) -> Iterator[Row]:
        yield from self._db.execute("SELECT id, edge, extra FROM edges")

    def write(self, rows: Sequence[Row]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO edges (id, edge, extra) VALUES (?, ?, ?)", rows)

    def delete_all(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM edges")

    def delete(self, row_ids: Iterable[int]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM edges WHERE id = ?", [(i,) for i in row_ids])

    def journal_after(self, through: int) -> Iterator[JournalRow]:
        yield from self._db.execute("SELECT id, received, batch FROM journal WHERE id > ? ORDER BY id", (through,))

    def applied(self) -> Iterator[AppliedRow]:
        yield from self._db.execute("SELECT instance, sequence, seen FROM applied")

    def journal_through(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'journal_through'").fetchone()
        return int(row[0]) if row else 0

    def append_journal(self, rows: Sequence[JournalRow]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO journal (id, received, batch) VALUES (?, ?, ?)", rows)

    def checkpoint(self, cp: Checkpoint) -> None:
        with self._db:
            if cp.delete_all:
                self._db.execute("DELETE FROM edges")
            if cp.deleted:
                self._db.executemany("DELETE FROM edges WHERE id = ?", [(i,) for i in cp.deleted])
            if cp.rows:
                self._db.executemany("INSERT OR REPLACE INTO edges (id, edge, extra) VALUES (?, ?, ?)", cp.rows)
            if cp.applied:
                self._db.executemany("INSERT OR REPLACE INTO applied (instance, sequence, seen) VALUES (?, ?, ?)",
                                     cp.applied)
            if cp.forgotten_instances:
                self._db.executemany("DELETE FROM applied WHERE instance = ?", [(i,) for i in cp.forgotten_instances])
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('journal_through', ?)", (cp.through,))
            self._db.execute("DELETE FROM journal WHERE id <= ?", (cp.through,))

    def close(self) -> None:
        self._db.close()


def extra_json(client: tuple[ServiceName, ...], server: tuple[ServiceName, ...]) -> str | None:
    """The Edge holds one Service per side; only the rare extra ones need json."""
    if len(client) > 1 or len(server) > 1:
        return json.dumps({"client": client, "server": server})
    return None


def services_from_extra(extra: str | None) -> tuple[tuple[ServiceName, ...], tuple[ServiceName, ...]] | None:
    """(client Services, server Services) stored in `extra`, None when the row has none.
    Raises ValueError, TypeError or KeyError for a damaged value."""
    services = json.loads(extra) if extra else {}
    if not services:
        return None
    return _services(services["client"]), _services(services["server"])


def _services(raw: object) -> tuple[ServiceName, ...]:
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise TypeError("services must be a list")
    return tuple(sorted((str(ns), str(name)) for ns, name in raw))


class GroupCommit:
    """The one thread that writes the file: journal commits every `commit_interval` seconds while
    batches wait, a checkpoint every `checkpoint_interval` seconds. Waiters learn which journal
    position is durable (wait_durable).

    `commit` is called with no lock held and returns the journal position it made durable (or raises
    sqlite3.Error; the store keeps what it could not write and the next round retries).
    """

    def __init__(self, commit: Callable[[bool], int], *, commit_interval: float = 0.002,
                 checkpoint_interval: float = 1.0) -> None:
        self._commit = commit
        self._commit_interval = commit_interval
        self._checkpoint_interval = checkpoint_interval
        self._cond = threading.Condition()
        self._wanted = 0  # highest journal position someone waits for
        self._durable = 0
        self._failures = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="edge-store-commit", daemon=True)
        self._thread.start()

    def set_durable(self, position: int) -> None:
        """Positions up to `position` are durable already (loaded from the file)."""
        with self._cond:
            self._durable = max(self._durable, position)

    def wait_durable(self, position: int, timeout: float) -> bool:
        """Block until journal position `position` is committed; False on timeout or stop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if position > self._wanted:
                self._wanted = position
                self._cond.notify_all()
            while self._durable < position:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return False
                self._cond.wait(left)
            return True

    def _loop(self) -> None:
        next_checkpoint = time.monotonic() + self._checkpoint_interval
        while True:
            with self._cond:
                while not self._stopping and self._wanted <= self._durable:
                    left = next_checkpoint - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                stopping = self._stopping
            if not stopping and self._wanted > self._durable:
                time.sleep(self._commit_interval)  # let the other streams' batches join this commit
            checkpoint = stopping or time.monotonic() >= next_checkpoint
            try:
                durable = self._commit(checkpoint)
            except Exception:  # noqa: BLE001 - this thread must outlive any failure, or every ack stalls
                self._failures += 1
                log.exception("writing the store file failed; will retry (acknowledgements wait)")
                time.sleep(min(1.0, 0.05 * self._failures))
                if stopping:
                    return
                continue
            self._failures = 0
            if checkpoint:
                next_checkpoint = time.monotonic() + self._checkpoint_interval
            with self._cond:
                self._durable = max(self._durable, durable)
                self._cond.notify_all()
            if stopping:
                return

    def stop(self) -> None:
        """Write what is pending (a last checkpoint) and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
