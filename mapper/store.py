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

Durability: with a sqlite path, changed records are written behind by a background thread every
`flush_interval` seconds and on close(); a crash loses at most that interval. Reset and expire delete
from the file synchronously so that nothing forgotten comes back on restart.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from netmapper_api import keys
from netmapper_api.keys import EdgeKey, EndpointAttrs, EndpointId, InvalidEdge
from netmapper_api.v1 import edge_pb2, mapper_pb2

log = logging.getLogger(__name__)

NS_PER_S: Final[int] = 1_000_000_000
# An edge can be reported by every node that runs a pod of its client; bounded like the other unions.
MAX_REPORTING_NODES: Final[int] = 256
# Serialized endpoint -> (identity, attributes). Distinct endpoints are few (clients x pods +
# servers); the cache is cleared when it reaches this size so that pod churn cannot grow it forever.
_ENDPOINT_CACHE_MAX: Final[int] = 200_000
# Attributes remembered per record side as merged: covers a client with replicas on this many nodes.
_SEEN_MAX: Final[int] = 16

_SCHEMA: Final[str] = """
CREATE TABLE IF NOT EXISTS edges (
    id    INTEGER PRIMARY KEY,  -- the record's row, assigned by the store (a rowid: cheap upserts)
    edge  BLOB NOT NULL,        -- serialized netmapper.v1.Edge (identity, attributes, times, count, nodes)
    extra TEXT                  -- json of what the Edge proto cannot hold (more than one Service), or NULL
)
"""


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Outcome of merging one batch."""

    accepted: int
    rejected: int
    error: str = ""  # the first rejection reason, "" when none


class _Record:
    """Mutable merge state of one edge. A slot class, not a frozen dataclass: it is updated in place
    for every observation, and allocating a new object per observation would halve ingest speed."""

    __slots__ = (
        "key", "first", "last", "count", "nodes", "client", "server",
        "client_seen", "server_seen", "head", "tail", "wire", "row_id", "alive", "sort_key",
    )

    def __init__(self, key: EdgeKey, client: EndpointAttrs, server: EndpointAttrs, first: int, last: int) -> None:
        self.key = key
        self.sort_key = keys.sort_key(key)
        self.first = first  # ns since the epoch
        self.last = last
        self.count = 0
        self.nodes: tuple[str, ...] = ()
        self.client = client
        self.server = server
        # Attributes merged lately (newest first, interned objects): merging one again changes nothing.
        self.client_seen: tuple[EndpointAttrs, ...] = ()
        self.server_seen: tuple[EndpointAttrs, ...] = ()
        # Serialization caches: head = fields 1-4 (endpoints, port, protocol), tail = field 8 (nodes),
        # wire = the whole Edge. None means stale.
        self.head: bytes | None = None
        self.tail: bytes | None = None
        self.wire: bytes | None = None
        self.row_id = 0  # sqlite row, 0 without a file
        self.alive = True  # False once reset/expired: sorting and a retried flush skip it


def _smallest(cur: str, new: str) -> str:
    """The smaller non-empty value: an order-independent choice of one example."""
    return new if new and (not cur or new < cur) else cur


def _merge_side(rec: _Record, client_side: bool, attrs: EndpointAttrs) -> None:
    """Merge one report's attributes into a record side and remember them as merged."""
    if client_side:
        merged = _merge_attrs(rec.client, attrs)
        if merged is not rec.client:
            rec.client = merged
            rec.head = None
        rec.client_seen = (attrs, *rec.client_seen[: _SEEN_MAX - 1])
    else:
        merged = _merge_attrs(rec.server, attrs)
        if merged is not rec.server:
            rec.server = merged
            rec.head = None
        rec.server_seen = (attrs, *rec.server_seen[: _SEEN_MAX - 1])


def _merge_attrs(cur: EndpointAttrs, new: EndpointAttrs) -> EndpointAttrs:
    """Idempotent, commutative merge: replaying any report changes nothing (the fast path relies on it)."""
    pod = _smallest(cur.pod, new.pod)
    ip = _smallest(cur.ip, new.ip)
    services = keys.bounded_union(cur.services, new.services, keys.MAX_SERVICES)
    dns = keys.bounded_union(cur.dns_names, new.dns_names, keys.MAX_DNS_NAMES)
    if pod == cur.pod and ip == cur.ip and services is cur.services and dns is cur.dns_names:
        return cur
    return EndpointAttrs(pod=pod, ip=ip, services=services, dns_names=dns)


# --- protobuf wire encoding for the few fields that change on every merge --------------------------
# ListEdges of 100k edges must take well under a second; building 100k Edge protos field by field
# takes longer than that, so the response is assembled from cached serialized parts plus these fields.
# Field numbers are those of edge.proto (first_seen = 5, last_seen = 6, count = 7); the output is the
# canonical serialization, which tests check against protobuf's own.

_SMALL_VARINTS: Final[tuple[bytes, ...]] = tuple(bytes([i]) for i in range(128))


def _varint(n: int) -> bytes:
    # Unrolled for the sizes that occur (ports, counts, nanoseconds, epoch seconds): ~30% faster than a loop.
    if n < 0x80:
        return _SMALL_VARINTS[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    if n < 0x10000000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21))
    if n < 0x800000000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80, n >> 28))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _timestamp_field(tag: bytes, ns: int) -> bytes:
    seconds, nanos = divmod(ns, NS_PER_S)
    body = (b"\x08" + _varint(seconds) if seconds else b"") + (b"\x10" + _varint(nanos) if nanos else b"")
    return tag + _varint(len(body)) + body


_TAG_FIRST_SEEN: Final[bytes] = b"\x2a"  # field 5, length-delimited
_TAG_LAST_SEEN: Final[bytes] = b"\x32"  # field 6, length-delimited
_TAG_COUNT: Final[bytes] = b"\x38"  # field 7, varint
_TAG_RESPONSE_EDGE: Final[bytes] = b"\x0a"  # ListEdgesResponse.edges, field 1
_TAG_CLIENT: Final[bytes] = b"\x0a"  # Edge.client, field 1
_TAG_SERVER: Final[bytes] = b"\x12"  # Edge.server, field 2
_TAG_PORT: Final[bytes] = b"\x18"  # Edge.port, field 3, varint
_TAG_PROTOCOL: Final[bytes] = b"\x20"  # Edge.protocol, field 4, varint


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    seconds, nanos = divmod(ns, NS_PER_S)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


# --- filters ---------------------------------------------------------------------------------------


def _matches_name(identity: EndpointId, attrs: EndpointAttrs, pattern: str) -> bool:
    """"name" or "name.namespace" for workloads and Services (a workload also answers to the Services
    it was reached through); the node name or address for nodes; address or DNS name for the rest."""
    kind = identity[0]
    if kind == keys.WORKLOAD or kind == keys.SERVICE:
        ns = identity[1]
        name = keys.name_of(identity)
        # Names may contain dots, namespaces may not: comparing against both forms avoids splitting.
        if pattern == name or pattern == f"{name}.{ns}":
            return True
        return any(pattern == s_name or pattern == f"{s_name}.{s_ns}" for s_ns, s_name in attrs.services)
    if kind == keys.NODE:
        return pattern in (identity[1], identity[2]) and pattern != ""
    return pattern == identity[1] or keys.normalize_dns_name(pattern) in attrs.dns_names


@dataclass(frozen=True, slots=True)
class _CompiledFilter:
    namespaces: frozenset[str]
    client: str
    server: str

    def matches(self, rec: _Record) -> bool:
        client_id, server_id = rec.key[0], rec.key[1]
        if self.namespaces and not (
            keys.namespace_of(client_id) in self.namespaces or keys.namespace_of(server_id) in self.namespaces
        ):
            return False
        if self.client and not _matches_name(client_id, rec.client, self.client):
            return False
        if self.server and not _matches_name(server_id, rec.server, self.server):
            return False
        return True


def _compile(filters: Sequence[edge_pb2.EdgeFilter]) -> list[_CompiledFilter]:
    return [
        _CompiledFilter(namespaces=frozenset(f.namespaces), client=f.client.strip(), server=f.server.strip())
        for f in filters
    ]


# --- the store -------------------------------------------------------------------------------------


class EdgeStore:
    """Thread-safe merged edge set. Use as a context manager or call close() to flush a sqlite file."""

    def __init__(self, db_path: str | Path | None = None, *, flush_interval: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._records: dict[EdgeKey, _Record] = {}
        self._endpoints: dict[bytes, tuple[EndpointId, EndpointAttrs]] = {}
        # Records sorted by key, plus those added since the last sort: sorting the new ones and appending
        # them makes the next sort a linear merge of two runs instead of a full sort.
        self._order: list[_Record] = []
        self._unsorted: list[_Record] = []
        # Serialized Endpoint per (identity, attributes): many edges share a client, so ListEdges after a
        # large ingest serializes each distinct endpoint once. Only a cache; cleared when it grows.
        self._endpoint_wire: dict[tuple[EndpointId, EndpointAttrs], bytes] = {}
        self._next_row = 1
        self._lost: dict[int, list[int]] = {}  # LostSource -> [count, first ns, last ns]
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()  # taken before _lock; serialises file writes
        self._dirty: set[_Record] | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
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
                else:
                    # Attributes objects are interned per serialized endpoint, so "merged lately" is an
                    # identity test (the tuple scan stays in C); anything else is merged (idempotent).
                    ca = c[1]
                    if ca not in rec.client_seen:
                        _merge_side(rec, True, ca)
                    sa = s[1]
                    if sa not in rec.server_seen:
                        _merge_side(rec, False, sa)
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
        return MergeResult(accepted=accepted, rejected=rejected, error=error)

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

    def _insert(self, key: EdgeKey, client: EndpointAttrs, server: EndpointAttrs, first: int, last: int) -> _Record:
        """A new edge. Caller holds _lock."""
        rec = _Record(key, client, server, first, last)
        self._records[key] = rec
        self._unsorted.append(rec)
        if self._dirty is not None:
            rec.row_id = self._next_row
            self._next_row += 1
        rec.client_seen, rec.server_seen = (client,), (server,)
        # Serialize the endpoints now rather than at the first ListEdges: a new edge is rare in steady
        # state, while a ListEdges right after a large ingest (or a restart) is user-facing.
        self._edge_head(rec)
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
                edge_pb2.LostEvents(source=source, count=c, first=_timestamp(f), last=_timestamp(la))  # type: ignore[arg-type]
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
        compiled = _compile(filters)
        parts: list[bytes] = []
        with self._lock:
            for rec in self._sorted_records():
                if compiled and not any(f.matches(rec) for f in compiled):
                    continue
                wire = rec.wire
                if wire is None:
                    wire = rec.wire = self._edge_bytes(rec)
                parts.append(_TAG_RESPONSE_EDGE + _varint(len(wire)) + wire)
        lost = mapper_pb2.ListEdgesResponse(lost=self.lost_totals()).SerializeToString()
        return b"".join(parts) + lost

    def _sorted_records(self) -> list[_Record]:
        if self._unsorted:
            self._unsorted.sort(key=_record_key)
            self._order.extend(self._unsorted)
            self._order.sort(key=_record_key)
            self._unsorted.clear()
        return self._order

    def _endpoint_bytes(self, identity: EndpointId, attrs: EndpointAttrs) -> bytes:
        cache_key = (identity, attrs)
        wire = self._endpoint_wire.get(cache_key)
        if wire is None:
            if len(self._endpoint_wire) > 2 * len(self._records) + 10_000:
                self._endpoint_wire.clear()
            wire = self._endpoint_wire[cache_key] = keys.endpoint_message(identity, attrs).SerializeToString()
        return wire

    def _edge_head(self, rec: _Record) -> bytes:
        """Fields 1-4 of the serialized Edge (endpoints, port, protocol), cached until attributes change."""
        head = rec.head
        if head is None:
            client_id, server_id, port, protocol = rec.key
            cw = self._endpoint_bytes(client_id, rec.client)
            sw = self._endpoint_bytes(server_id, rec.server)
            head = rec.head = b"%b%b%b%b%b%b%b%b%b%b" % (
                _TAG_CLIENT, _varint(len(cw)), cw, _TAG_SERVER, _varint(len(sw)), sw,
                _TAG_PORT, _varint(port), _TAG_PROTOCOL, _varint(protocol),
            )
        return head

    def _edge_bytes(self, rec: _Record) -> bytes:
        head = rec.head
        if head is None:
            head = self._edge_head(rec)
        tail = rec.tail
        if tail is None:
            tail = rec.tail = edge_pb2.Edge(reporting_nodes=rec.nodes).SerializeToString()
        return b"%b%b%b%b%b%b" % (
            head,
            _timestamp_field(_TAG_FIRST_SEEN, rec.first),
            _timestamp_field(_TAG_LAST_SEEN, rec.last),
            _TAG_COUNT,
            _varint(rec.count),
            tail,
        )

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
                self._endpoint_wire.clear()
                if self._dirty is not None:
                    self._dirty.clear()
            if self._db is not None:
                with self._db:
                    self._db.execute("DELETE FROM edges")
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
                rows = [(rec.row_id,) for rec in stale if rec.row_id]
            if self._db is not None and rows:
                with self._db:
                    self._db.executemany("DELETE FROM edges WHERE id = ?", rows)
        if stale:
            log.info("expired %d edges last seen before %.3f", len(stale), older_than)
        return len(stale)

    # -- durability --

    def _open_db(self, path: Path, flush_interval: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used by whichever thread holds _db_lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._dirty = set()
        loaded, skipped = self._load()
        log.info("store %s: loaded %d edges (%d unreadable rows skipped)", path, loaded, skipped)
        self._flusher = threading.Thread(
            target=self._flush_loop, args=(flush_interval,), name="edge-store-flush", daemon=True
        )
        self._flusher.start()

    def _load(self) -> tuple[int, int]:
        assert self._db is not None
        loaded = skipped = 0
        for row_id, blob, extra in self._db.execute("SELECT id, edge, extra FROM edges"):
            self._next_row = max(self._next_row, row_id + 1)
            try:
                edge = edge_pb2.Edge.FromString(blob)
                key = keys.edge_key(edge)
                services = json.loads(extra) if extra else {}
                client = keys.endpoint_attrs(edge.client)
                server = keys.endpoint_attrs(edge.server)
                if services:
                    client = EndpointAttrs(client.pod, client.ip, _services(services["client"]), client.dns_names)
                    server = EndpointAttrs(server.pod, server.ip, _services(services["server"]), server.dns_names)
            except (InvalidEdge, DecodeError, ValueError, TypeError, KeyError) as exc:
                log.warning("skipping unreadable stored edge row %d: %s", row_id, exc)
                skipped += 1
                continue
            rec = _Record(
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
                        wire = rec.wire = self._edge_bytes(rec)
                    # The Edge holds one Service per side; only the rare extra ones need json.
                    extra = None
                    if len(rec.client.services) > 1 or len(rec.server.services) > 1:
                        extra = json.dumps({"client": rec.client.services, "server": rec.server.services})
                    rows.append((rec.row_id, wire, extra))
            if not rows:
                return 0
            try:
                with self._db:
                    self._db.executemany("INSERT OR REPLACE INTO edges (id, edge, extra) VALUES (?, ?, ?)", rows)
            except sqlite3.Error:
                # Keep them dirty so the next flush retries; a full disk must not lose the edges in memory.
                with self._lock:
                    assert self._dirty is not None
                    self._dirty.update(rec for rec in dirty if rec.alive)
                raise
        return len(rows)

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.flush()
            except sqlite3.Error:
                log.exception("writing edges to the store file failed; will retry")

    def close(self) -> None:
        """Stop the flusher, write what is pending and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
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


def _record_key(rec: _Record) -> str:
    return rec.sort_key


def _services(raw: object) -> tuple[keys.ServiceName, ...]:
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise TypeError("services must be a list")
    return tuple(sorted((str(ns), str(name)) for ns, name in raw))


def _lost_source_name(source: int) -> str:
    try:
        return edge_pb2.LostSource.Name(source)
    except ValueError:
        return f"source {source}"


def _reason(e: edge_pb2.Edge) -> str:
    """The reason a cheap pre-check rejected an edge (the slow path reports its own)."""
    try:
        keys.check_port_protocol(e.port, e.protocol)
    except InvalidEdge as exc:
        return str(exc)
    return "invalid timestamps: last_seen before first_seen or before 1970"
