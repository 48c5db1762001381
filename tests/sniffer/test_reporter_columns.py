"""The reporter sends EdgeColumns only to a mapper that says it reads them, and loses nothing to one that
does not (a mapper rolled back to a version from before them)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc

from mapper.server import serve
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import mapper_pb2, mapper_pb2_grpc
from sniffer.edges import EdgeAccumulator
from sniffer.reporter import Reporter
from tests.sniffer.test_edges import connect


def _offer_as_the_agent_does(reporter: Reporter, acc: EdgeAccumulator) -> bool:
    columns = reporter.reads_columns
    return reporter.offer_serialized(acc.take_serialized(columns=columns), columns=columns)


def test_the_first_batch_goes_as_edges_and_the_next_as_columns_once_the_mapper_says_so() -> None:
    with serve("127.0.0.1:0", None) as server:
        reporter = Reporter(server.address, "node-1", max_backoff=0.2)
        reporter.start()
        try:
            assert not reporter.reads_columns
            acc = EdgeAccumulator()
            now = time.time() - 60  # inside the mapper's report window
            acc.add([connect("frontend-a", port=p, count=2, first=now, last=now) for p in range(1, 51)])
            assert _offer_as_the_agent_does(reporter, acc) and reporter.flush(timeout=30)
            assert reporter.reads_columns  # told by the acknowledgement
            acc.add([connect("frontend-a", port=p, count=3, first=now, last=now) for p in range(1, 101)])
            assert _offer_as_the_agent_does(reporter, acc) and reporter.flush(timeout=30)
            assert (reporter.stats.edges_acked, reporter.stats.edges_rejected) == (150, 0)
        finally:
            reporter.stop()
        with grpc.insecure_channel(server.address, options=client_channel_options()) as ch:
            edges = mapper_pb2_grpc.MapperStub(ch).ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10).edges
        assert sorted((e.port, e.count) for e in edges) == [(p, 5 if p <= 50 else 3) for p in range(1, 101)]


class _MapperBeforeColumns:
    """A real gRPC server answering as a mapper from before EdgeColumns: it reads `edges` only and says
    nothing about columns in its acknowledgements."""

    def __init__(self) -> None:
        self.received: list[mapper_pb2.ReportEdgesRequest] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.stream_stream_rpc_method_handler(
            self._report, request_deserializer=mapper_pb2.ReportEdgesRequest.FromString,
            response_serializer=mapper_pb2.ReportEdgesResponse.SerializeToString)
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("netmapper.v1.Mapper", {"ReportEdges": handler})])
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def _report(self, requests: Iterator[mapper_pb2.ReportEdgesRequest],
                context: grpc.ServicerContext) -> Iterator[mapper_pb2.ReportEdgesResponse]:
        for req in requests:
            with self._lock:
                self.received.append(req)
            yield mapper_pb2.ReportEdgesResponse(sequence=req.sequence, accepted=len(req.edges))


def test_columns_acknowledged_unread_by_an_older_mapper_are_sent_again_as_edges() -> None:
    old = _MapperBeforeColumns()
    reporter = Reporter(old.address, "node-1", max_backoff=0.2)
    reporter.start()
    try:
        acc = EdgeAccumulator()
        acc.add([connect("frontend-a", port=p, count=p) for p in range(1, 21)])
        # As a sniffer would after the mapper was rolled back under it: its last ack said columns.
        assert reporter.offer_serialized(acc.take_serialized(columns=True), columns=True)
        assert reporter.flush(timeout=30)
        assert not reporter.reads_columns
    finally:
        reporter.stop()
        old.server.stop(None)
    first, again = old.received
    assert first.HasField("columns") and not first.edges
    assert again.sequence > first.sequence and not again.HasField("columns")
    assert sorted((e.port, e.count) for e in again.edges) == [(p, p) for p in range(1, 21)]
    assert reporter.stats.edges_acked == 20
