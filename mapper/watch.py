"""WatchEdges: one watcher's stream of serialized WatchEdgesResponse messages, over any store.

The stream starts with the current set (or, from a resume token, the edges changed since it), then
`synced`, then follows the store's ChangeLog: each created or changed edge is sent once per read with its
state at sending time (edges are state, so a burst of changes to one edge costs one message). A watcher
that reads too slowly falls off the log: it gets `lost` (LOST_SOURCE_WATCHER_LAGGED, how many changes it
missed), then every edge changed since its last cursor, then `synced`: its view is whole again, and the
gap is explicit. Reset or expiry (`forgotten`) is followed by the full current set.

Messages are assembled from the store's cached serialized edges: the server sends them as they are.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Protocol, TypeVar

from mapper.edge_changes import ChangeLog, LogPosition
from mapper.filters import Row, compile_filters, selects
from mapper.wire import varint
from netmapper_api.v1 import edge_pb2, mapper_pb2

_TAG_EDGE: Final[bytes] = b"\x0a"  # WatchEdgesResponse.edge, field 1
_TAG_RESUME: Final[bytes] = b"\x52"  # WatchEdgesResponse.resume_token, field 10

R = TypeVar("R", bound=Row)


class WatchableStore(Protocol[R]):
    """What WatchEdges needs of a store (EdgeStore and PgEdgeStore provide it)."""

    @property
    def changes(self) -> ChangeLog[R]: ...
    def watch_snapshot(self, since: str = "") -> tuple[list[R], LogPosition, int] | None: ...
    def edge_wire(self, rows: Sequence[R]) -> list[tuple[R, bytes]]: ...
    def resume_token(self, cursor: int) -> str: ...


def _edge_message(wire: bytes, token: str) -> bytes:
    msg = _TAG_EDGE + varint(len(wire)) + wire
    if token:
        raw = token.encode()
        msg += _TAG_RESUME + varint(len(raw)) + raw
    return msg


def watch(store: WatchableStore[R], request: mapper_pb2.WatchEdgesRequest, active: Callable[[], bool], *,
          poll: float = 1.0, on_lost: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """Serialized WatchEdgesResponse messages until `active()` turns false (checked every `poll` seconds).
    Raises filters.InvalidQuery before the first message for a bad filter."""
    compiled = compile_filters(request.filters)
    since = request.resume_token
    while active():
        snap = store.watch_snapshot(since)
        if snap is None:  # a token from another store, a restart or before a reset
            yield mapper_pb2.WatchEdgesResponse(forgotten=mapper_pb2.WatchForgotten(
                reason="resume token is not resumable here (another store, a restart or a reset since)"),
            ).SerializeToString()
            snap = store.watch_snapshot("")
            assert snap is not None
        rows, position, cursor = snap
        sent = 0
        for row, wire in store.edge_wire(rows):
            if selects(compiled, row):
                yield _edge_message(wire, "")
                sent += 1
        yield mapper_pb2.WatchEdgesResponse(synced=mapper_pb2.WatchSynced(edges=sent),
                                            resume_token=store.resume_token(cursor)).SerializeToString()
        since = ""
        while active():
            got = store.changes.read(position, poll)
            position = got.position
            if got.forgotten:
                yield mapper_pb2.WatchEdgesResponse(forgotten=mapper_pb2.WatchForgotten(
                    reason="edges were reset or expired")).SerializeToString()
                break  # resync with the full current set
            if got.lost:
                if on_lost is not None:
                    on_lost(got.lost)
                now = time.time_ns()
                lost = edge_pb2.LostEvents(source=edge_pb2.LOST_SOURCE_WATCHER_LAGGED, count=got.lost)
                lost.first.FromNanoseconds(now)
                lost.last.FromNanoseconds(now)
                yield mapper_pb2.WatchEdgesResponse(lost=lost).SerializeToString()
                since = store.resume_token(cursor)  # resync: what changed since the last cursor sent
                break
            if not got.changes:
                continue
            latest: dict[str, R] = {}
            for change in got.changes:
                for row in change.rows:
                    latest.pop(row.sort_key, None)  # keep the order of last change
                    latest[row.sort_key] = row
            replay = store.resume_token(got.changes[0].cursor_before)
            cursor = got.changes[-1].cursor_after
            out = [(row, wire) for row, wire in store.edge_wire(list(latest.values())) if selects(compiled, row)]
            for i, (_, wire) in enumerate(out):
                # Resuming from a message in the middle of a read replays that read: edges are state,
                # so a repeat is harmless; the last message of a read resumes after it.
                yield _edge_message(wire, store.resume_token(cursor) if i == len(out) - 1 else replay)
