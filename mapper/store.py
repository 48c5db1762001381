"""EdgeStore: the mapper's merged, optionally durable set of edges.

Every reported edge is merged into the record of its key (keys.edge_key): first_seen is the minimum,
last_seen the maximum, count the sum of the reported deltas, reporting nodes, DNS names and Services
are sorted bounded unions, and pod/ip show one example instance (the smallest seen; the proto has room
for one). Re-reporting an edge never creates a second record, and the merge is order-independent:
the same reports in any order give the same edges, also across a restart. Counts are exact sums of what
sniffers sent: a batch carrying an identity (sniffer instance, sequence) is merged once, however often
it is resent after a lost acknowledgement. Every field is checked first (validation.py); refused
edges come back with their reasons and change nothing.

Hot path (merge), designed for hundreds of thousands of observations per second in CPython:
- Sniffers re-report the same edges every interval with byte-identical endpoints, so the store caches
  serialized endpoint -> (identity, attributes). The batch is read through edge_view.py, which hands
  over each endpoint's bytes as they came on the wire, so a hit builds no Endpoint message and
  serializes nothing; only a miss parses the endpoint and runs the validation in keys.py and
  validation.py. Records are indexed by their identities as strings (IndexKey), whose hashes are cached. Because the attribute merge is idempotent, each record also
  remembers the attributes it merged lately, and a report of one of those (the same pod again, or a
  replica on another node) skips attribute merging too.
- Records are mutable slot objects updated in place under one lock; protos are built only when
  someone lists, and the serialized Edge is cached per record until the record changes.

Durability (with a sqlite path, persistence.py): merge() journals the raw batch; wait_durable() returns
once the journal commit holding it is done (group commit, every few ms), and only then does the server
acknowledge. Changed records are checkpointed every `flush_interval` seconds (and after MAX_JOURNAL_BYTES
of journal or MAX_NEW_EDGES new records): a record updated by many batches is written once per checkpoint, not once per batch, and a record
whose attributes did not change since it was last written whole (an edge re-reported) is written as its three
numbers, without encoding it. Reset and expiry checkpoint synchronously, and an eviction asks for a
checkpoint at once, so that what was forgotten does not come back with a replayed journal.

Bounds: at most `max_edges` records; inserting beyond evicts the stalest (by last_seen) in chunks of
1%, counted as LOST_SOURCE_MAPPER_EVICTED in the lost totals.

Around it: record.py (one edge's merge state), wire.py (the ListEdges encoder), filters.py (queries).
"""
from __future__ import annotations

import builtins  # EdgeStore.list shadows the builtin in the class body
import logging
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice, repeat
from pathlib import Path
from typing import Final

from google.protobuf.message import DecodeError

from mapper.edge_changes import DEFAULT_CAPACITY, ChangeLog, LogPosition
from mapper.edge_view import ColumnsView, EdgeView, edge_views, key_view, report_header, report_views
from mapper.filters import compile_filters, selects
from mapper.journal import JournalFile, JournalRow
from mapper.paging import decode_page_token
from mapper.persistence import (
    AppliedRow, Checkpoint, EdgeFile, GroupCommit, NumbersRow, extra_json, services_from_extra,
)
from mapper.record import MAX_REPORTING_NODES, EdgeRecord, merge_side, record_sort_key
from mapper.validation import (
    MAX_REJECTIONS, MAX_STORED_COUNT, IngestLimits, check_endpoint, check_node_name, check_times,
)
from mapper.wire import NS_PER_S, EdgeEncoder, list_response, page_of, timestamp
from netmapper_api import keys
from netmapper_api.keys import EdgeKey, EndpointAttrs, EndpointId, InvalidEdge
from netmapper_api.loss import LossSource
from netmapper_api.v1 import edge_pb2, mapper_pb2

log = logging.getLogger(__name__)

# Serialized endpoint -> (identity, attributes). Distinct endpoints are few (clients x pods +
# servers); the cache is cleared when it reaches this size so that pod churn cannot grow it forever.
_ENDPOINT_CACHE_MAX: Final[int] = 200_000
# Known edge (EdgeColumns key bytes, or an Edge's endpoint bytes, port, protocol) -> its record. One entry
# per (edge, client pod, server pod) reported, ~300 B each; cleared when full (a miss validates and
# resolves the edge again: _record_of).
_KEY_CACHE_MAX: Final[int] = 250_000
# Sniffer instances whose last applied batch is remembered (for exactly-once merging of resends); the
# least recently seen are forgotten beyond this. A sniffer restart makes a new instance.
MAX_INSTANCES: Final[int] = 100_000
MAX_INSTANCE_LENGTH: Final[int] = 128
# A checkpoint is also taken once this much was journaled, or this many edges were created, since the
# last one, so the journal that a restart replays stays bounded whatever the checkpoint interval: a
# re-reported edge replays in ~1 us (EdgeColumns; ~3 us as an Edge), a new one in ~20 us, so a few seconds
# at most. Each checkpoint writes every edge changed since the last: at 300k observations/s of re-reports
# a 64 MiB bound took one every second and a fifth of the mapper's time (bench/mapper_ingest.py).
MAX_JOURNAL_BYTES: Final[int] = 256 * 1024 * 1024
MAX_NEW_EDGES: Final[int] = 100_000
DEFAULT_MAX_EDGES: Final[int] = 2_000_000

IndexKey = tuple[str, str, int, int]
"""How records are indexed: an EdgeKey with each identity as one string (_identity_text). A str caches
its hash, so looking a record up hashes two strings' cached hashes and two ints instead of two nested
tuples of four fields each (the largest single cost of a steady-state merge)."""
Resolved = tuple[EndpointId, EndpointAttrs, str]
"""A cached endpoint: identity, attributes, identity as text."""

BatchId = tuple[str, int]
"""(sniffer instance, sequence): a batch's identity; the same identity is merged once."""


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Outcome of merging one batch."""

    accepted: int
    rejected: int
    error: str = ""  # the first rejection reason, "" when none
    rejections: tuple[tuple[int, str], ...] = ()  # (index in the batch, reason), at most MAX_REJECTIONS
    duplicate: bool = False  # the batch identity was merged before: nothing merged now
    position: int = 0  # journal position to wait for (wait_durable) before acknowledging; 0: none
    # edges of the batch that created a record (first report of their key), for mapper/observer.py
    new_edges: tuple[edge_pb2.Edge, ...] = ()
    newest_ns: int = 0  # the latest last_seen accepted (the reporting node's lag, in metrics)


_RowKey = bytes | tuple[bytes, bytes, int, int]
"""What a known edge is found by: an EdgeColumns key's bytes, or an Edge's endpoint bytes, port, protocol."""
_Source = EdgeView | None
"""Where a row of _merge_rows comes from: an Edge's view (None for EdgeColumns, whose key is the Edge)."""


def _edge_rows(views: Sequence[EdgeView]) -> Iterator[tuple[_RowKey, int, int, int, _Source]]:
    """The rows of Edge messages for _merge_rows: keyed by their endpoints' bytes, port and protocol."""
    for e in views:
        fs = e.first_seen
        ls = e.last_seen
        yield ((e.client, e.server, e.port, e.protocol), fs.seconds * NS_PER_S + fs.nanos,
               ls.seconds * NS_PER_S + ls.nanos, e.count, e)


@dataclass(slots=True)
class _Tally:
    """What a merge has counted so far, shared by the two forms of a batch's edges (Edge, EdgeColumns)."""

    accepted: int
    rejected: int
    error: str
    rejections: list[tuple[int, str]]
    new_edges: list[edge_pb2.Edge]
    newest: int

    def reject(self, index: int, reason: str) -> None:
        self.rejected += 1
        self.error = self.error or reason
        if len(self.rejections) < MAX_REJECTIONS:
            self.rejections.append((index, reason))


_Miss = Callable[[_RowKey, _Source, int, int, int, _Tally], EdgeRecord]
"""How _merge_rows finds the record of a key it has not seen: validate, resolve, create or merge."""


class EdgeStore:
    """Thread-safe merged edge set. Use as a context manager or call close() to flush a sqlite file."""

    def __init__(self, db_path: str | Path | None = None, *, flush_interval: float = 1.0,
                 limits: IngestLimits | None = None, max_edges: int = DEFAULT_MAX_EDGES,
                 commit_interval: float = 0.002, fsync: bool = False,
                 watch_capacity: int = DEFAULT_CAPACITY) -> None:
        self.limits = limits or IngestLimits()
        self.max_edges = max_edges
        self.evicted = 0
        self._lock = threading.Lock()
        self._records: dict[IndexKey, EdgeRecord] = {}
        self._endpoints: dict[bytes, Resolved] = {}
        self._by_key: dict[_RowKey, EdgeRecord] = {}  # keys of edges whose endpoints were merged into the record
        # Records sorted by key, plus those added since the last sort: sorting the new ones and appending
        # them makes the next sort a linear merge of two runs instead of a full sort.
        self._order: list[EdgeRecord] = []
        self._unsorted: list[EdgeRecord] = []
        self._encoder = EdgeEncoder()
        self._next_row = 1
        self._lost: dict[int, list[int]] = {}  # LostSource -> [count, first ns, last ns]
        self._db: EdgeFile | None = None
        self._db_lock = threading.Lock()  # taken before _lock; serialises edge file writes
        self._jdb: JournalFile | None = None
        self._journal_lock = threading.Lock()  # taken before _lock; serialises journal file writes
        # Records changed since the last checkpoint, each once (its `dirty` flag): a list and a flag on the
        # record cost less per merge than a set of 100k records. Forgotten ones (alive False) are skipped.
        self._dirty: list[EdgeRecord] | None = None
        self._deleted: list[int] = []  # file rows of records forgotten since the last checkpoint
        self._delete_all = False  # a reset since the last checkpoint
        self._applied: dict[str, tuple[int, int]] = {}  # instance -> (last merged sequence, seen ns)
        self._applied_dirty: set[str] = set()
        self._forgotten_instances: list[str] = []
        self._position = 0  # journal position of the last merged batch
        self._journal: list[JournalRow] = []  # merged, not yet committed
        self._journal_bytes = 0  # journaled since the last checkpoint: replay time after a crash is bounded
        self._new_edges = 0  # records created since the last checkpoint (the slow ones to replay)
        self._unjournaled = False  # merged without raw bytes since the last checkpoint
        self._committer: GroupCommit | None = None
        self._closed = False
        # WatchEdges: every merge stamps the records it changed with _version and publishes them.
        self._version = 1
        self._generation = 0
        self._store_id = uuid.uuid4().hex  # resume tokens of another store (or run) are not resumable here
        self.changes: ChangeLog[EdgeRecord] = ChangeLog(watch_capacity)
        if db_path is not None:
            self._open_db(Path(db_path), flush_interval, commit_interval, fsync)

    # -- ingest --

    def merge(self, edges: Sequence[edge_pb2.Edge] | None, node: str, *, batch: BatchId | None = None,
              raw: bytes | None = None, now_ns: int | None = None) -> MergeResult:
        """Merge one batch reported by `node`. Invalid edges are refused with their reasons, never raised.

        `batch` (instance, sequence) makes the merge exactly-once: a sequence at or below the instance's
        last merged one is a resend (duplicate=True, nothing merged). `raw`, the serialized request, is
        journaled when the store has a file: wait for result.position with wait_durable() before
        acknowledging. `now_ns` is the mapper clock the time window is checked against (replay).
        The edges are read from `raw` when given (it must be the request holding `edges`), see edge_view.py;
        `edges` may then be None (the server's path: the batch is parsed once, here). Raises DecodeError
        when `edges` is None and `raw` is not a ReportEdgesRequest."""
        views: Sequence[EdgeView] | None = None
        columns: ColumnsView | None = None
        if raw is not None:
            try:
                views, columns = report_views(raw)
            except DecodeError:
                if edges is None:
                    raise
        if edges is not None and (views is None or len(views) != len(edges)):
            views, columns = edge_views(mapper_pb2.ReportEdgesRequest(edges=edges).SerializeToString()), None
        if views is None:
            raise ValueError("merge needs the edges or the serialized request")
        return self._merge(views, columns, node, batch, raw, now_ns)

    def _merge(self, views: Sequence[EdgeView], columns: ColumnsView | None, node: str, batch: BatchId | None,
               raw: bytes | None, now_ns: int | None) -> MergeResult:
        now = time.time_ns() if now_ns is None else now_ns
        limits = self.limits
        size = len(views) + (len(columns.keys) if columns is not None else 0)
        bad_node = check_node_name(node)
        if bad_node:
            return MergeResult(accepted=0, rejected=size, error=bad_node if size else "",
                               rejections=tuple((i, bad_node) for i in range(min(size, MAX_REJECTIONS))))
        if batch is not None and (not 0 < batch[1] < 2**63 or len(batch[0]) > MAX_INSTANCE_LENGTH):
            why = f"batch identity needs a sequence in 1..2^63-1 and an instance of at most {MAX_INSTANCE_LENGTH} characters"
            return MergeResult(accepted=0, rejected=size, error=why if size else "",
                               rejections=tuple((i, why) for i in range(min(size, MAX_REJECTIONS))))
        lo, hi = limits.window_ns(now)
        tally = _Tally(0, 0, "", [], [], 0)
        changed: list[EdgeRecord] = []
        with self._lock:
            if batch is not None:
                done = self._applied.get(batch[0])
                if done is not None and batch[1] <= done[0]:
                    # A resend: acknowledge once everything merged so far is durable, merge nothing.
                    return MergeResult(accepted=0, rejected=0, duplicate=True, position=self._position)
            version = self._version
            dirty = self._dirty
            if views:
                self._merge_rows(_edge_rows(views), 0, node, now, lo, hi, changed, tally, self._edge_record)
            if columns is not None and columns.keys:
                ks, firsts, lasts, counts = columns.keys, columns.first_seen_ns, columns.last_seen_ns, columns.counts
                if len(firsts) == len(lasts) == len(counts) == len(ks):
                    # The key is its own source (no second copy of its bytes per edge).
                    self._merge_rows(zip(ks, firsts, lasts, counts, repeat(None)), len(views), node, now, lo, hi,
                                     changed, tally, self._key_record)
                else:
                    why = (f"columns differ in length: {len(ks)} keys, {len(firsts)} first_seen_ns, "
                           f"{len(lasts)} last_seen_ns, {len(counts)} counts")
                    for i in range(len(ks)):
                        tally.reject(len(views) + i, why)
            accepted = tally.accepted
            if changed:
                self._version = version + 1
                self.changes.publish(changed, self._version)
            if batch is not None:
                self._remember(batch, now)
            position = 0
            if dirty is not None and (accepted or batch is not None):
                self._position += 1
                position = self._position
                if raw is not None:
                    self._journal.append((position, now, raw))
                    self._journal_bytes += len(raw)
                    if ((self._journal_bytes > MAX_JOURNAL_BYTES or self._new_edges > MAX_NEW_EDGES)
                            and self._committer is not None):
                        self._committer.request_checkpoint()
                else:
                    self._unjournaled = True  # only a checkpoint makes this merge durable
        return MergeResult(accepted=accepted, rejected=tally.rejected, error=tally.error,
                           rejections=tuple(tally.rejections), position=position, new_edges=tuple(tally.new_edges),
                           newest_ns=tally.newest)

    def _merge_rows(self, rows: Iterable[tuple[_RowKey, int, int, int, _Source]], offset: int, node: str, now: int,
                    lo: int, hi: int, changed: list[EdgeRecord], tally: _Tally, miss: _Miss) -> None:
        """Merge one form of a batch's edges (the edges at `offset` onwards of the batch) given as rows
        (key, first ns, last ns, count, source): an EdgeColumns key's bytes, or an Edge's endpoint bytes,
        port and protocol. Caller holds _lock.

        A key seen before is one dict lookup and three numbers: its endpoints, port and protocol were
        validated and merged into the record when it was first seen (`miss`; merging the same attributes
        again would change nothing, record.py), so only the numbers are checked here."""
        limits = self.limits
        max_count = limits.max_count
        room = limits.max_edges - offset  # edges of the batch beyond max_edges are refused
        by_key = self._by_key
        dirty = self._dirty
        version = self._version
        accepted = 0
        newest = tally.newest
        for i, (key, first, last, n, source) in enumerate(rows):
            # A sniffer that does not stamp times still reports a real observation: stamp it now.
            if not first:
                first = last or now
            if not last:
                last = first
            if n > max_count or last < first or first < lo or last > hi or i >= room:
                tally.reject(offset + i, f"batch holds more than {limits.max_edges} edges" if i >= room
                             else f"count {n} above the limit of {max_count} per report" if n > max_count
                             else check_times(first, last, lo, hi))
                continue
            rec = by_key.get(key)
            if rec is None or not rec.alive:
                try:
                    rec = miss(key, source, first, last, n, tally)
                except InvalidEdge as exc:
                    tally.reject(offset + i, str(exc))
                    continue
            if first < rec.first:
                rec.first = first
            if last > rec.last:
                rec.last = last
            if last > newest:
                newest = last
            # count 0 would mean "seen but not counted"; an edge is only reported when seen.
            rec.count += n or 1
            if rec.count > MAX_STORED_COUNT:
                rec.count = MAX_STORED_COUNT
            if node not in rec.nodes:
                rec.nodes = keys.bounded_union(rec.nodes, (node,), MAX_REPORTING_NODES)
                rec.tail = None
            rec.wire = None
            rec.version = version
            changed.append(rec)
            if dirty is not None and not rec.dirty:
                rec.dirty = True
                dirty.append(rec)
            accepted += 1
        tally.accepted += accepted
        tally.newest = newest

    def _key_record(self, key: _RowKey, source: _Source, first: int, last: int, n: int, tally: _Tally) -> EdgeRecord:
        """_merge_rows' miss for an EdgeColumns key (the key is the serialized Edge). Raises InvalidEdge."""
        assert isinstance(key, bytes)
        try:
            e = key_view(key)
        except DecodeError:
            raise InvalidEdge("key is not a valid Edge message") from None
        rec, created = self._record_of(key, e, first, last)
        if created:
            edge = edge_pb2.Edge.FromString(key)  # as reported, for new-edge observers
            if edge.reporting_nodes:
                edge.ClearField("reporting_nodes")
            edge.count = n
            edge.first_seen.seconds, edge.first_seen.nanos = divmod(first, NS_PER_S)
            edge.last_seen.seconds, edge.last_seen.nanos = divmod(last, NS_PER_S)
            tally.new_edges.append(edge)
        return rec

    def _edge_record(self, key: _RowKey, source: _Source, first: int, last: int, n: int, tally: _Tally) -> EdgeRecord:
        """_merge_rows' miss for an Edge message (`source` is its view). Raises InvalidEdge."""
        assert source is not None
        rec, created = self._record_of(key, source, first, last)
        if created:
            # Built from the view: exactly the bytes validated (a field repeated on the wire merges in a full
            # parse, while the view keeps its last occurrence).
            tally.new_edges.append(edge_pb2.Edge.FromString(source.SerializeToString()))
        return rec

    def _record_of(self, key: _RowKey, e: EdgeView, first: int, last: int) -> tuple[EdgeRecord, bool]:
        """The record an edge names (and whether it was created now), its endpoints validated and merged;
        `key` then finds it without that work. Raises InvalidEdge (nothing cached). Caller holds _lock."""
        port, protocol = e.port, e.protocol
        keys.check_port_protocol(port, protocol)
        cb, sb = e.client, e.server
        c = self._endpoints.get(cb) or self._resolve(cb, "client")
        s = self._endpoints.get(sb) or self._resolve(sb, "server")
        index_key = (c[2], s[2], port, protocol)
        rec = self._records.get(index_key)
        created = rec is None
        if rec is None:
            rec = self._insert((c[0], s[0], port, protocol), c[1], s[1], first, last, index_key)
        else:
            # Attributes objects are interned per serialized endpoint, so "merged lately" is an identity
            # test (the tuple scan stays in C); anything else is merged (idempotent).
            if c[1] not in rec.client_seen:
                merge_side(rec, True, c[1])
            if s[1] not in rec.server_seen:
                merge_side(rec, False, s[1])
        if len(self._by_key) >= _KEY_CACHE_MAX:
            self._by_key.clear()  # only a cache: pod churn must not grow it forever
        self._by_key[key] = rec
        return rec, created

    def _remember(self, batch: BatchId, now: int) -> None:
        """Record batch as the instance's last merged one. Caller holds _lock."""
        instance = batch[0]
        if instance not in self._applied and len(self._applied) >= MAX_INSTANCES:
            oldest = min(self._applied, key=lambda i: self._applied[i][1])
            del self._applied[oldest]
            self._applied_dirty.discard(oldest)
            self._forgotten_instances.append(oldest)
        self._applied[instance] = (batch[1], now)
        if self._dirty is not None:
            self._applied_dirty.add(instance)

    def wait_durable(self, result: MergeResult, timeout: float = 30.0) -> bool:
        """Block until the batch behind `result` is committed to the file (True at once without a file)."""
        if self._committer is None or not result.position:
            return True
        return self._committer.wait_durable(result.position, timeout)

    def _resolve(self, raw: bytes, side: str) -> Resolved:
        """Identity and attributes of a serialized endpoint, cached by its bytes. Caller holds _lock.

        Sniffers re-send byte-identical endpoints every interval, so after the first report of an
        endpoint the hot path never reads its fields again. Invalid endpoints are not cached."""
        hit = self._endpoints.get(raw)
        if hit is None:
            if not raw:
                raise InvalidEdge(f"edge has no {side}")
            try:
                ep = edge_pb2.Endpoint.FromString(raw)
            except DecodeError:
                raise InvalidEdge(f"{side} is not a valid Endpoint message") from None
            identity = keys.endpoint_identity(ep, side)
            check_endpoint(ep, side, self.limits)
            if len(self._endpoints) >= _ENDPOINT_CACHE_MAX:
                self._endpoints.clear()  # only a cache: pod churn must not grow it forever
            hit = self._endpoints[raw] = (identity, keys.endpoint_attrs(ep), _identity_text(identity))
        return hit

    def _insert(self, key: EdgeKey, client: EndpointAttrs, server: EndpointAttrs, first: int, last: int,
                index_key: IndexKey) -> EdgeRecord:
        """A new edge. Caller holds _lock. `index_key` holds the cached endpoints' identity strings, so
        that later lookups compare them by identity, not by content (fewer cache misses per merge)."""
        if len(self._records) >= self.max_edges:
            self._evict_stalest(max(1, self.max_edges // 100))
        rec = EdgeRecord(key, client, server, first, last)
        self._records[index_key] = rec
        self._new_edges += 1
        self._unsorted.append(rec)
        if self._dirty is not None:
            rec.row_id = self._next_row
            self._next_row += 1
        rec.client_seen, rec.server_seen = (client,), (server,)
        # Serialize the endpoints now rather than at the first ListEdges: a new edge is rare in steady
        # state, while a ListEdges right after a large ingest (or a restart) is user-facing.
        self._encoder.head(rec, len(self._records))
        return rec

    def _evict_stalest(self, n: int) -> None:
        """Forget the n records last seen longest ago, counted as lost. Caller holds _lock."""
        stalest = sorted(self._records.values(), key=_last_seen)[:n]
        now = time.time_ns()
        self._forget(stalest)
        self.evicted += len(stalest)
        total = self._lost.setdefault(edge_pb2.LOST_SOURCE_MAPPER_EVICTED, [0, now, now])
        total[0] += len(stalest)
        total[2] = now
        log.warning("store holds its maximum of %d edges: evicted the %d stalest (%d so far)",
                    self.max_edges, len(stalest), self.evicted)
        if self._committer is not None:
            # Durably forgotten soon, not at the next periodic checkpoint: until then the file still holds
            # them, and a restart's replay evicts them again only if the store is as full as it was.
            self._committer.request_checkpoint()

    def _forget(self, recs: Sequence[EdgeRecord]) -> None:
        """Drop records from memory; their file rows go at the next checkpoint. Caller holds _lock."""
        for rec in recs:
            rec.alive = False
            del self._records[_index_key(rec.key)]
            if self._dirty is not None and rec.row_id:
                self._deleted.append(rec.row_id)
        if recs:
            self._order = [rec for rec in self._order if rec.alive]
            self._unsorted = [rec for rec in self._unsorted if rec.alive]

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

    def list_response_bytes(self, filters: Sequence[edge_pb2.EdgeFilter] = (), *, page_size: int = 0,
                            page_token: str = "") -> bytes:
        """A serialized ListEdgesResponse for `filters` (one page of at most page_size edges when set),
        with the lost totals: the server sends it as is. Raises filters.InvalidQuery."""
        compiled = compile_filters(filters)
        after = decode_page_token(page_token) if page_token else None
        with self._lock:
            order = self._sorted_records()
            start = bisect_right(order, after, key=record_sort_key) if after is not None else 0
            parts, next_token = page_of(
                (rec for rec in islice(order, start, None) if not compiled or selects(compiled, rec)),
                page_size=page_size, wire_of=self._wire_of, sort_key_of=record_sort_key)
            token = self._resume_token(self._version)
        return list_response(parts, lost=self.lost_totals(), next_page_token=next_token, resume_token=token)

    def _wire_of(self, rec: EdgeRecord) -> bytes:
        """The record's Edge message, encoded once and kept until the record changes. Under self._lock."""
        if rec.wire is None:
            rec.wire = self._encoder.edge_bytes(rec, len(self._records))
        return rec.wire

    # -- watch support (mapper/watch.py) --

    def _resume_token(self, cursor: int) -> str:
        return f"mem1:{self._store_id}:{self._generation}:{cursor}"

    def resume_token(self, cursor: int) -> str:
        with self._lock:
            return self._resume_token(cursor)

    def watch_snapshot(self, since: str = "") -> tuple[builtins.list[EdgeRecord], LogPosition, int] | None:
        """Records for a watcher to start with (all, or with a resume token those changed at or after
        its cursor), the change-log position to follow from, and the cursor they reflect. None: the
        token cannot be resumed here (another store, a restart, or a reset since)."""
        with self._lock:
            cursor = 0
            if since:
                parts = since.split(":")
                if len(parts) != 4 or parts[0] != "mem1" or parts[1] != self._store_id \
                        or parts[2] != str(self._generation) or not parts[3].isdigit():
                    return None
                cursor = int(parts[3])
            rows = [rec for rec in self._sorted_records() if rec.version >= cursor]
            return rows, self.changes.position(), self._version

    def edge_wire(self, rows: Sequence[EdgeRecord]) -> builtins.list[tuple[EdgeRecord, bytes]]:
        """The current serialized Edge of each row still alive (a watcher sends state, not history)."""
        out = []
        with self._lock:
            for rec in rows:
                if not rec.alive:
                    continue
                wire = rec.wire
                if wire is None:
                    wire = rec.wire = self._encoder.edge_bytes(rec, len(self._records))
                out.append((rec, wire))
        return out

    def _sorted_records(self) -> builtins.list[EdgeRecord]:
        if self._unsorted:
            self._unsorted.sort(key=record_sort_key)
            self._order.extend(self._unsorted)
            self._order.sort(key=record_sort_key)
            self._unsorted.clear()
        return self._order

    # -- forgetting --

    def reset(self) -> int:
        """Forget every edge (and its file rows, durably before returning); returns how many were
        forgotten. Lost totals and applied batch identities stay: they describe the sniffers, not the
        edge set."""
        with self._lock:
            removed = len(self._records)
            for rec in self._records.values():
                rec.alive = False
            self._records.clear()
            self._endpoints.clear()
            self._by_key.clear()
            self._order = []
            self._unsorted = []
            self._encoder.clear()
            if self._dirty is not None:
                self._dirty.clear()
                self._deleted.clear()
                self._delete_all = True
            self._forget_watchers()
        self.flush()
        log.info("reset: forgot %d edges", removed)
        return removed

    def expire(self, older_than: float) -> int:
        """Forget edges last seen before `older_than` (seconds since the epoch), durably; returns how many."""
        threshold = int(older_than * NS_PER_S)
        with self._lock:
            stale = [rec for rec in self._records.values() if rec.last < threshold]
            self._forget(stale)
            if stale:
                self._forget_watchers()
        if stale:
            self.flush()
            log.info("expired %d edges last seen before %.3f", len(stale), older_than)
        return len(stale)

    def _forget_watchers(self) -> None:
        """Caller holds _lock: edges were forgotten, so watchers resync and old resume tokens are void."""
        self._generation += 1
        self.changes.forget()

    # -- durability --

    def _open_db(self, path: Path, flush_interval: float, commit_interval: float, fsync: bool) -> None:
        self._db = EdgeFile(path, fsync=fsync)
        self._jdb = JournalFile(path.with_name(path.name + ".journal"), fsync=fsync)
        self._dirty = []
        loaded, skipped = self._load(self._db)
        for instance, sequence, seen in self._db.applied():
            self._applied[instance] = (sequence, seen)
        self._position = through = self._db.journal_through()
        replayed = 0
        for position, received, raw in self._jdb.after(through):
            try:
                header, (views, columns) = report_header(raw), report_views(raw)
            except DecodeError as exc:
                log.warning("skipping unreadable journal row %d: %s", position, exc)
                continue
            batch = (header.instance, header.sequence) if header.instance else None
            self._position = position - 1  # the merge numbers it as it was numbered when journaled
            self._merge(views, columns, header.node, batch, None, received)
            self._position = max(self._position, position)
            replayed += 1
        log.info("store %s: loaded %d edges (%d unreadable rows skipped), replayed %d journaled batches",
                 path, loaded, skipped, replayed)
        self._committer = GroupCommit(self._commit_journal, lambda: self._checkpoint()[1],
                                      commit_interval=commit_interval, checkpoint_interval=flush_interval)
        self._committer.set_durable(self._position)

    def _load(self, db: EdgeFile) -> tuple[int, int]:
        loaded = skipped = 0
        for row_id, blob, extra, first_ns, last_ns, count in db.rows():
            self._next_row = max(self._next_row, row_id + 1)
            try:
                edge = edge_pb2.Edge.FromString(blob)
                key = keys.edge_key(edge)
                services = services_from_extra(extra)
                client = keys.endpoint_attrs(edge.client)
                server = keys.endpoint_attrs(edge.server)
                if services:
                    client = EndpointAttrs(client.pod, client.ip, services[0], client.dns_names, client.labels)
                    server = EndpointAttrs(server.pod, server.ip, services[1], server.dns_names, server.labels)
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
            if first_ns is not None and last_ns is not None and count is not None:
                rec.first, rec.last, rec.count = first_ns, last_ns, count  # newer than the blob's
            rec.nodes = tuple(sorted(edge.reporting_nodes))
            rec.row_id = row_id
            if _index_key(key) in self._records:
                # Cannot happen with files this store wrote (keys are unique); keep the first if it does.
                log.warning("duplicate stored edge row %d ignored", row_id)
                skipped += 1
                continue
            self._records[_index_key(key)] = rec
            self._unsorted.append(rec)
            if first_ns is None:
                rec.wire = blob  # the stored bytes are exactly what ListEdges would build
            loaded += 1
        return loaded, skipped

    def flush(self) -> int:
        """Checkpoint now: write changed records and drop the journal they include; returns rows written."""
        if self._db is None:
            return 0
        written, position = self._checkpoint()
        if self._committer is not None:
            self._committer.set_durable(position)
        return written

    def _commit_journal(self) -> int:
        """One round of the commit thread: the journal position now durable (-1: needs a checkpoint)."""
        with self._journal_lock:
            with self._lock:
                rows, self._journal = self._journal, []
                unjournaled = self._unjournaled
            if not rows:
                return -1 if unjournaled else 0
            assert self._jdb is not None
            try:
                self._jdb.append(rows)
            except Exception:  # noqa: BLE001 - whatever failed, keep it pending and re-raise
                with self._lock:
                    self._journal[:0] = rows  # keep them, in order, for the next round
                raise
        return -1 if unjournaled else rows[-1][0]

    def _checkpoint(self) -> tuple[int, int]:
        """(rows written, journal position included) of one checkpoint transaction."""
        with self._db_lock:
            if self._db is None:
                return 0, 0
            with self._lock:
                assert self._dirty is not None
                dirty, self._dirty = self._dirty, []
                n = len(self._records)
                # Re-reported edges (the steady state) changed only their numbers: no encoding for those.
                numbers: list[NumbersRow] = []
                whole: list[EdgeRecord] = []
                for rec in dirty:
                    rec.dirty = False
                    if not rec.alive:
                        continue  # forgotten: its row is deleted by this checkpoint
                    if rec.head is not None and rec.head is rec.saved_head and rec.tail is rec.saved_tail:
                        numbers.append((rec.first, rec.last, rec.count, rec.row_id))
                    else:
                        whole.append(rec)
                snapshot = [(rec, self._encoder.parts(rec, n)) for rec in whole]
                for rec, parts in snapshot:
                    rec.saved_head, rec.saved_tail = parts[0], parts[1]
                applied: list[AppliedRow] = [(i, *self._applied[i]) for i in self._applied_dirty if i in self._applied]
                through = self._position
                journal_bytes, self._journal_bytes = self._journal_bytes, 0
                new_edges, self._new_edges = self._new_edges, 0
                unjournaled, self._unjournaled = self._unjournaled, False
                applied_dirty, self._applied_dirty = self._applied_dirty, set()
                deleted, forgotten, delete_all = self._deleted, self._forgotten_instances, self._delete_all
                self._deleted, self._forgotten_instances, self._delete_all = [], [], False
            # Assembled outside the lock: merges go on meanwhile (the snapshot is consistent as of `through`).
            # The numbers go to their own columns: the blob is the head and tail as they are (no encoding).
            rows = [(rec.row_id, head + tail, extra_json(rec.client.services, rec.server.services), first, last, count)
                    for rec, (head, tail, first, last, count) in snapshot]
            cp = Checkpoint(rows=rows, numbers=numbers, deleted=deleted, applied=applied, forgotten_instances=forgotten,
                            through=through, delete_all=delete_all)
            try:
                self._db.checkpoint(cp)
            except Exception:  # noqa: BLE001 - whatever failed, keep it pending and re-raise
                # Keep everything pending so the next round retries; a full disk must not lose edges in memory.
                with self._lock:
                    assert self._dirty is not None
                    for rec in whole:  # not written: the next checkpoint writes them whole
                        rec.saved_head = rec.saved_tail = None
                    for rec in dirty:
                        if rec.alive and not rec.dirty:
                            rec.dirty = True
                            self._dirty.append(rec)
                    self._journal_bytes += journal_bytes
                    self._new_edges += new_edges
                    self._unjournaled = self._unjournaled or unjournaled
                    self._applied_dirty |= applied_dirty
                    self._deleted[:0] = deleted
                    self._forgotten_instances[:0] = forgotten
                    self._delete_all = self._delete_all or delete_all
                raise
        with self._journal_lock:
            if self._jdb is not None:
                self._jdb.drop_through(through)  # a crash before this: the next load skips these rows
        return len(rows), through

    def close(self) -> None:
        """Stop the committer, write what is pending and close the files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._committer is not None:
            self._committer.stop()
        if self._db is not None:
            try:
                self.flush()
            finally:
                with self._db_lock:
                    self._db.close()
                    self._db = None
                with self._journal_lock:
                    if self._jdb is not None:
                        self._jdb.close()
                        self._jdb = None

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _identity_text(identity: EndpointId) -> str:
    """One string per identity: fields joined with NUL, which no validated identity holds (keys.sort_key)."""
    return f"{identity[0]}\0{identity[1]}\0{identity[2]}\0{identity[3]}"


def _index_key(key: EdgeKey) -> IndexKey:
    return _identity_text(key[0]), _identity_text(key[1]), key[2], key[3]


def _last_seen(rec: EdgeRecord) -> int:
    return rec.last


def _lost_source_name(source: int) -> str:
    try:
        return LossSource(source).name
    except ValueError:
        return f"source {source}"
