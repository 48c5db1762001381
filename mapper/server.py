"""gRPC transport of the mapper: netmapper.v1.Mapper plus the standard grpc.health.v1 service.

Each ReportEdges stream is served by one worker thread for its lifetime (sync gRPC), so the pool is
sized for `max_streams` sniffers plus room for queries; a sniffer beyond `max_streams` is refused with
RESOURCE_EXHAUSTED instead of silently starving ListEdges. A bad batch is answered in its ack
(rejected count and the first reason) and the stream goes on; nothing a sniffer sends ends it.

ListEdges responses and WatchEdges messages are assembled by the store as serialized bytes (see
store.py, watch.py), so those handlers are registered by hand with a pass-through serializer; the wire
format is exactly ListEdgesResponse / WatchEdgesResponse and the generated MapperStub reads it unchanged.
Each WatchEdges stream holds a worker thread too: at most `max_watchers` run at once.

gRPC server reflection is on, so grpcurl and other stock clients list and call the API without the
.proto files. With `metrics` the handlers count what they do (mapper/metrics.py).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mapper.auth import AuthInterceptor, AuthStats, ReloadingTls, ReloadingTokens, is_loopback
from mapper.edge_view import report_header, report_views
from mapper.filters import InvalidQuery
from mapper.metrics import MapperMetrics
from mapper.observer import NewEdgeObserver
from mapper.store import DEFAULT_MAX_EDGES, MergeResult
from mapper.stores import Store, StoreUnavailable, open_store
from mapper.validation import MAX_REJECTIONS, IngestLimits
from mapper.watch import watch
from netmapper_api.limits import MAX_MESSAGE_BYTES, SERVICE_NAME
from netmapper_api.v1 import edge_pb2, mapper_pb2

log = logging.getLogger(__name__)

# One request's size limit. Per stream at most one request is received and one parsed and merged at a
# time (acknowledgements waiting for their commit keep only counts), so 64 streams hold ~64 x 4 MiB x
# (1 + ~3 parsed) = 1 GiB at the very worst; sniffers send at most limits.MAX_REPORT_BYTES (2 MiB).
DEFAULT_MAX_RECEIVE_BYTES: Final[int] = 4 * 1024 * 1024
_QUERY_WORKERS: Final[int] = 8  # threads kept free for ListEdges/ResetEdges/health beyond the streams
_PIPELINE_DEPTH: Final[int] = 4  # batches of one stream merged but not yet acknowledged

# (sequence, edges in the batch, result, perf_counter when its merge began) awaiting its commit
_Merged = tuple[int, int, MergeResult, float]
_REJECT_LOG_INTERVAL: Final[float] = 10.0  # seconds between warnings about rejected edges per stream


def _identity(data: bytes) -> bytes:
    return data


@dataclass(frozen=True, slots=True)
class ReceivedBatch:
    """A ReportEdges request as received: its bytes (journaled as they are, and parsed for their edges
    once, by the store) and its header; `valid` is False when the header is not a ReportEdgesRequest's."""

    raw: bytes
    valid: bool
    node: str = ""
    sequence: int = 0
    instance: str = ""
    lost: tuple[edge_pb2.LostEvents, ...] = ()

    @staticmethod
    def parse(raw: bytes) -> ReceivedBatch:
        try:
            header = report_header(raw)
            lost = tuple(edge_pb2.LostEvents.FromString(b) for b in header.lost)
        except DecodeError:
            return ReceivedBatch(raw, False)
        return ReceivedBatch(raw, True, header.node, header.sequence, header.instance, lost)


def _refused_whole(raw: bytes, why: str) -> MergeResult:
    """Every edge of a batch refused for `why`: the sniffer then counts and logs them as refused, where an
    acknowledgement of nothing would have made it drop them silently."""
    try:
        edges, columns = report_views(raw)
        size = len(edges) + (len(columns.keys) if columns is not None else 0)
    except DecodeError:
        size = 0
    return MergeResult(accepted=0, rejected=size, error=why,
                       rejections=tuple((i, why) for i in range(min(size, MAX_REJECTIONS))))


def claimed_node(batch: ReceivedBatch) -> str:
    """The node a batch says it comes from (auth checks it against a node-bound credential)."""
    return batch.node


class _IdleStreams:
    """Ends report streams that sent nothing for `timeout` seconds (a sniffer reconnects when it has
    something to say), so forgotten connections do not hold stream slots forever."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._streams: dict[int, tuple[float, grpc.ServicerContext]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="idle-streams", daemon=True)
        self._thread.start()

    def touch(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._streams[id(context)] = (time.monotonic(), context)

    def done(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._streams.pop(id(context), None)

    def _loop(self) -> None:
        while not self._stop.wait(min(5.0, self._timeout / 4)):
            limit = time.monotonic() - self._timeout
            with self._lock:
                idle = [(k, ctx) for k, (t, ctx) in self._streams.items() if t < limit]
                for k, _ in idle:
                    del self._streams[k]
            for _, ctx in idle:
                log.info("ending report stream from %s: idle for %.0f s", ctx.peer(), self._timeout)
                ctx.cancel()

    def stop(self) -> None:
        self._stop.set()


def _stop_now(server: grpc.Server) -> None:
    server.stop(0).wait()


class _Expiry:
    """Expires edges not seen for `ttl` seconds, every ttl/10 (at most every minute, at least every second)."""

    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edge-expiry", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period = min(60.0, max(1.0, self._ttl / 10))
        while not self._stop.wait(period):
            try:
                self._store.expire(time.time() - self._ttl)
            except Exception:  # noqa: BLE001 - a failed round is retried next period
                log.exception("expiring edges failed; will retry")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _MapperService:
    """Handlers of netmapper.v1.Mapper over one store."""

    def __init__(self, store: Store, max_streams: int, idle: _IdleStreams | None = None,
                 ack_timeout: float = 30.0, observer: NewEdgeObserver | None = None, *, max_watchers: int = 32,
                 metrics: MapperMetrics | None = None, stopping: threading.Event | None = None) -> None:
        self._store = store
        self._observer = observer
        self._max_streams = max_streams
        self._max_watchers = max_watchers
        self._metrics = metrics
        self._stopping = stopping or threading.Event()
        self._streams_lock = threading.Lock()
        self._streams = 0
        self._watchers = 0
        self._idle = idle
        self._ack_timeout = ack_timeout

    def report_edges(
        self, requests: Iterator[ReceivedBatch], context: grpc.ServicerContext
    ) -> Iterator[mapper_pb2.ReportEdgesResponse]:
        with self._streams_lock:
            if self._streams >= self._max_streams:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"mapper serves at most {self._max_streams} streams")
            self._streams += 1
        if self._metrics is not None:
            self._metrics.streams_open.inc()
        released = threading.Event()

        def release() -> None:
            # Called when the RPC ends however it ends (a cancel included), and again from finally.
            with self._streams_lock:
                if not released.is_set():
                    released.set()
                    self._streams -= 1
                    if self._metrics is not None:
                        self._metrics.streams_open.dec()

        context.add_callback(release)
        peer = context.peer()
        stats = {"batches": 0, "accepted": 0, "rejected": 0, "duplicates": 0}
        node = [""]
        log.info("report stream opened by %s", peer)
        # Merging runs one batch ahead of acknowledging: while batch N waits for its group commit, batch
        # N+1 is merged, so a pipelining client is not held to one batch per commit. Bounded queue.
        merged: queue.Queue[_Merged | BaseException | None] = \
            queue.Queue(maxsize=_PIPELINE_DEPTH)
        merger = threading.Thread(target=self._merge_stream, args=(requests, context, merged, node),
                                  name="report-merge", daemon=True)
        try:
            merger.start()
            last_warning = 0.0
            while True:
                try:
                    item = merged.get(timeout=1.0)
                except queue.Empty:
                    if merger.is_alive():
                        continue
                    break  # the merging side ended without a last word (its client went away)
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item  # an abort from the merging side (bad bytes, a node-bound credential)
                sequence, size, result, started = item
                # Acknowledge only what is durable: a sniffer drops what we acknowledge.
                if not self._store.wait_durable(result, self._ack_timeout):
                    context.abort(grpc.StatusCode.UNAVAILABLE,
                                  "mapper could not commit the batch to its store; resend it")
                if self._metrics is not None:  # merge until durable: what a sniffer waits for its ack
                    self._metrics.commit_seconds.observe(time.perf_counter() - started)
                if result.new_edges and self._observer is not None:
                    try:  # told only of edges that are durable, as acknowledged
                        self._observer.new_edges(result.new_edges)
                    except Exception:  # an observer's bug must not cost the sniffer its stream
                        log.exception("new-edge observer failed")
                stats["batches"] += 1
                stats["accepted"] += result.accepted
                stats["rejected"] += result.rejected
                stats["duplicates"] += result.duplicate
                if result.rejected and time.monotonic() - last_warning > _REJECT_LOG_INTERVAL:
                    last_warning = time.monotonic()
                    log.warning(
                        "node %s (%s) batch %d: rejected %d of %d edges: %s",
                        node[0] or "?", peer, sequence, result.rejected, size, result.error,
                    )
                yield mapper_pb2.ReportEdgesResponse(
                    sequence=sequence, accepted=result.accepted, rejected=result.rejected, error=result.error,
                    duplicate=result.duplicate, columns=True,
                    rejections=[mapper_pb2.EdgeRejection(index=i, reason=r) for i, r in result.rejections],
                )
        finally:
            release()
            log.info(
                "report stream from node %s (%s) closed: %d batches (%d resent), %d edges accepted, %d rejected",
                node[0] or "?", peer, stats["batches"], stats["duplicates"], stats["accepted"], stats["rejected"],
            )

    def _merge_stream(self, requests: Iterator[ReceivedBatch], context: grpc.ServicerContext,
                      out: queue.Queue[_Merged | BaseException | None],
                      node: list[str]) -> None:
        """The merging side of one stream: read, merge, hand over for acknowledgement. Stops when the
        stream ends, fails or is no longer active (the client went away)."""
        idle = self._idle
        peer = context.peer()

        def put(item: _Merged | BaseException | None) -> bool:
            while context.is_active():
                try:
                    out.put(item, timeout=1.0)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            if idle is not None:
                idle.touch(context)
            for req in requests:
                if idle is not None:
                    idle.touch(context)
                if not req.valid:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch is not a ReportEdgesRequest")
                    return
                if req.node and req.node != node[0]:
                    node[0] = req.node
                batch = (req.instance, req.sequence) if req.instance else None
                started = time.perf_counter()
                try:
                    result = self._store.merge(None, node=req.node, batch=batch, raw=req.raw)
                    if req.lost and not result.duplicate:
                        self._store.record_lost(req.lost, node=req.node or peer)
                except DecodeError:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch is not a ReportEdgesRequest")
                    return
                except StoreUnavailable as exc:  # no acknowledgement: the sniffer keeps the batch and resends it
                    log.warning("batch %d from %s (%s) not merged: %s", req.sequence, node[0], peer, exc)
                    context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
                except Exception:  # a bug here must cost one batch, not every sniffer's stream
                    log.exception("merging batch %d from %s (%s) failed", req.sequence, node[0], peer)
                    result = _refused_whole(req.raw, "internal error merging the batch (see the mapper's log)")
                if self._metrics is not None and not result.duplicate:
                    self._count_batch(req, result)
                # Only what the acknowledgement needs waits in the queue, not the parsed batch.
                if not put((req.sequence, result.accepted + result.rejected, result, started)):
                    return
            put(None)
        except BaseException as exc:  # noqa: BLE001 - aborts and broken streams end the acknowledging side
            put(exc)
        finally:
            if idle is not None:
                idle.done(context)

    def _count_batch(self, req: ReceivedBatch, result: MergeResult) -> None:
        assert self._metrics is not None
        self._metrics.batch(req.node, result.accepted + result.rejected, result.accepted, result.rejected,
                            result.error, result.newest_ns)
        if req.lost:
            self._metrics.lost_events(list(req.lost))

    def list_edges(self, request: mapper_pb2.ListEdgesRequest, context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            response = self._store.list_response_bytes(request.filters, page_size=request.page_size,
                                                       page_token=request.page_token)
        except InvalidQuery as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StoreUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        log.debug("ListEdges (%d filters): %d bytes in %.3f s", len(request.filters), len(response),
                  time.perf_counter() - started)
        return response

    def watch_edges(self, request: mapper_pb2.WatchEdgesRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        with self._streams_lock:
            if self._watchers >= self._max_watchers:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"mapper serves at most {self._max_watchers} watchers")
            self._watchers += 1
        metrics = self._metrics
        if metrics is not None:
            metrics.watchers_open.inc()

        def lagged(count: int) -> None:
            log.warning("watcher %s fell behind by %d changes; resyncing it", context.peer(), count)
            if metrics is not None:
                metrics.lost.labels("watcher_lagged").inc(count)

        try:
            stream = watch(self._store, request, lambda: bool(context.is_active()) and not self._stopping.is_set(),
                           on_lost=lagged)
            try:
                first = next(stream)
            except InvalidQuery as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except StopIteration:
                return
            yield first
            yield from stream
        except StoreUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        finally:
            with self._streams_lock:
                self._watchers -= 1
            if metrics is not None:
                metrics.watchers_open.dec()

    def reset_edges(
        self, request: mapper_pb2.ResetEdgesRequest, context: grpc.ServicerContext
    ) -> mapper_pb2.ResetEdgesResponse:
        try:
            removed = self._store.reset()
        except StoreUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        log.info("ResetEdges from %s: removed %d edges", context.peer(), removed)
        return mapper_pb2.ResetEdgesResponse(removed=removed)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "ReportEdges": grpc.stream_stream_rpc_method_handler(
                    self.report_edges,
                    request_deserializer=ReceivedBatch.parse,  # keeps the bytes for the journal
                    response_serializer=mapper_pb2.ReportEdgesResponse.SerializeToString,
                ),
                "ListEdges": grpc.unary_unary_rpc_method_handler(
                    self.list_edges,
                    request_deserializer=mapper_pb2.ListEdgesRequest.FromString,
                    response_serializer=_identity,  # already a serialized ListEdgesResponse
                ),
                "WatchEdges": grpc.unary_stream_rpc_method_handler(
                    self.watch_edges,
                    request_deserializer=mapper_pb2.WatchEdgesRequest.FromString,
                    response_serializer=_identity,  # already serialized WatchEdgesResponse messages
                ),
                "ResetEdges": grpc.unary_unary_rpc_method_handler(
                    self.reset_edges,
                    request_deserializer=mapper_pb2.ResetEdgesRequest.FromString,
                    response_serializer=mapper_pb2.ResetEdgesResponse.SerializeToString,
                ),
            },
        )


class MapperServer:
    """A running mapper: gRPC server, health service and store. stop() shuts all three down."""

    def __init__(self, server: grpc.Server, store: Store, health_servicer: health.HealthServicer,
                 host: str, port: int, auth: AuthInterceptor | None = None,
                 stoppers: list[Callable[[], None]] | None = None, stopping: threading.Event | None = None,
                 metrics_port: int = 0) -> None:
        self.store = store
        self.metrics_port = metrics_port  # the bound metrics port, when metrics are served
        self._stopping = stopping or threading.Event()
        self._stoppers = stoppers or []
        self.auth = auth
        self.host = host
        self.port = port  # the bound port (useful with listen "127.0.0.1:0")
        self._server = server
        self._health = health_servicer
        self._stopped = False

    @property
    def auth_stats(self) -> AuthStats | None:
        """Refused calls by status and method; None when the mapper runs without authentication."""
        return self.auth.stats if self.auth is not None else None

    @property
    def address(self) -> str:
        """host:port to dial (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    def stop(self, grace: float | None = 2.0) -> None:
        """Report NOT_SERVING, let RPCs finish for `grace` seconds, then flush and close the store."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()  # watchers end their streams
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        for stop in self._stoppers:
            stop()
        self.store.close()
        log.info("mapper on %s stopped", self.address)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server terminates (or timeout); True when it did."""
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> MapperServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    listen: str,
    db: str | Path | None = None,
    *,
    max_streams: int = 64,
    max_watchers: int = 32,
    credentials: grpc.ServerCredentials | None = None,
    flush_interval: float = 10.0,
    tls: ReloadingTls | None = None,
    tokens: ReloadingTokens | None = None,
    limits: IngestLimits | None = None,
    max_edges: int = DEFAULT_MAX_EDGES,
    edge_ttl: float | None = None,
    max_message_bytes: int = DEFAULT_MAX_RECEIVE_BYTES,
    idle_timeout: float = 600.0,
    commit_interval: float = 0.002,
    fsync: bool = False,
    health_listen: str | None = None,
    observer: NewEdgeObserver | None = None,
    metrics_listen: str | None = None,
) -> MapperServer:
    """Start the mapper on `listen` ("host:port"; port 0 picks a free one, see .port) and return it
    running. `db`: a SQLite file that keeps the edges across restarts, a postgresql:// URL (several
    replicas share it; every merge commits before its acknowledgement), or None (memory only).
    With `metrics_listen` ("host:port") Prometheus metrics are served at /metrics; `max_watchers`
    WatchEdges streams at once.

    `tls` serves TLS with certificate files reloaded on change (and, with a client CA, requires client
    certificates); `tokens` accepts bearer tokens. With either, every RPC but health needs a credential
    with the method's role (auth.py). `credentials` (static grpc.ServerCredentials) is for tests that
    want TLS without authentication. Neither: plaintext, no authentication.

    Bounds: `max_streams` report streams at once (RESOURCE_EXHAUSTED beyond), each ended after
    `idle_timeout` seconds without a batch; requests up to `max_message_bytes`; `limits` on every
    reported field; at most `max_edges` edges (stalest evicted, counted); `edge_ttl` seconds after an
    edge was last seen it expires (checked every ttl/10, at most every minute; durable).
    Acknowledgements wait for the group commit (`commit_interval`); changed edges are checkpointed
    every `flush_interval` seconds (a restart replays the journal since); `fsync` makes commits survive
    power loss too, not only a killed process. `health_listen` serves grpc.health.v1 alone in
    plaintext on a second address, for kubelet gRPC probes (which cannot speak TLS). `observer` hears
    of every edge the store had not seen before, once it is durable (mapper/observer.py)."""
    if tokens is not None and tls is None and credentials is None:
        raise ValueError("bearer tokens need TLS: give the server certificate too")
    if tls is not None:
        credentials = tls.server_credentials()
    authenticating = tokens is not None or (tls is not None and tls.require_client_cert)
    if not authenticating and not is_loopback(listen):
        log.warning("mapper on %s accepts reports and resets from anyone who reaches it: no authentication "
                    "configured (give --token-file and/or --client-ca for production)", listen)
    interceptor = AuthInterceptor(tokens, claimed_node={
        "/netmapper.v1.Mapper/ReportEdges": claimed_node,
    }) if authenticating else None
    store = open_store(db, flush_interval=flush_interval, limits=limits, max_edges=max_edges,
                       commit_interval=commit_interval, fsync=fsync)
    idle = _IdleStreams(idle_timeout)
    expiry = _Expiry(store, edge_ttl) if edge_ttl else None
    stop_metrics: Callable[[], None] | None = None
    metrics_port = 0
    stopping = threading.Event()
    try:
        metrics = None
        if metrics_listen is not None:
            metrics = MapperMetrics()
            metrics.track_store_size(store.__len__)
            if interceptor is not None:
                auth_stats = interceptor.stats
                metrics.track_auth_refusals(lambda: dict(auth_stats.refused))
            _, metrics_port, stop_metrics = metrics.serve(metrics_listen)
        service = _MapperService(store, max_streams, idle, observer=observer, max_watchers=max_watchers,
                                 metrics=metrics, stopping=stopping)
        workers = max_streams + max_watchers + _QUERY_WORKERS
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mapper-rpc"),
            interceptors=[interceptor] if interceptor is not None else None,
            handlers=[service.handler()],
            options=[
                # What one request may hold: bounded so that max_streams requests in flight fit in the
                # mapper's memory limit (deploy/). ListEdges responses may be larger (send limit).
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # Sniffers keep their stream open for days: let their keepalive pings through.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                # gRPC sets SO_REUSEPORT by default: a second mapper on the same port would then start
                # "successfully" and take half of the sniffers' streams. Fail to bind instead.
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=workers,
        )
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (mapper_pb2.DESCRIPTOR.services_by_name["Mapper"].full_name, health.SERVICE_NAME,
             reflection.SERVICE_NAME), server)
        try:
            if credentials is None:
                port = server.add_insecure_port(listen)
            else:
                port = server.add_secure_port(listen, credentials)
        except RuntimeError as exc:  # grpc raises RuntimeError("Failed to bind ...")
            raise OSError(f"cannot listen on {listen}: {exc}") from exc
        if not port:
            raise OSError(f"cannot listen on {listen}")
        server.start()
        health_server = None
        if health_listen is not None:
            health_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="mapper-health"),
                                        options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
            try:
                if not health_server.add_insecure_port(health_listen):
                    raise OSError(f"cannot listen on {health_listen}")
            except RuntimeError as exc:
                server.stop(0)
                raise OSError(f"cannot listen on {health_listen}: {exc}") from exc
            health_server.start()
    except BaseException:
        idle.stop()
        if expiry is not None:
            expiry.stop()
        store.close()
        if stop_metrics is not None:
            stop_metrics()
        raise
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = listen.rsplit(":", 1)[0].strip("[]") or "0.0.0.0"
    log.info("mapper listening on %s (port %d), store %s", listen, port, _describe_db(db))
    return MapperServer(server, store, health_servicer, host, port, interceptor,
                        stoppers=[idle.stop] + ([expiry.stop] if expiry is not None else [])
                        + ([lambda: _stop_now(health_server)] if health_server is not None else [])
                        + ([stop_metrics] if stop_metrics is not None else []),
                        stopping=stopping, metrics_port=metrics_port)


def _describe_db(db: str | Path | None) -> str:
    if db is None:
        return "in memory"
    text = str(db)
    return text.split("@", 1)[-1] if "://" in text else text  # no credentials in logs
