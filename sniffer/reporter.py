"""Reporter: streams edge batches to the mapper over gRPC, one batch in flight, retried until acked.

The caller offers a batch when the reporter is idle; otherwise it keeps merging into its
EdgeAccumulator. So a mapper that is down or slow costs memory per distinct edge, never a silent
loss: a batch is kept until the mapper acknowledges its sequence number, and resent on a new
stream after a failure (at-least-once; the mapper's merge is keyed, so a resend adds its counts
again but no new edges).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import grpc

from netmapper_api.limits import MAX_REPORT_BYTES
from netmapper_api.v1 import edge_pb2, mapper_pb2

log = logging.getLogger(__name__)

REPORT_EDGES_METHOD = "/netmapper.v1.Mapper/ReportEdges"  # as in the generated mapper_pb2_grpc.MapperStub

_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_send_message_length", MAX_REPORT_BYTES),
]


class StreamBroken(Exception):
    """The stream to the mapper cannot be trusted any more; reconnect and resend."""


def _describe(e: BaseException) -> str:
    if isinstance(e, grpc.Call):
        return f"{e.code().name}: {e.details()}"
    return str(e)


@dataclass
class ReporterStats:
    batches_acked: int = 0
    edges_acked: int = 0
    edges_rejected: int = 0
    send_failures: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class _Batch:
    """A ReportEdgesRequest as it goes on the wire: the sniffer keeps the bytes, not the message."""

    sequence: int
    edges: int
    payload: bytes


def _as_is(payload: bytes) -> bytes:
    return payload


@dataclass
class Reporter:
    target: str
    node: str
    ack_timeout: float = 10.0
    max_backoff: float = 10.0
    stats: ReporterStats = field(default_factory=ReporterStats)
    _inflight: _Batch | None = field(default=None, init=False)
    _sequence: int = field(default=0, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reporter", daemon=True)
        self._thread.start()

    def idle(self) -> bool:
        with self._cond:
            return self._inflight is None

    def offer(self, edges: Sequence[edge_pb2.Edge], lost: Sequence[edge_pb2.LostEvents] = ()) -> bool:
        """Hand over a batch if none is in flight. False: keep it and offer it (merged) later."""
        return self.offer_serialized(len(edges), mapper_pb2.ReportEdgesRequest(edges=edges).SerializeToString(), lost)

    def offer_serialized(self, count: int, edges: bytes, lost: Sequence[edge_pb2.LostEvents] = ()) -> bool:
        """offer() for `count` edges already serialized as a ReportEdgesRequest's `edges` field
        (EdgeAccumulator.take_serialized); node, sequence and losses are added here."""
        with self._cond:
            if self._inflight is not None:
                return False
            self._sequence += 1
            head = mapper_pb2.ReportEdgesRequest(node=self.node, sequence=self._sequence, lost=lost)
            # Encodings concatenate: the fields of both parts make one request.
            self._inflight = _Batch(self._sequence, count, head.SerializeToString() + edges)
            self._cond.notify_all()
            return True

    def flush(self, timeout: float) -> bool:
        """Wait until the batch in flight is acknowledged."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._inflight is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _next_inflight(self, sent: int) -> _Batch | None:
        """Block until a batch with sequence > sent is in flight (or stop)."""
        with self._cond:
            while not self._stop.is_set():
                if self._inflight is not None and self._inflight.sequence > sent:
                    return self._inflight
                self._cond.wait(0.5)
            return None

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._stream()
                backoff = 0.2
            except (grpc.RpcError, StreamBroken) as e:
                self._failed(_describe(e))
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff)

    def _failed(self, why: str) -> None:
        self.stats.send_failures += 1
        if why != self.stats.last_error or self.stats.send_failures % 30 == 1:
            log.warning("mapper %s: %s; batch kept, retrying", self.target, why)
        self.stats.last_error = why

    def _stream(self) -> None:
        with grpc.insecure_channel(self.target, options=_KEEPALIVE) as channel:
            requests: queue.Queue[bytes | None] = queue.Queue()

            def gen() -> Iterator[bytes]:
                while (payload := requests.get()) is not None:
                    yield payload

            # The generated stub's method with the request serializer left out: batches are bytes already.
            report_edges = channel.stream_stream(REPORT_EDGES_METHOD, request_serializer=_as_is,
                                                 response_deserializer=mapper_pb2.ReportEdgesResponse.FromString)
            responses = report_edges(gen())
            acks: queue.Queue[mapper_pb2.ReportEdgesResponse | BaseException] = queue.Queue()

            def read() -> None:
                try:
                    for r in responses:
                        acks.put(r)
                    acks.put(StreamBroken("stream closed by the mapper"))
                except BaseException as e:  # noqa: BLE001 - handed to the writer thread
                    acks.put(e)

            threading.Thread(target=read, name="reporter-acks", daemon=True).start()
            sent = 0
            try:
                while (req := self._next_inflight(sent)) is not None:
                    requests.put(req.payload)
                    sent = req.sequence
                    try:
                        ack = acks.get(timeout=self.ack_timeout)
                    except queue.Empty:
                        raise StreamBroken(f"no acknowledgement within {self.ack_timeout}s") from None
                    if isinstance(ack, BaseException):
                        raise ack
                    self._acked(req, ack)
            finally:
                requests.put(None)
                responses.cancel()

    def _acked(self, req: _Batch, ack: mapper_pb2.ReportEdgesResponse) -> None:
        if ack.sequence != req.sequence:
            raise StreamBroken(f"acknowledged sequence {ack.sequence}, expected {req.sequence}")
        if ack.rejected:
            log.warning("mapper rejected %d of %d edges: %s", ack.rejected, req.edges, ack.error)
        with self._cond:
            self.stats.batches_acked += 1
            self.stats.edges_acked += ack.accepted
            self.stats.edges_rejected += ack.rejected
            self._inflight = None
            self._cond.notify_all()
