"""EdgeStore: the mapper's merged, optionally durable set of edges.

Every reported edge is merged into the record of its key (keys.edge_key): first_seen is the minimum,
last_seen the maximum, count the sum of the reported deltas, reporting nodes, DNS names and Services
are sorted bounded unions, and pod/ip show one example instance (the smallest seen; the proto has room
for one). Re-reporting an edge never creates a second record, and the merge is order-independent:
the same reports in any order give the same edges, also across a restart. Counts are sums of what
sniffers sent: a batch that a sniffer resends after losing its acknowledgement counts
twice (the proto has no end-to-end idempotency token), so read counts as "at least".

Hot path (merge), designed for hundreds of thousands of observations per second in CPython:
- Sniffers re-report the same edges every interval with byte-identical endpoints, so the store caches
  serialized endpoint -> (identity, attributes). A hit skips reading the endpoint's fields; only a
  miss runs the validation in keys.py. Because the attribute merge is idempotent, each record also
  remembers the attributes it merged lately, and a report of one of those (the same pod again, or a
  replica on another node) skips attribute merging too.
- Records are mutable slot objects updated in place under one lock; protos are built only when
  someone lists, and the serialized Edge is cached per record until the record changes.

Durability: with a sqlite path, changed records are written behind (persistence.py) every
`flush_interval` seconds and on close(); a crash loses at most that interval. Reset and expire delete
from the file synchronously so that nothing forgotten comes back on restart.

Around it: record.py (one edge's merge state), wire.py (the ListEdges encoder), filters.py (queries).
"""
from __future__ import annotations

import builtins  # EdgeStore.list shadows the builtin in the class body
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from google.protobuf.message import DecodeError

from mapper.filters import compile_filters
from mapper.persistence import EdgeFile, WriteBehind, extra_json, services_from_extra
from mapper.record import MAX_REPORTING_NODES, EdgeRecord, merge_side, record_sort_key
from mapper.wire import NS_PER_S, TAG_RESPONSE_EDGE, EdgeEncoder, timestamp, varint
from netmapper_api import keys
from netmapper_api.keys import EdgeKey, EndpointAttrs, EndpointId, InvalidEdge
from netmapper_api.loss import LossSource
from netmapper_api.v1 import edge_pb2, mapper_pb2

log = logging.getLogger(__name__)

# Serialized endpoint -> (identity, attributes). Distinct endpoints are few (clients x pods +
# servers); the cache is cleared when it reaches this size so that pod churn cannot grow it forever.
_ENDPOINT_CACHE_MAX: Final[int] = 200_000


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Outcome of merging one batch."""

    accepted: int
    rejected: int
    error: str = ""  # the first rejection reason, "" when none
    # edges of the batch that created a record (first report of their key), for mapper/observer.py
    new_edges: tuple[edge_pb2.Edge, ...] = ()


class EdgeStore:
    """Thread-safe merged edge set. Use as a context manager or call close() to flush a sqlite file."""

    def __init__(self, db_path: str | Path | None = None, *, flush_interval: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._records: dict[EdgeKey, EdgeRecord] = {}
        self._endpoints: dict[bytes, tuple[EndpointId, EndpointAttrs]] = {}
        # Records sorted by key, plus those added since the last sort: sorting the new ones and appending
        # them makes the next sort a linear merge of two runs instead of a full sort.
        self._order: list[EdgeRecord] = []
        self._unsorted: list[EdgeRecord] = []
        self._encoder = EdgeEncoder()
        self._next_row = 1
        self._lost: dict[int, list[int]] = {}  # LostSource -> [count, first ns, last ns]
        self._db: EdgeFile | None = None
        self._db_lock = threading.Lock()  # taken before _lock; serialises file writes
        self._dirty: set[EdgeRecord] | None = None
        self._flusher: WriteBehind | None = None
        self._closed = False
        if db_path is not None:
            self._open_db(Path(db_path), flush_interval)

    # -- ingest --

    def merge(self, edges: Iterable[edge_pb2.Edge], node: str) -> MergeResult:
        """Merge one batch reported by `node`. Invalid edges are counted and skipped, never raised."""
        if not node:
            n = sum(1 for _ in edges)
            return MergeResult(accepted=0, rejected=n, error="request has no node name" if n else "")
        now = time.time_ns()
        accepted = rejected = 0
        error = ""
        new_edges: list[edge_pb2.Edge] = []
        valid_protocols = keys.VALID_PROTOCOLS
        with self._lock:
            endpoints = self._endpoints
            records = self._records
            dirty = self._dirty
            for e in edges:
                port = e.port
                protocol = e.protocol
                fs = e.first_seen
                ls = e.last_seen
                first = fs.seconds * NS_PER_S + fs.nanos
                last = ls.seconds * NS_PER_S + ls.nanos
                # A sniffer that does not stamp times still reports a real observation: stamp it now.
                if not first:
                    first = last or now
                if not last:
                    last = first
                if not 0 < port <= 65535 or protocol not in valid_protocols or last < first or first < 0:
                    rejected += 1
                    if not error:
                        error = _reason(e)
                    continue
                client = e.client
                server = e.server
                cb = client.SerializeToString()
                sb = server.SerializeToString()
                c = endpoints.get(cb)
                s = endpoints.get(sb)
                if c is None or s is None:
                    try:
                        c = self._resolve(client, cb, "client")
                        s = self._resolve(server, sb, "server")
                    except InvalidEdge as exc:
                        rejected += 1
                        if not error:
                            error = str(exc)
                        continue
                key = (c[0], s[0], port, protocol)
                rec = records.get(key)
                if rec is None:
                    rec = self._insert(key, c[1], s[1], first, last)
                    new_edges.append(e)
                else:
                    # Attributes objects are interned per serialized endpoint, so "merged lately" is an
                    # identity test (the tuple scan stays in C); anything else is merged (idempotent).
                    ca = c[1]
                    if ca not in rec.client_seen:
                        merge_side(rec, True, ca)
                    sa = s[1]
                    if sa not in rec.server_seen:
                        merge_side(rec, False, sa)
                if first < rec.first:
                    rec.first = first
                if last > rec.last:
                    rec.last = last
                # count 0 would mean "seen but not counted"; an edge is only reported when seen.
                rec.count += e.count or 1
                if node not in rec.nodes:
                    rec.nodes = keys.bounded_union(rec.nodes, (node,), MAX_REPORTING_NODES)
                    rec.tail = None
                rec.wire = None
                if dirty is not None:
                    dirty.add(rec)
                accepted += 1
        return MergeResult(accepted=accepted, rejected=rejected, error=error, new_edges=tuple(new_edges))

    def _resolve(self, ep: edge_pb2.Endpoint, raw: bytes, side: str) -> tuple[EndpointId, EndpointAttrs]:
        """Identity and attributes of a serialized endpoint, cached by its bytes. Caller holds _lock.

        Sniffers re-send byte-identical endpoints every interval, so after the first report of an
        endpoint the hot path never reads its fields again. Invalid endpoints are not cached."""
        hit = self._endpoints.get(raw)
        if hit is None:
            if not raw:
                raise InvalidEdge(f"edge has no {side}")
            identity = keys.endpoint_identity(ep, side)
            if len(self._endpoints) >= _ENDPOINT_CACHE_MAX:
                self._endpoints.clear()  # only a cache: pod churn must not grow it forever
            hit = self._endpoints[raw] = (identity, keys.endpoint_attrs(ep))
        return hit

    def _insert(self, key: EdgeKey, client: EndpointAttrs, server: EndpointAttrs, first: int, last: int) -> EdgeRecord:
        """A new edge. Caller holds _lock."""
        rec = EdgeRecord(key, client, server, first, last)
        self._records[key] = rec
        self._unsorted.append(rec)
        if self._dirty is not None:
            rec.row_id = self._next_row
            self._next_row += 1
        rec.client_seen, rec.server_seen = (client,), (server,)
        # Serialize the endpoints now rather than at the first ListEdges: a new edge is rare in steady
        # state, while a ListEdges right after a large ingest (or a restart) is user-facing.
        self._encoder.head(rec, len(self._records))
        return rec

    def record_lost(self, lost: Iterable[edge_pb2.LostEvents], node: str) -> None:
        """Add a sniffer's lost-observation report to the totals ListEdges returns."""
        now = time.time_ns()
        with self._lock:
            for ev in lost:
                if not ev.count:
                    continue
                first = ev.first.seconds * NS_PER_S + ev.first.nanos or now
                last = ev.last.seconds * NS_PER_S + ev.last.nanos or first
                total = self._lost.get(ev.source)
                if total is None:
                    self._lost[ev.source] = [ev.count, first, last]
                else:
                    total[0] += ev.count
                    total[1] = min(total[1], first)
                    total[2] = max(total[2], last)
                log.warning(
                    "node %s lost %d observations (%s)", node, ev.count, _lost_source_name(ev.source)
                )

    def lost_totals(self) -> list[edge_pb2.LostEvents]:
        """Lost observations reported since this store was created, one entry per source."""
        with self._lock:
            return [
                edge_pb2.LostEvents(source=source, count=c, first=timestamp(f), last=timestamp(la))  # type: ignore[arg-type]
                for source, (c, f, la) in sorted(self._lost.items())
            ]

    # -- queries --

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def list(self, filters: Sequence[edge_pb2.EdgeFilter] = ()) -> list[edge_pb2.Edge]:
        """Matching edges sorted by (client, server, port, protocol). Filters: fields in one filter AND,
        the filters OR, no filters means all (edge.proto EdgeFilter)."""
        return list(mapper_pb2.ListEdgesResponse.FromString(self.list_response_bytes(filters)).edges)

    def list_response_bytes(self, filters: Sequence[edge_pb2.EdgeFilter] = ()) -> bytes:
        """A serialized ListEdgesResponse for `filters`, with the lost totals: the server sends it as is."""
        compiled = compile_filters(filters)
        parts: builtins.list[bytes] = []
        with self._lock:
            for rec in self._sorted_records():
                if compiled and not any(f.matches(rec) for f in compiled):
                    continue
                wire = rec.wire
                if wire is None:
                    wire = rec.wire = self._encoder.edge_bytes(rec, len(self._records))
                parts.append(TAG_RESPONSE_EDGE + varint(len(wire)) + wire)
        lost = mapper_pb2.ListEdgesResponse(lost=self.lost_totals()).SerializeToString()
        return b"".join(parts) + lost

    def _sorted_records(self) -> builtins.list[EdgeRecord]:
        if self._unsorted:
            self._unsorted.sort(key=record_sort_key)
            self._order.extend(self._unsorted)
            self._order.sort(key=record_sort_key)
            self._unsorted.clear()
        return self._order

    # -- forgetting --

    def reset(self) -> int:
        """Forget every edge (and its file rows); returns how many were forgotten. Lost totals stay:
        they describe the mapper's run, not the edge set."""
        with self._db_lock:
            with self._lock:
                removed = len(self._records)
                for rec in self._records.values():
                    rec.alive = False
                self._records.clear()
                self._endpoints.clear()
                self._order = []
                self._unsorted = []
                self._encoder.clear()
                if self._dirty is not None:
                    self._dirty.clear()
            if self._db is not None:
                self._db.delete_all()
        log.info("reset: forgot %d edges", removed)
        return removed

    def expire(self, older_than: float) -> int:
        """Forget edges last seen before `older_than` (seconds since the epoch); returns how many."""
        threshold = int(older_than * NS_PER_S)
        with self._db_lock:
            with self._lock:
                stale = [rec for rec in self._records.values() if rec.last < threshold]
                for rec in stale:
                    rec.alive = False
                    del self._records[rec.key]
                    if self._dirty is not None:
                        self._dirty.discard(rec)
                if stale:
                    self._order = [rec for rec in self._order if rec.alive]
                    self._unsorted = [rec for rec in self._unsorted if rec.alive]
                rows = [rec.row_id for rec in stale if rec.row_id]
            if self._db is not None and rows:
                self._db.delete(rows)
        if stale:
            log.info("expired %d edges last seen before %.3f", len(stale), older_than)
        return len(stale)

    # -- durability --

    def _open_db(self, path: Path, flush_interval: float) -> None:
        self._db = EdgeFile(path)
        self._dirty = set()
        loaded, skipped = self._load(self._db)
        log.info("store %s: loaded %d edges (%d unreadable rows skipped)", path, loaded, skipped)
        self._flusher = WriteBehind(self.flush, flush_interval)

    def _load(self, db: EdgeFile) -> tuple[int, int]:
        loaded = skipped = 0
        for row_id, blob, extra in db.rows():
            self._next_row = max(self._next_row, row_id + 1)
            try:
                edge = edge_pb2.Edge.FromString(blob)
                key = keys.edge_key(edge)
                services = services_from_extra(extra)
                client = keys.endpoint_attrs(edge.client)
                server = keys.endpoint_attrs(edge.server)
                if services:
                    client = EndpointAttrs(client.pod, client.ip, services[0], client.dns_names)
                    server = EndpointAttrs(server.pod, server.ip, services[1], server.dns_names)
            except (InvalidEdge, DecodeError, ValueError, TypeError, KeyError) as exc:
                log.warning("skipping unreadable stored edge row %d: %s", row_id, exc)
                skipped += 1
                continue
            rec = EdgeRecord(
                key,
                client,
                server,
                edge.first_seen.seconds * NS_PER_S + edge.first_seen.nanos,
                edge.last_seen.seconds * NS_PER_S + edge.last_seen.nanos,
            )
            rec.count = edge.count
            rec.nodes = tuple(sorted(edge.reporting_nodes))
            rec.row_id = row_id
            if key in self._records:
                # Cannot happen with files this store wrote (keys are unique); keep the first if it does.
                log.warning("duplicate stored edge row %d ignored", row_id)
                skipped += 1
                continue
            self._records[key] = rec
            self._unsorted.append(rec)
            rec.wire = blob  # the stored bytes are exactly what ListEdges would build
            loaded += 1
        return loaded, skipped

    def flush(self) -> int:
        """Write changed records to the file now; returns how many rows were written."""
        if self._db is None:
            return 0
        with self._db_lock:
            with self._lock:
                assert self._dirty is not None
                dirty, self._dirty = self._dirty, set()
                rows = []
                for rec in dirty:
                    wire = rec.wire
                    if wire is None:
                        wire = rec.wire = self._encoder.edge_bytes(rec, len(self._records))
                    rows.append((rec.row_id, wire, extra_json(rec.client.services, rec.server.services)))
            if not rows:
                return 0
            try:
                self._db.write(rows)
            except sqlite3.Error:
                # Keep them dirty so the next flush retries; a full disk must not lose the edges in memory.
                with self._lock:
                    assert self._dirty is not None
                    self._dirty.update(rec for rec in dirty if rec.alive)
                raise
        return len(rows)

    def close(self) -> None:
        """Stop the flusher, write what is pending and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.stop()
        if self._db is not None:
            try:
                self.flush()
            finally:
                with self._db_lock:
                    self._db.close()
                    self._db = None

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lost_source_name(source: int) -> str:
    try:
        return LossSource(source).name
    except ValueError:
        return f"source {source}"


def _reason(e: edge_pb2.Edge) -> str:
    """The reason a cheap pre-check rejected an edge (the slow path reports its own)."""
    try:
        keys.check_port_protocol(e.port, e.protocol)
    except InvalidEdge as exc:
        return str(exc)
    return "invalid timestamps: last_seen before first_seen or before 1970"
