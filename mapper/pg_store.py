"""PgEdgeStore: the merged edge set in PostgreSQL, shared by several mapper replicas.

Same contract as the SQLite EdgeStore (mapper/store.py): merge one reported batch, list, reset, expire,
lost totals. What differs is where the truth lives:

- Merge is one transaction per batch: the batch is validated and pre-merged by key in Python, then one
  `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` merges every edge in SQL (min first_seen, max
  last_seen, sum of counts, bounded sorted unions of nodes, Services and DNS names, the smallest example
  pod with its labels: the same rules as the SQLite store). merge() returns after COMMIT, so an
  acknowledgement sent after it is durable. Rows are upserted in key order, so two replicas merging
  overlapping batches lock rows in one order and cannot deadlock.
- Idempotent batches: a batch that carries an identity (sniffer instance, sequence) advances that
  instance's row in nm_batches in the same transaction; a resent batch (sequence at or below the row's)
  changes nothing, so counts stay exact however often an acknowledgement is lost, on whichever replica
  the resend lands (the semantics of the SQLite store's batch identities, issue 9).
- Each replica keeps a read model: a copy of the rows, refreshed from the rows whose writing
  transaction id (xid) is at or above the cursor of its last refresh. The cursor is the xmin of the
  refresh's snapshot (every transaction below it has ended), so a transaction that commits late is still
  read; a row read twice is simply replaced. Refreshes run before every query (read-your-writes across
  replicas), every second, and while anyone watches on LISTEN/NOTIFY from any replica's commit.
  ListEdges, paging and
  WatchEdges are served from the read model; every refresh publishes what changed to the ChangeLog
  that WatchEdges reads, so a watcher on one replica sees edges merged by another.
- reset and expiry delete rows and bump nm_meta.generation; every replica reloads on seeing it and
  tells its watchers (forgotten).
"""
from __future__ import annotations

import builtins
import functools
import json
import logging
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final, ParamSpec, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from mapper.edge_changes import ChangeLog, LogPosition
from mapper.filters import InvalidQuery, compile_filters, selects
from mapper.paging import decode_page_token
from mapper.pg_sql import SCHEMA, SELECT_ROWS, UPSERT, array_literal, joined, split_pairs
from mapper.store import MergeResult
from mapper.stores import StoreUnavailable
from mapper.validation import (MAX_REJECTIONS, MAX_STORED_COUNT, IngestLimits, check_endpoint, check_node_name,
                               check_numbers)
from mapper.wire import NS_PER_S, list_response, page_of
from netmapper_api import keys
from netmapper_api.columns import column_edges
from netmapper_api.keys import EdgeKey, EndpointAttrs, InvalidEdge
from netmapper_api.v1 import edge_pb2, mapper_pb2

log = logging.getLogger(__name__)

CHANNEL: Final[str] = "netmapper_edges"
# A sniffer instance's last sequence is remembered this long after its last batch: far longer than any retry.
BATCH_MEMORY_S: Final[int] = 24 * 3600
_REFRESH_INTERVAL: Final[float] = 1.0
_REFRESH_GAP: Final[float] = 0.05  # at most ~20 NOTIFY-driven refreshes a second per replica
_ENDPOINT_CACHE_MAX: Final[int] = 200_000
# How long a call waits for a pooled connection: while the database is away, callers hear UNAVAILABLE soon.
_CHECKOUT_TIMEOUT: Final[float] = 5.0
_WATCHED_RECENTLY: Final[float] = 5.0  # a watcher reads its log at least every second (watch.py polls)

BatchId = tuple[str, int]
"""(sniffer instance, sequence): a batch's identity; the same identity is merged once."""

@dataclass(frozen=True, slots=True)
class PgRow:
    """One edge of a replica's read model (edge_query.Row); wire is its serialized netmapper.v1.Edge."""

    key: EdgeKey
    sort_key: str
    client: EndpointAttrs
    server: EndpointAttrs
    first: int
    last: int
    count: int
    xid: int
    wire: bytes


@dataclass(slots=True)
class _Pending:
    """One key of a batch being pre-merged (several reports of one key in a batch become one row)."""

    key: EdgeKey
    client: EndpointAttrs
    server: EndpointAttrs
    first: int
    last: int
    count: int


def _merge_attrs(cur: EndpointAttrs, new: EndpointAttrs) -> EndpointAttrs:
    pod, labels = keys.merge_example(cur.pod, cur.labels, new.pod, new.labels)
    ip = new.ip if new.ip and (not cur.ip or new.ip < cur.ip) else cur.ip
    return EndpointAttrs(pod=pod, ip=ip, services=keys.bounded_union(cur.services, new.services, keys.MAX_SERVICES),
                         dns_names=keys.bounded_union(cur.dns_names, new.dns_names, keys.MAX_DNS_NAMES),
                         labels=labels)


Resolved = tuple[keys.EndpointId, EndpointAttrs]


def _endpoint(ep: edge_pb2.Endpoint, side: str, cache: dict[bytes, Resolved], limits: IngestLimits) -> Resolved:
    """Identity and attributes of an endpoint, cached by its bytes: sniffers resend identical endpoints.
    Checked as the SQLite store checks it (validation.py) before it is cached."""
    raw = ep.SerializeToString()
    hit = cache.get(raw)
    if hit is None:
        if not raw:
            raise InvalidEdge(f"edge has no {side}")
        check_endpoint(ep, side, limits)
        if len(cache) >= _ENDPOINT_CACHE_MAX:
            cache.clear()
        hit = cache[raw] = (keys.endpoint_identity(ep, side), keys.endpoint_attrs(ep))
    return hit


def _parse(e: edge_pb2.Edge, now: int, window: tuple[int, int], limits: IngestLimits,
           cache: dict[bytes, Resolved]) -> _Pending:
    """Validate one reported edge with the SQLite store's rules; raises InvalidEdge with the reason."""
    first = e.first_seen.seconds * NS_PER_S + e.first_seen.nanos
    last = e.last_seen.seconds * NS_PER_S + e.last_seen.nanos
    if not first:  # a sniffer that does not stamp times still reports a real observation
        first = last or now
    if not last:
        last = first
    reason = check_numbers(e, first, last, window[0], window[1], limits)
    if reason:
        raise InvalidEdge(reason)
    client_id, client = _endpoint(e.client, "client", cache, limits)
    server_id, server = _endpoint(e.server, "server", cache, limits)
    key: EdgeKey = (client_id, server_id, e.port, e.protocol)
    return _Pending(key, client, server, first, last, e.count or 1)


P = ParamSpec("P")
T = TypeVar("T")


def _unavailable_on_db_error(method: Callable[P, T]) -> Callable[P, T]:
    """Connection-level failures become StoreUnavailable (UNAVAILABLE to clients: sniffers resend);
    anything else, such as a bug in a statement, propagates as it is."""
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
    return wrapper


class PgEdgeStore:
    """Edge store in PostgreSQL at `url` (postgresql://...). Thread-safe; close() when done."""

    def __init__(self, url: str, *, pool_size: int = 16, refresh_interval: float = _REFRESH_INTERVAL,
                 watch_capacity: int = 200_000, limits: IngestLimits | None = None) -> None:
        self.url = url
        self.limits = limits or IngestLimits()
        try:
            # One direct connection first: an unreachable or refusing server fails at once, with its reason,
            # instead of after the pool's retries.
            with psycopg.connect(url, connect_timeout=10) as conn:
                self._create_schema(conn)
        except psycopg.Error as exc:
            raise OSError(f"cannot use PostgreSQL at {_redact(url)}: {exc}") from exc
        # check: a connection is tested when handed out, so after a database restart no call gets a dead one.
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False,
                                    kwargs={"autocommit": False}, name="netmapper-pg",
                                    check=ConnectionPool.check_connection)
        try:
            self._pool.open(wait=True, timeout=15)
        except PoolTimeout as exc:
            self._pool.close()
            raise OSError(f"cannot use PostgreSQL at {_redact(url)}: {exc}") from exc
        self._lock = threading.Lock()  # read model
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._rows: dict[str, PgRow] = {}  # sort_key -> row
        self._order: list[str] | None = []  # sorted sort keys; None when stale
        self._cursor = 0  # xid cursor of the last refresh
        self._last_refresh = 0.0  # monotonic
        self._generation = -1
        self._store_id = ""
        self._endpoint_wire: dict[tuple[object, ...], tuple[EndpointAttrs, bytes]] = {}
        self._endpoints: dict[bytes, Resolved] = {}  # a cache; races between merges only recompute
        self.changes: ChangeLog[PgRow] = ChangeLog(watch_capacity)
        self._stop = threading.Event()
        self._closed = False
        self.refresh()
        self._listener = threading.Thread(target=self._listen_loop, args=(refresh_interval,),
                                          name="pg-store-listen", daemon=True)
        self._listener.start()

    # -- setup --

    @staticmethod
    def _create_schema(conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # Replicas start together: one creates the schema, the others wait for it.
            conn.execute("SELECT pg_advisory_xact_lock(7236152)")
            conn.execute(SCHEMA)
            conn.execute("INSERT INTO nm_meta (id, store_id, generation) VALUES (1, %s, 0) "
                         "ON CONFLICT (id) DO NOTHING", (uuid.uuid4().hex,))

    # -- ingest --

    @_unavailable_on_db_error
    def merge(self, edges: Iterable[edge_pb2.Edge] | None, node: str, *, batch: BatchId | None = None,
              lost: Sequence[edge_pb2.LostEvents] = (), raw: bytes | None = None,
              now_ns: int | None = None) -> MergeResult:
        """Merge one batch reported by `node` and commit it; returns after COMMIT (so it is durable: there is
        no journal, `raw` is accepted for the store interface and unused). With `batch` (instance, sequence)
        the merge is exactly-once, as in the SQLite store: a sequence at or below the instance's last merged
        one is a resend and merges nothing (accepted 0). `edges` None: they are parsed from `raw` (DecodeError
        when it is not a ReportEdgesRequest)."""
        refused: list[tuple[int, str]] = []  # EdgeColumns that cannot be read as edges
        if edges is None:
            if raw is None:
                raise ValueError("merge needs the edges or the serialized request")
            request = mapper_pb2.ReportEdgesRequest.FromString(raw)
            edges = list(request.edges)
            try:
                edges += column_edges(request.columns)
            except ValueError as exc:
                refused = [(len(edges) + i, str(exc)) for i in range(len(request.columns.keys))]
        edges = list(edges)
        bad_node = check_node_name(node)
        if bad_node:
            return MergeResult(accepted=0, rejected=len(edges), error=bad_node if edges else "",
                               rejections=tuple((i, bad_node) for i in range(min(len(edges), MAX_REJECTIONS))))
        now = now_ns if now_ns is not None else time.time_ns()
        limits = self.limits
        window = limits.window_ns(now)
        rejections: list[tuple[int, str]] = refused[:MAX_REJECTIONS]
        pending: dict[EdgeKey, _Pending] = {}
        reported: dict[EdgeKey, edge_pb2.Edge] = {}  # the first report of each key (new-edge observers)
        accepted, rejected = 0, len(refused)
        error = refused[0][1] if refused else ""
        for index, e in enumerate(edges):
            try:
                if index >= limits.max_edges:
                    raise InvalidEdge(f"batch holds more than {limits.max_edges} edges")
                p = _parse(e, now, window, limits, self._endpoints)
            except InvalidEdge as exc:
                rejected += 1
                error = error or str(exc)
                if len(rejections) < MAX_REJECTIONS:
                    rejections.append((index, str(exc)))
                continue
            accepted += 1
            cur = pending.get(p.key)
            if cur is None:
                pending[p.key] = p
                reported[p.key] = e
            else:
                cur.client, cur.server = _merge_attrs(cur.client, p.client), _merge_attrs(cur.server, p.server)
                cur.first, cur.last = min(cur.first, p.first), max(cur.last, p.last)
                cur.count = min(cur.count + p.count, MAX_STORED_COUNT)
        new_edges: list[edge_pb2.Edge] = []
        with self._pool.connection(timeout=_CHECKOUT_TIMEOUT) as conn:
            with conn.transaction():
                if batch is not None:
                    # The instance's row is locked until COMMIT: a resend racing on another replica waits,
                    # then finds the sequence merged.
                    row = conn.execute(
                        "INSERT INTO nm_batches AS b (instance, sequence) VALUES (%s, %s) ON CONFLICT (instance) "
                        "DO UPDATE SET sequence = EXCLUDED.sequence, applied_at = now() "
                        "WHERE b.sequence < EXCLUDED.sequence RETURNING 1", batch).fetchone()
                    if row is None:
                        log.info("batch %s/%d from %s was merged before; not merged again", batch[0], batch[1], node)
                        return MergeResult(accepted=0, rejected=0, duplicate=True)
                if pending:
                    ordered = sorted((keys.sort_key(p.key), p) for p in pending.values())
                    inserted = conn.execute(UPSERT, (self._batch_json(ordered, node),)).fetchall()
                    created = {bytes(k).decode() for k, is_new in inserted if is_new}
                    # In the order they were reported, as the SQLite store lists them.
                    new_edges = [e for key, e in reported.items() if keys.sort_key(key) in created]
                if lost:
                    self._add_lost(conn, lost, now)
                if pending:
                    conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        return MergeResult(accepted=accepted, rejected=rejected, error=error, rejections=tuple(rejections),
                           new_edges=tuple(new_edges), newest_ns=max((p.last for p in pending.values()), default=0))

    @staticmethod
    def _batch_json(rows: Sequence[tuple[str, _Pending]], node: str) -> str:
        """The batch as one JSON array of rows in pg_sql.COLUMNS order (rows sorted by key: lock order)."""
        out = []
        nodes = array_literal((node,))
        for sort_key, p in rows:
            (ck, c1, c2, c3), (sk, s1, s2, s3), port, protocol = p.key
            c, s = p.client, p.server
            out.append((
                sort_key.encode().hex(), ck, c1, c2, c3, sk, s1, s2, s3, port, protocol,
                c.pod, c.ip, array_literal(joined(c.services)), array_literal(c.dns_names),
                array_literal(joined(c.labels)),
                s.pod, s.ip, array_literal(joined(s.services)), array_literal(s.dns_names),
                array_literal(joined(s.labels)),
                p.first, p.last, p.count, nodes,
            ))
        return json.dumps(out, separators=(",", ":"))

    @staticmethod
    def _add_lost(conn: psycopg.Connection[Any], lost: Iterable[edge_pb2.LostEvents], now: int) -> None:
        for ev in lost:
            if not ev.count:
                continue
            first = ev.first.seconds * NS_PER_S + ev.first.nanos or now
            last = ev.last.seconds * NS_PER_S + ev.last.nanos or first
            conn.execute(
                "INSERT INTO nm_lost AS l (source, count, first_ns, last_ns) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (source) DO UPDATE SET count = l.count + EXCLUDED.count, "
                "first_ns = LEAST(l.first_ns, EXCLUDED.first_ns), last_ns = GREATEST(l.last_ns, EXCLUDED.last_ns)",
                (int(ev.source), ev.count, first, last))

    @_unavailable_on_db_error
    def record_lost(self, lost: Iterable[edge_pb2.LostEvents], node: str) -> None:
        """Add a sniffer's lost-observation report to the shared totals."""
        lost = list(lost)
        with self._pool.connection(timeout=_CHECKOUT_TIMEOUT) as conn, conn.transaction():
            self._add_lost(conn, lost, time.time_ns())
        for ev in lost:
            if ev.count:
                log.warning("node %s lost %d observations (source %d)", node, ev.count, ev.source)

    @_unavailable_on_db_error
    def lost_totals(self) -> list[edge_pb2.LostEvents]:
        with self._pool.connection(timeout=_CHECKOUT_TIMEOUT) as conn:
            rows = conn.execute("SELECT source, count, first_ns, last_ns FROM nm_lost ORDER BY source").fetchall()
            conn.commit()
        out = []
        for source, count, first, last in rows:
            ev = edge_pb2.LostEvents(source=source, count=count)
            ev.first.FromNanoseconds(first)
            ev.last.FromNanoseconds(last)
            out.append(ev)
        return out

    # -- read model --

    @_unavailable_on_db_error
    def refresh(self) -> int:
        """Bring this replica's read model up to date with the database; returns rows that changed."""
        with self._refresh_lock:
            with self._pool.connection(timeout=_CHECKOUT_TIMEOUT) as conn:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                store_id, generation = conn.execute("SELECT store_id, generation FROM nm_meta").fetchone()  # type: ignore[misc]
                xmin = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()[0]  # type: ignore[index]
                reload = generation != self._generation
                cursor = 0 if reload else self._cursor
                fetched = conn.execute(SELECT_ROWS + " WHERE xid >= %s", (cursor,)).fetchall()
                conn.commit()
            self._last_refresh = time.monotonic()
            rows = [self._row(r) for r in fetched]
            with self._lock:
                if reload:
                    if self._generation >= 0:
                        log.info("edges were forgotten by a replica (generation %d): reloading", generation)
                    self._rows = {}
                    self._order = None
                    self._generation, self._store_id = generation, store_id
                    self.changes.forget()
                changed = []
                for row in rows:
                    old = self._rows.get(row.sort_key)
                    if old is not None and old.xid == row.xid:
                        continue  # read again because its transaction was near the cursor: unchanged
                    if old is None:
                        self._order = None
                    self._rows[row.sort_key] = row
                    changed.append(row)
                self._cursor = xmin
                self.changes.publish(changed, xmin)
            return len(changed)

    def _row(self, r: tuple[Any, ...]) -> PgRow:
        (key_b, ck, c1, c2, c3, sk, s1, s2, s3, port, protocol, cpod, cip, csvc, cdns, clabels,
         spod, sip, ssvc, sdns, slabels, first, last, count, nodes, xid) = r
        key: EdgeKey = ((ck, c1, c2, c3), (sk, s1, s2, s3), port, protocol)
        client, client_wire = self._endpoint(key[0], cpod, cip, csvc, cdns, clabels)
        server, server_wire = self._endpoint(key[1], spod, sip, ssvc, sdns, slabels)
        edge = edge_pb2.Edge(port=port, protocol=protocol, count=count, reporting_nodes=nodes)
        edge.client.MergeFromString(client_wire)
        edge.server.MergeFromString(server_wire)
        edge.first_seen.FromNanoseconds(first)
        edge.last_seen.FromNanoseconds(last)
        return PgRow(key, bytes(key_b).decode(), client, server, first, last, count, xid, edge.SerializeToString())

    def _endpoint(self, identity: keys.EndpointId, pod: str, ip: str, services: list[str], dns: list[str],
                  labels: list[str]) -> tuple[EndpointAttrs, bytes]:
        """Attributes and serialized Endpoint of one side of a row, cached by the column values: many
        edges share a client, so a reload of 100k rows builds each distinct endpoint once."""
        cache_key = (identity, pod, ip, tuple(services), tuple(dns), tuple(labels))
        hit = self._endpoint_wire.get(cache_key)
        if hit is None:
            if len(self._endpoint_wire) > 2 * len(self._rows) + 10_000:
                self._endpoint_wire.clear()
            attrs = EndpointAttrs(pod, ip, split_pairs(services), tuple(dns), split_pairs(labels))
            hit = self._endpoint_wire[cache_key] = (attrs, keys.endpoint_message(identity, attrs).SerializeToString())
        return hit

    def _sorted_keys(self) -> list[str]:
        """Caller holds _lock."""
        if self._order is None:
            self._order = sorted(self._rows)
        return self._order

    def _listen_loop(self, interval: float) -> None:
        """Refresh on every NOTIFY from any replica's commit, and every `interval` seconds regardless."""
        backoff = 1.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.refresh()  # anything committed while not listening
                    if backoff > 1.0:
                        log.info("PostgreSQL listener: connected again")
                    backoff = 1.0
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=interval, stop_after=1):
                            pass
                        # Queries refresh before answering, so NOTIFY-driven refreshes are for watchers;
                        # without them the read model is refreshed once per interval (every changed row
                        # read at most once a second, however often it changes; a query stays cheap).
                        if self._stop.is_set():
                            continue
                        if not self.changes.watched_within(_WATCHED_RECENTLY):
                            if time.monotonic() - self._last_refresh >= interval:
                                self.refresh()
                            continue
                        # One refresh covers every commit so far, however many notifications arrived;
                        # under heavy ingest a short pause lets one refresh cover many commits.
                        self.refresh()
                        self._stop.wait(_REFRESH_GAP)
                        for _ in conn.notifies(timeout=0):
                            pass
            except (psycopg.Error, StoreUnavailable) as exc:
                if self._stop.is_set():
                    return
                if backoff == 1.0:  # the first failure of an outage; then quietly
                    log.warning("PostgreSQL listener: %s; reconnecting", str(exc).strip())
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)  # watchers wait for the listener: not long

    # -- queries --

    def __len__(self) -> int:
        self.refresh()
        with self._lock:
            return len(self._rows)

    def list(self, filters: Sequence[edge_pb2.EdgeFilter] = ()) -> list[edge_pb2.Edge]:
        return list(mapper_pb2.ListEdgesResponse.FromString(self.list_response_bytes(filters)).edges)

    def list_response_bytes(self, filters: Sequence[edge_pb2.EdgeFilter] = (), *, page_size: int = 0,
                            page_token: str = "") -> bytes:
        """A serialized ListEdgesResponse (one page when page_size > 0); raises InvalidQuery."""
        compiled = compile_filters(filters)
        after = decode_page_token(page_token) if page_token else None
        self.refresh()
        with self._lock:
            order = self._sorted_keys()
            start = bisect_right(order, after) if after is not None else 0
            rows = self._rows
            parts, next_token = page_of(
                (row for row in (rows[k] for k in islice(order, start, None)) if selects(compiled, row)),
                page_size=page_size, wire_of=lambda row: row.wire, sort_key_of=lambda row: row.sort_key)
            token = self._resume_token(self._cursor)
        return list_response(parts, lost=self.lost_totals(), next_page_token=next_token, resume_token=token)

    # -- watch support (mapper/watch.py) --

    def _resume_token(self, cursor: int) -> str:
        return f"pg1:{self._store_id}:{self._generation}:{cursor}"

    def resume_token(self, cursor: int) -> str:
        with self._lock:
            return self._resume_token(cursor)

    def watch_snapshot(self, since: str = "") -> tuple[builtins.list[PgRow], LogPosition, int] | None:
        """Rows for a watcher to start with, the log position to follow from and the cursor they reflect:
        all rows, or (with a resume token) the rows changed at or after its cursor. None: the token
        cannot be resumed here (another store or a generation since)."""
        self.refresh()
        with self._lock:
            cursor = 0
            if since:
                parts = since.split(":")
                if len(parts) != 4 or parts[0] != "pg1" or parts[1] != self._store_id \
                        or parts[2] != str(self._generation) or not parts[3].isdigit():
                    return None
                cursor = int(parts[3])
            rows = [self._rows[k] for k in self._sorted_keys() if self._rows[k].xid >= cursor]
            return rows, self.changes.position(), self._cursor

    def edge_wire(self, rows: Sequence[PgRow]) -> builtins.list[tuple[PgRow, bytes]]:
        """The current serialized Edge of each row still present (a watcher sends state, not history)."""
        with self._lock:
            out = []
            for row in rows:
                now = self._rows.get(row.sort_key)
                if now is not None:
                    out.append((now, now.wire))
            return out

    # -- forgetting --

    @_unavailable_on_db_error
    def reset(self) -> int:
        with self._pool.connection(timeout=_CHECKOUT_TIMEOUT) as conn, conn.transaction():
            removed = conn.execute("DELETE FROM nm_edges").rowcount
            conn.execute("UPDATE nm_meta SET generation = generation + 1")
            conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        self.refresh()
        log.info("reset: forgot %d edges", removed)
        return removed

    @_unavailable_on_db_error
    def expire(self, older_than: float) -> int:
        threshold = int(older_than * NS_PER_S)
        with self._pool.connection(timeout=_CHECKOUT_TIMEOUT) as conn, conn.transaction():
            removed = conn.execute("DELETE FROM nm_edges WHERE last_ns < %s", (threshold,)).rowcount
            if removed:
                conn.execute("UPDATE nm_meta SET generation = generation + 1")
                conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
            # Sniffer runs silent for this long have ended: keep the table small.
            conn.execute("DELETE FROM nm_batches WHERE applied_at < now() - make_interval(secs => %s)",
                         (BATCH_MEMORY_S,))
        if removed:
            self.refresh()
            log.info("expired %d edges last seen before %.3f", removed, older_than)
        return removed

    def wait_durable(self, result: MergeResult, timeout: float) -> bool:
        """Every merge is committed before it returns: nothing to wait for (the store interface)."""
        return True

    def flush(self) -> int:
        """Nothing to write: every merge is committed before it returns (kept for the store interface)."""
        return 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._listener.join(timeout=5)
        self._pool.close()

    def __enter__(self) -> PgEdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _redact(url: str) -> str:
    """The URL without a password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparsable URL)"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in sorted(info.items()))


__all__ = ["PgEdgeStore", "PgRow", "BatchId", "InvalidQuery"]
