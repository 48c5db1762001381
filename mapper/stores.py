"""The store interface the server uses, and the choice of store from `--db`.

Two implementations: EdgeStore (in memory, optionally written behind to a SQLite file: the embedded
default, one process) and PgEdgeStore (PostgreSQL: several mapper replicas share one database). Both
merge with the same rules, answer the same queries and feed WatchEdges (mapper/watch.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from mapper.edge_changes import ChangeLog, LogPosition
from mapper.store import DEFAULT_MAX_EDGES, BatchId, EdgeStore, MergeResult
from mapper.validation import IngestLimits
from netmapper_api.v1 import edge_pb2

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreUnavailable(OSError):
    """The store cannot take or answer anything now (its database is down or unreachable). The server
    ends the call with UNAVAILABLE instead of acknowledging: a sniffer keeps its batch and resends it."""


class Store(Protocol):
    """What the gRPC server needs of a store."""

    @property
    def changes(self) -> ChangeLog[Any]: ...
    def merge(self, edges: Sequence[edge_pb2.Edge] | None, node: str, *, batch: BatchId | None = None,
              raw: bytes | None = None, now_ns: int | None = None) -> MergeResult: ...
    def wait_durable(self, result: MergeResult, timeout: float) -> bool: ...
    def record_lost(self, lost: Iterable[edge_pb2.LostEvents], node: str) -> None: ...
    def lost_totals(self) -> list[edge_pb2.LostEvents]: ...
    def list_response_bytes(self, filters: Sequence[edge_pb2.EdgeFilter] = (), *, page_size: int = 0,
                            page_token: str = "") -> bytes: ...
    def watch_snapshot(self, since: str = "") -> tuple[list[Any], LogPosition, int] | None: ...
    def edge_wire(self, rows: Sequence[Any]) -> list[tuple[Any, bytes]]: ...
    def resume_token(self, cursor: int) -> str: ...
    def reset(self) -> int: ...
    def expire(self, older_than: float) -> int: ...
    def close(self) -> None: ...
    def __len__(self) -> int: ...


def is_postgres(db: str | Path | None) -> bool:
    return isinstance(db, str) and db.startswith(POSTGRES_SCHEMES)


def open_store(db: str | Path | None, *, flush_interval: float = 10.0, limits: IngestLimits | None = None,
               max_edges: int = DEFAULT_MAX_EDGES, commit_interval: float = 0.002, fsync: bool = False) -> Store:
    """PostgreSQL for a postgresql:// URL, else EdgeStore (a SQLite file path, or None for memory only).
    Both check every reported field with `limits`; the journal, checkpoint and edge bound are SQLite's
    (PostgreSQL commits each batch and keeps what it is given)."""
    if is_postgres(db):
        from mapper.pg_store import PgEdgeStore  # psycopg only when asked for

        assert isinstance(db, str)
        return PgEdgeStore(db, limits=limits)
    return EdgeStore(db, flush_interval=flush_interval, limits=limits, max_edges=max_edges,
                     commit_interval=commit_interval, fsync=fsync)
