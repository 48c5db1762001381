"""The mapper's edge file (PATH, SQLite: one row per edge) and the threads that make merges durable.
The store decides what to write; this module knows the edge file and the threads; journal.py keeps
the journal of acknowledged batches (PATH.journal.d).

- journal commits (GroupCommit's commit thread), every few milliseconds while batches wait: the raw
  bytes of every batch merged since the last commit, in one append. A batch is acknowledged only
  after the commit that holds it, so `kill -9` at any moment loses nothing acknowledged. One record
  per batch: cheap however many edges it holds.
- checkpoints (its checkpoint thread), every `checkpoint_interval` seconds and on demand: the records
  changed since the last one, the last applied sequence of every sniffer instance and the journal
  position the records include, in one transaction of the edge file; then the journal up to that
  position is dropped. A crash between the two leaves batches the next load skips.

The journal is kept apart from the edge file so that a checkpoint (tens of MB) never holds up the
commits that acknowledgements wait for. Loading reads the edges and replays the journaled batches
after the checkpoint's position; the applied sequences make a resent batch (a lost acknowledgement)
merge once, also across a restart.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from netmapper_api.keys import ServiceName

log = logging.getLogger(__name__)

_SCHEMA: Final[str] = """
CREATE TABLE IF NOT EXISTS edges (
    id    INTEGER PRIMARY KEY,  -- the record's row, assigned by the store (a rowid: cheap upserts)
    edge  BLOB NOT NULL,        -- serialized netmapper.v1.Edge (identity, attributes, nodes; times and count
                                -- in files written before the columns below were always set)
    extra TEXT,                 -- json of what the Edge proto cannot hold (more than one Service), or NULL
    -- The numbers, kept apart from `edge` so that a checkpoint of an edge only re-reported (the steady
    -- state) updates three integers instead of re-encoding it; when set they win over `edge`'s.
    first_ns INTEGER,
    last_ns  INTEGER,
    count    INTEGER
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

Row = tuple[int, bytes, str | None, int, int, int]  # (id, serialized Edge w/o numbers, extra json, first, last, count)
NumbersRow = tuple[int, int, int, int]  # (first ns, last ns, count, id): an edge whose numbers alone changed
StoredRow = tuple[int, bytes, str | None, int | None, int | None, int | None]  # Row + the numbers when set
AppliedRow = tuple[str, int, int]  # (instance, sequence, seen ns)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint writes, in one transaction."""

    rows: Sequence[Row]
    numbers: Sequence[NumbersRow]
    deleted: Sequence[int]  # edge rows to delete (expired, evicted)
    applied: Sequence[AppliedRow]
    forgotten_instances: Sequence[str]
    through: int  # journal position included; journal rows up to it are dropped after the transaction
    delete_all: bool = False  # a reset: every edge row goes first


def _connect(path: Path, schema: str, fsync: bool) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit is in the OS before it returns, so a killed process loses nothing
    # committed; FULL (fsync per commit) also survives power loss, at a cost per commit.
    db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
    # Let the WAL grow to 64 MiB before SQLite copies it into the file (with an fsync) inside some commit.
    db.execute("PRAGMA wal_autocheckpoint=16384")
    db.executescript(schema)
    return db


def _add_number_columns(db: sqlite3.Connection) -> None:
    """Files written before the number columns existed get them (NULL: the blob's numbers hold)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(edges)")}
    for column in ("first_ns", "last_ns", "count"):
        if column not in have:
            db.execute(f"ALTER TABLE edges ADD COLUMN {column} INTEGER")


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction. The connection is in autocommit mode (isolation_level=None), where `with db:`
    begins nothing: every statement of an executemany would commit on its own, so a checkpoint would
    be neither atomic (a crash inside it leaves part of it) nor fast (one WAL commit per row)."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class EdgeFile:
    """The edge file; one connection, callers serialise access."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self._db = _connect(path, _SCHEMA, fsync)
        _add_number_columns(self._db)

    def rows(self) -> Iterator[StoredRow]:
        yield from self._db.execute("SELECT id, edge, extra, first_ns, last_ns, count FROM edges")

    def delete_all(self) -> None:
        with _transaction(self._db):
            self._db.execute("DELETE FROM edges")

    def delete(self, row_ids: Iterable[int]) -> None:
        with _transaction(self._db):
            self._db.executemany("DELETE FROM edges WHERE id = ?", [(i,) for i in row_ids])

    def applied(self) -> Iterator[AppliedRow]:
        yield from self._db.execute("SELECT instance, sequence, seen FROM applied")

    def journal_through(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'journal_through'").fetchone()
        return int(row[0]) if row else 0

    def checkpoint(self, cp: Checkpoint) -> None:
        with _transaction(self._db):
            if cp.delete_all:
                self._db.execute("DELETE FROM edges")
            if cp.deleted:
                self._db.executemany("DELETE FROM edges WHERE id = ?", [(i,) for i in cp.deleted])
            if cp.rows:
                self._db.executemany("INSERT OR REPLACE INTO edges (id, edge, extra, first_ns, last_ns, count) "
                                     "VALUES (?, ?, ?, ?, ?, ?)", cp.rows)
            if cp.numbers:
                self._db.executemany("UPDATE edges SET first_ns = ?, last_ns = ?, count = ? WHERE id = ?", cp.numbers)
            if cp.applied:
                self._db.executemany("INSERT OR REPLACE INTO applied (instance, sequence, seen) VALUES (?, ?, ?)",
                                     cp.applied)
            if cp.forgotten_instances:
                self._db.executemany("DELETE FROM applied WHERE instance = ?", [(i,) for i in cp.forgotten_instances])
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('journal_through', ?)", (cp.through,))

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
    """Two threads: one commits the journal every `commit_interval` seconds while someone waits, the
    other checkpoints every `checkpoint_interval` seconds or when asked. Waiters learn which journal
    position is durable (wait_durable).

    `commit_journal` and `checkpoint` are called with no lock held and return the journal position
    they made durable, or raise (the store keeps what it could not write; the next round retries).
    `commit_journal` returns -1 when only a checkpoint can make the wanted positions durable.
    """

    def __init__(self, commit_journal: Callable[[], int], checkpoint: Callable[[], int], *,
                 commit_interval: float = 0.002, checkpoint_interval: float = 10.0) -> None:
        self._commit_journal = commit_journal
        self._checkpoint = checkpoint
        self._commit_interval = commit_interval
        self._checkpoint_interval = checkpoint_interval
        self._cond = threading.Condition()
        self._wanted = 0  # highest journal position someone waits for
        self._durable = 0
        self._stopping = False
        self._checkpoint_now = threading.Event()
        self._threads = [
            threading.Thread(target=self._commit_loop, name="edge-journal-commit", daemon=True),
            threading.Thread(target=self._checkpoint_loop, name="edge-checkpoint", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def set_durable(self, position: int) -> None:
        """Positions up to `position` are durable (loaded from the files, or a checkpoint ran)."""
        with self._cond:
            if position > self._durable:
                self._durable = position
                self._cond.notify_all()

    def request_checkpoint(self) -> None:
        self._checkpoint_now.set()

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

    def _commit_loop(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while not self._stopping and self._wanted <= self._durable:
                    self._cond.wait()
                if self._stopping:
                    return
            time.sleep(self._commit_interval)  # let the other streams' batches join this commit
            try:
                durable = self._commit_journal()
            except Exception:  # noqa: BLE001 - this thread must outlive any failure, or every ack stalls
                failures += 1
                log.exception("writing the journal failed; will retry (acknowledgements wait)")
                time.sleep(min(1.0, 0.05 * failures))
                continue
            failures = 0
            if durable < 0:  # merges without journal rows: only a checkpoint covers them
                self._checkpoint_now.set()
                with self._cond:
                    self._cond.wait(self._commit_interval * 10)
                continue
            self.set_durable(durable)

    def _checkpoint_loop(self) -> None:
        failures = 0
        while True:
            self._checkpoint_now.wait(self._checkpoint_interval)
            self._checkpoint_now.clear()
            with self._cond:
                stopping = self._stopping
            try:
                self.set_durable(self._checkpoint())
                failures = 0
            except Exception:  # noqa: BLE001 - retried; the journal keeps acknowledging meanwhile
                failures += 1
                log.exception("checkpointing the edge file failed; will retry")
                if not stopping:
                    time.sleep(min(5.0, 0.1 * failures))
            if stopping:
                return

    def stop(self) -> None:
        """End both threads after a last checkpoint."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._threads[0].join()
        self._checkpoint_now.set()
        self._threads[1].join()
