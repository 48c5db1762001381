"""Reporter: streams edge batches to the mapper over gRPC, one request in flight, retried until acked.

The caller offers a batch when the reporter is idle; otherwise it keeps merging into its
EdgeAccumulator (by edge key, so what waits is bounded by the number of distinct edges). So a mapper
that is down or slow costs memory per distinct edge, never a silent loss: an offered batch is cut into
requests of at most MAX_REPORT_EDGES edges / MAX_REPORT_BYTES, each kept until the mapper acknowledges
it (the mapper acknowledges only what it has committed durably), and resent on a new stream after a
failure. Requests carry this run's instance id and a sequence number, so the mapper merges a resent
request once: counts are exact.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import grpc

from netmapper_api.channel import ClientCredentials, open_channel
from netmapper_api.columns import column_edges
from netmapper_api.limits import MAX_REPORT_BYTES, MAX_REPORT_EDGES
from netmapper_api.v1 import edge_pb2, mapper_pb2

log = logging.getLogger(__name__)

REPORT_EDGES_METHOD = "/netmapper.v1.Mapper/ReportEdges"  # as the generated mapper_pb2_grpc.MapperStub names it

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
    resent_duplicates: int = 0  # requests the mapper had merged already (their first ack was lost)
    last_error: str = ""


def split_batch(node: str, instance: str, first_sequence: int, edges: Sequence[edge_pb2.Edge],
                lost: Sequence[edge_pb2.LostEvents]) -> list[mapper_pb2.ReportEdgesRequest]:
    """Requests of at most MAX_REPORT_EDGES edges and about MAX_REPORT_BYTES each (lost events ride on
    the first), numbered from first_sequence. Always at least one request."""
    requests: list[mapper_pb2.ReportEdgesRequest] = []
    chunk: list[edge_pb2.Edge] = []
    size = 0
    budget = MAX_REPORT_BYTES - 64 * 1024  # room for the envelope and the lost events
    for e in edges:
        n = e.ByteSize() + 8
        if chunk and (len(chunk) >= MAX_REPORT_EDGES or size + n > budget):
            requests.append(mapper_pb2.ReportEdgesRequest(edges=chunk))
            chunk, size = [], 0
        chunk.append(e)
        size += n
    requests.append(mapper_pb2.ReportEdgesRequest(edges=chunk))
    requests[0].lost.extend(lost)
    for i, req in enumerate(requests):
        req.node, req.instance, req.sequence = node, instance, first_sequence + i
    return requests


@dataclass(frozen=True, slots=True)
class _Wire:
    """A request as it goes on the wire: the reporter keeps the bytes, not the message (10k edges:
    under 2 MiB serialized, ~7 MiB as messages)."""

    sequence: int
    edges: int
    payload: bytes
    columns: bool = False  # the edges are in the request's EdgeColumns


def _as_is(payload: bytes) -> bytes:
    return payload


def _as_edges(payload: bytes, sequence: int) -> bytes:
    """A request with EdgeColumns as the same request with Edge messages, renumbered."""
    request = mapper_pb2.ReportEdgesRequest.FromString(payload)
    edges = column_edges(request.columns)
    request.ClearField("columns")
    request.edges.extend(edges)
    request.sequence = sequence
    request.ClearField("lost")  # counted with the first sending
    return request.SerializeToString()


@dataclass
class Reporter:
    target: str
    node: str
    ack_timeout: float = 30.0
    max_backoff: float = 10.0
    credentials: ClientCredentials | None = None
    # Close the stream after this long with nothing to send, before the mapper's idle timeout (10 min by
    # default) ends it as abandoned; the next batch opens a new one.
    idle_close: float = 120.0
    stats: ReporterStats = field(default_factory=ReporterStats)
    # This run of the sniffer: with the sequence it names each request, so a resend merges once.
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    _pending: deque[_Wire] = field(default_factory=deque, init=False)
    _reads_columns: bool = field(default=False, init=False)  # as the mapper's last acknowledgement said
    _sequence: int = field(default=0, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reporter", daemon=True)
        self._thread.start()

    def idle(self) -> bool:
        with self._cond:
            return not self._pending

    def offer(self, edges: Sequence[edge_pb2.Edge], lost: Sequence[edge_pb2.LostEvents] = ()) -> bool:
        """Hand over a batch if none is pending. False: keep it and offer it (merged) later."""
        with self._cond:
            if self._pending:
                return False
            requests = split_batch(self.node, self.instance, self._sequence + 1, edges, lost)
            self._sequence = requests[-1].sequence
            self._pending.extend(_Wire(r.sequence, len(r.edges), r.SerializeToString()) for r in requests)
            self._cond.notify_all()
            return True

    @property
    def reads_columns(self) -> bool:
        """The mapper reads EdgeColumns (its acknowledgements say so): offer batches in that form."""
        return self._reads_columns

    def offer_serialized(self, chunks: Sequence[tuple[int, bytes]], lost: Sequence[edge_pb2.LostEvents] = (),
                         *, columns: bool = False) -> bool:
        """offer() for edges already serialized as requests' `edges` fields, or `columns` fields with
        `columns`, (count, bytes) per request (EdgeAccumulator.take_serialized); node, instance,
        sequence and losses are added here."""
        with self._cond:
            if self._pending:
                return False
            for i, (count, edges) in enumerate(chunks or [(0, b"")]):
                self._sequence += 1
                head = mapper_pb2.ReportEdgesRequest(node=self.node, instance=self.instance,
                                                     sequence=self._sequence, lost=lost if i == 0 else ())
                # Encodings concatenate: the fields of both parts make one request.
                self._pending.append(_Wire(self._sequence, count, head.SerializeToString() + edges, columns))
            self._cond.notify_all()
            return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything offered is acknowledged."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
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

    def _next_inflight(self, sent: int) -> _Wire | None:
        """Block until the oldest unacknowledged request has sequence > sent; None on stop or when
        nothing was pending for idle_close seconds (the stream is then closed; the next batch opens one)."""
        deadline = time.monotonic() + self.idle_close
        with self._cond:
            while not self._stop.is_set():
                if self._pending and self._pending[0].sequence > sent:
                    return self._pending[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(0.5, left))
            return None

    def _wait_pending(self) -> None:
        with self._cond:
            while not self._pending and not self._stop.is_set():
                self._cond.wait(0.5)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            self._wait_pending()  # a quiet node holds no stream open
            if self._stop.is_set():
                return
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
        with open_channel(self.target, self.credentials, _KEEPALIVE) as channel:
            requests: queue.Queue[bytes | None] = queue.Queue()

            def gen() -> Iterator[bytes]:
                while (payload := requests.get()) is not None:
                    yield payload

            # The generated stub's method without its request serializer: requests are bytes already.
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

    def _acked(self, req: _Wire, ack: mapper_pb2.ReportEdgesResponse) -> None:
        if ack.sequence != req.sequence:
            raise StreamBroken(f"acknowledged sequence {ack.sequence}, expected {req.sequence}")
        if ack.rejected:
            examples = "; ".join(f"edge {r.index}: {r.reason}" for r in ack.rejections[:3]) or ack.error
            log.warning("mapper refused %d of %d edges: %s", ack.rejected, req.edges, examples)
        with self._cond:
            self._reads_columns = ack.columns
            if req.columns and req.edges and not ack.columns and not ack.duplicate:
                # A mapper from before EdgeColumns (a downgrade) acknowledged the edges unread: send them
                # again as Edge messages, under a new sequence (it may have recorded this one as merged).
                log.warning("mapper %s does not read EdgeColumns; resending %d edges as Edge messages",
                            self.target, req.edges)
                self._sequence += 1
                self._pending.append(_Wire(self._sequence, req.edges, _as_edges(req.payload, self._sequence)))
            self.stats.batches_acked += 1
            self.stats.edges_acked += ack.accepted
            self.stats.edges_rejected += ack.rejected
            self.stats.resent_duplicates += ack.duplicate
            if self._pending and self._pending[0] is req:
                self._pending.popleft()
            self._cond.notify_all()
