"""The mapper's SQLite file: one row per edge, written behind by a background thread.

The store decides what to write (records changed since the last flush); this module only knows the
file: its schema, reading it back, writing and deleting rows, and the thread that calls the store's
flush every interval. A crash loses at most one interval.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final

from netmapper_api.keys import ServiceName

log = logging.getLogger(__name__)

_SCHEMA: Final[str] = """
CREATE TABLE IF NOT EXISTS edges (
    id    INTEGER PRIMARY KEY,  -- the record's row, assigned by the store (a rowid: cheap upserts)
    edge  BLOB NOT NULL,        -- serialized netmapper.v1.Edge (identity, attributes, times, count, nodes)
    extra TEXT                  -- json of what the Edge proto cannot hold (more than one Service), or NULL
)
"""

Row = tuple[int, bytes, str | None]  # (id, serialized Edge, extra json)


class EdgeFile:
    """One SQLite connection, used by whichever thread the store lets in (it serialises writers)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

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


class WriteBehind:
    """Calls `flush` every `interval` seconds on its own thread until stop(); failures are retried."""

    def __init__(self, flush: Callable[[], int], interval: float) -> None:
        self._flush = flush
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edge-store-flush", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._flush()
            except sqlite3.Error:
                log.exception("writing edges to the store file failed; will retry")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
