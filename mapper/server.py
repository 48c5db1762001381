"""gRPC transport of the mapper: netmapper.v1.Mapper plus the standard grpc.health.v1 service.

Each ReportEdges stream is served by one worker thread for its lifetime (sync gRPC), so the pool is
sized for `max_streams` sniffers plus room for queries; a sniffer beyond `max_streams` is refused with
RESOURCE_EXHAUSTED instead of silently starving ListEdges. A bad batch is answered in its ack
(rejected count and the first reason) and the stream goes on; nothing a sniffer sends ends it.

ListEdges responses are assembled by the store as serialized bytes (see store.py), so the handler is
registered by hand with a pass-through serializer; the wire format is exactly ListEdgesResponse and
the generated MapperStub reads it unchanged.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mapper.observer import NewEdgeObserver
from mapper.store import EdgeStore, MergeResult
from netmapper_api.limits import MAX_MESSAGE_BYTES, SERVICE_NAME
from netmapper_api.v1 import mapper_pb2

log = logging.getLogger(__name__)

_QUERY_WORKERS: Final[int] = 8  # threads kept free for ListEdges/ResetEdges/health beyond the streams
_REJECT_LOG_INTERVAL: Final[float] = 10.0  # seconds between warnings about rejected edges per stream


def _identity(data: bytes) -> bytes:
    return data


class _MapperService:
    """Handlers of netmapper.v1.Mapper over one EdgeStore."""

    def __init__(self, store: EdgeStore, max_streams: int, observer: NewEdgeObserver | None = None) -> None:
        self._store = store
        self._observer = observer
        self._max_streams = max_streams
        self._streams_lock = threading.Lock()
        self._streams = 0

    def report_edges(
        self, requests: Iterator[mapper_pb2.ReportEdgesRequest], context: grpc.ServicerContext
    ) -> Iterator[mapper_pb2.ReportEdgesResponse]:
        with self._streams_lock:
            if self._streams >= self._max_streams:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"mapper serves at most {self._max_streams} streams")
            self._streams += 1
        peer = context.peer()
        node = ""
        batches = accepted = rejected = 0
        last_warning = 0.0
        log.info("report stream opened by %s", peer)
        try:
            for req in requests:
                if req.node and req.node != node:
                    node = req.node
                try:
                    result = self._store.merge(req.edges, node=req.node)
                    if len(req.lost):
                        self._store.record_lost(req.lost, node=req.node or peer)
                except Exception:  # a bug here must cost one batch, not every sniffer's stream
                    log.exception("merging batch %d from %s (%s) failed", req.sequence, node, peer)
                    result = MergeResult(accepted=0, rejected=len(req.edges), error="internal error merging batch")
                if result.new_edges and self._observer is not None:
                    try:
                        self._observer.new_edges(result.new_edges)
                    except Exception:  # an observer's bug must not cost the sniffer its stream
                        log.exception("new-edge observer failed")
                batches += 1
                accepted += result.accepted
                rejected += result.rejected
                if result.rejected and time.monotonic() - last_warning > _REJECT_LOG_INTERVAL:
                    last_warning = time.monotonic()
                    log.warning(
                        "node %s (%s) batch %d: rejected %d of %d edges: %s",
                        node or "?", peer, req.sequence, result.rejected, len(req.edges), result.error,
                    )
                yield mapper_pb2.ReportEdgesResponse(
                    sequence=req.sequence, accepted=result.accepted, rejected=result.rejected, error=result.error
                )
        finally:
            with self._streams_lock:
                self._streams -= 1
            log.info(
                "report stream from node %s (%s) closed: %d batches, %d edges accepted, %d rejected",
                node or "?", peer, batches, accepted, rejected,
            )

    def list_edges(self, request: mapper_pb2.ListEdgesRequest, context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        response = self._store.list_response_bytes(request.filters)
        log.debug("ListEdges (%d filters): %d bytes in %.3f s", len(request.filters), len(response),
                  time.perf_counter() - started)
        return response

    def reset_edges(
        self, request: mapper_pb2.ResetEdgesRequest, context: grpc.ServicerContext
    ) -> mapper_pb2.ResetEdgesResponse:
        removed = self._store.reset()
        log.info("ResetEdges from %s: removed %d edges", context.peer(), removed)
        return mapper_pb2.ResetEdgesResponse(removed=removed)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "ReportEdges": grpc.stream_stream_rpc_method_handler(
                    self.report_edges,
                    request_deserializer=mapper_pb2.ReportEdgesRequest.FromString,
                    response_serializer=mapper_pb2.ReportEdgesResponse.SerializeToString,
                ),
                "ListEdges": grpc.unary_unary_rpc_method_handler(
                    self.list_edges,
                    request_deserializer=mapper_pb2.ListEdgesRequest.FromString,
                    response_serializer=_identity,  # already a serialized ListEdgesResponse
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

    def __init__(self, server: grpc.Server, store: EdgeStore, health_servicer: health.HealthServicer,
                 host: str, port: int) -> None:
        self.store = store
        self.host = host
        self.port = port  # the bound port (useful with listen "127.0.0.1:0")
        self._server = server
        self._health = health_servicer
        self._stopped = False

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
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
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
    max_streams: int = 128,
    credentials: grpc.ServerCredentials | None = None,
    flush_interval: float = 1.0,
    observer: NewEdgeObserver | None = None,
) -> MapperServer:
    """Start the mapper on `listen` ("host:port"; port 0 picks a free one, see .port) and return it
    running. `db` is an optional sqlite file that keeps the edges across restarts. With
    `credentials` the port is TLS (grpc.ssl_server_credentials); otherwise plaintext. `observer` hears of
    every edge the store had not seen before (mapper/observer.py)."""
    store = EdgeStore(db, flush_interval=flush_interval)
    try:
        service = _MapperService(store, max_streams, observer)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_streams + _QUERY_WORKERS, thread_name_prefix="mapper-rpc"),
            handlers=[service.handler()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # Sniffers keep their stream open for days: let their keepalive pings through.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                # gRPC sets SO_REUSEPORT by default: a second mapper on the same port would then start
                # "successfully" and take half of the sniffers' streams. Fail to bind instead.
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=max_streams + _QUERY_WORKERS,
        )
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
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
    except BaseException:
        store.close()
        raise
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = listen.rsplit(":", 1)[0].strip("[]") or "0.0.0.0"
    log.info("mapper listening on %s (port %d), store %s", listen, port, db or "in memory")
    return MapperServer(server, store, health_servicer, host, port)
