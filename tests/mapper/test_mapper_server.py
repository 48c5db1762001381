"""The mapper over real gRPC: a server on 127.0.0.1:0 and a real channel with the generated stubs."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mapper.server import MapperServer, serve
from netmapper_api.columns import to_columns
from netmapper_api.limits import client_channel_options
from edge_testing import edge, internet, summary, workload
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc

TIMEOUT = 10.0


@pytest.fixture
def mapper() -> Iterator[MapperServer]:
    server = serve("127.0.0.1:0", None)
    yield server
    server.stop(grace=None)


@pytest.fixture
def channel(mapper: MapperServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(mapper.address, options=client_channel_options()) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        yield ch


class Stream:
    """One ReportEdges stream driven request by request, so a test can read each ack before sending on."""

    def __init__(self, stub: mapper_pb2_grpc.MapperStub) -> None:
        self._requests: queue.Queue[mapper_pb2.ReportEdgesRequest | None] = queue.Queue()
        self._responses = stub.ReportEdges(iter(self._requests.get, None), timeout=TIMEOUT)

    def send(self, request: mapper_pb2.ReportEdgesRequest) -> mapper_pb2.ReportEdgesResponse:
        self._requests.put(request)
        return next(self._responses)

    def close(self) -> None:
        self._requests.put(None)
        assert list(self._responses) == []


def test_health_is_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service_name in ("", "netmapper.v1.Mapper"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service_name), timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_batches_are_acknowledged_with_their_sequence(channel: grpc.Channel) -> None:
    stub = mapper_pb2_grpc.MapperStub(channel)
    stream = Stream(stub)
    for seq in (1, 2, 3):
        ack = stream.send(mapper_pb2.ReportEdgesRequest(
            node="node-a", sequence=seq, edges=[edge(workload("frontend"), workload(f"s{i}")) for i in range(seq)]
        ))
        assert (ack.sequence, ack.accepted, ack.rejected, ack.error) == (seq, seq, 0, "")
    stream.close()
    listed = stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=TIMEOUT).edges
    assert {summary(e)[1]: e.count for e in listed} == {"s0.shop": 3, "s1.shop": 2, "s2.shop": 1}
    assert all(list(e.reporting_nodes) == ["node-a"] for e in listed)


def test_invalid_edges_are_rejected_and_the_stream_goes_on(channel: grpc.Channel) -> None:
    stub = mapper_pb2_grpc.MapperStub(channel)
    stream = Stream(stub)
    ack = stream.send(mapper_pb2.ReportEdgesRequest(node="node-a", sequence=7, edges=[
        edge(workload("a"), workload("b")), edge(workload("a"), workload("b"), 70000), edge_pb2.Edge(),
    ]))
    assert (ack.sequence, ack.accepted, ack.rejected) == (7, 1, 2)
    assert ack.error == "port 70000 out of range 1..65535"
    ack = stream.send(mapper_pb2.ReportEdgesRequest(sequence=8, edges=[edge(workload("a"), workload("c"))]))
    assert (ack.sequence, ack.accepted, ack.rejected, ack.error) == (8, 0, 1, "request has no node name")
    ack = stream.send(mapper_pb2.ReportEdgesRequest(node="node-a", sequence=9, edges=[edge(workload("a"), workload("d"))]))
    assert (ack.sequence, ack.accepted, ack.rejected) == (9, 1, 0)
    stream.close()
    assert [summary(e)[1] for e in stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=TIMEOUT).edges] == [
        "b.shop", "d.shop"
    ]


def test_a_batch_the_store_fails_on_is_refused_edge_by_edge_and_the_stream_goes_on(
        mapper: MapperServer, channel: grpc.Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    store = mapper.store
    real_merge = store.merge

    def buggy(edges: object, node: str, **kw: object) -> object:
        if node == "node-bug":  # a bug in the merge, as it would show: an exception
            raise RuntimeError("bug")
        return real_merge(edges, node, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "merge", buggy)
    stream = Stream(mapper_pb2_grpc.MapperStub(channel))
    req = mapper_pb2.ReportEdgesRequest(node="node-bug", sequence=1, edges=[edge(workload("a"), workload("b"))],
                                        columns=to_columns([edge(workload("a"), workload("c"))]))
    ack = stream.send(req)
    # Refused, with the reason: the sniffer counts and logs them (an ack of nothing would drop them silently).
    assert (ack.sequence, ack.accepted, ack.rejected) == (1, 0, 2)
    assert [r.index for r in ack.rejections] == [0, 1] and "internal error" in ack.error
    ack = stream.send(mapper_pb2.ReportEdgesRequest(node="node-a", sequence=2, edges=[edge(workload("a"), workload("d"))]))
    assert (ack.accepted, ack.rejected) == (1, 0)
    stream.close()


def test_list_edges_filters_and_lost_totals(channel: grpc.Channel) -> None:
    stub = mapper_pb2_grpc.MapperStub(channel)
    lost = edge_pb2.LostEvents(source=edge_pb2.LOST_SOURCE_KERNEL_MAP_FULL, count=12)
    acks = list(stub.ReportEdges(iter([mapper_pb2.ReportEdgesRequest(node="n", sequence=1, lost=[lost], edges=[
        edge(workload("frontend"), workload("cart")),
        edge(workload("reporter", "ops"), workload("cart")),
        edge(workload("frontend"), internet("93.184.216.34", "example.com"), 443),
    ])]), timeout=TIMEOUT))
    assert [a.accepted for a in acks] == [3]
    reply = stub.ListEdges(mapper_pb2.ListEdgesRequest(filters=[
        edge_pb2.EdgeFilter(namespaces=["ops"]), edge_pb2.EdgeFilter(server="example.com"),
    ]), timeout=TIMEOUT)
    # Sorted by client identity: namespace "ops" before "shop".
    assert [summary(e) for e in reply.edges] == [
        ("reporter.ops", "cart.shop", 8080), ("frontend.shop", "93.184.216.34", 443)
    ]
    assert [(lo.source, lo.count) for lo in reply.lost] == [(edge_pb2.LOST_SOURCE_KERNEL_MAP_FULL, 12)]


def test_reset_forgets_edges(channel: grpc.Channel) -> None:
    stub = mapper_pb2_grpc.MapperStub(channel)
    list(stub.ReportEdges(iter([mapper_pb2.ReportEdgesRequest(
        node="n", sequence=1, edges=[edge(workload("a"), workload(f"s{i}")) for i in range(4)]
    )]), timeout=TIMEOUT))
    assert stub.ResetEdges(mapper_pb2.ResetEdgesRequest(), timeout=TIMEOUT).removed == 4
    assert len(stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=TIMEOUT).edges) == 0


def test_concurrent_streams(channel: grpc.Channel) -> None:
    stub = mapper_pb2_grpc.MapperStub(channel)
    batch = [edge(workload(f"c{i % 5}"), workload(f"s{i % 13}"), 80 + i % 2) for i in range(100)]
    errors: list[BaseException] = []

    def sniffer(n: int) -> None:
        try:
            requests = (mapper_pb2.ReportEdgesRequest(node=f"node-{n}", sequence=s, edges=batch) for s in range(20))
            acks = list(stub.ReportEdges(requests, timeout=TIMEOUT))
            assert [a.sequence for a in acks] == list(range(20))
            assert all(a.accepted == 100 for a in acks)
        except BaseException as exc:  # surfaced below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=sniffer, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    listed = stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=TIMEOUT).edges
    assert sum(e.count for e in listed) == 10 * 20 * 100
    assert all(len(e.reporting_nodes) == 10 for e in listed)


def test_streams_beyond_the_limit_are_refused_not_starving_queries() -> None:
    server = serve("127.0.0.1:0", None, max_streams=1)
    try:
        with grpc.insecure_channel(server.address) as ch:
            stub = mapper_pb2_grpc.MapperStub(ch)
            first = Stream(stub)
            assert first.send(mapper_pb2.ReportEdgesRequest(node="n", sequence=1)).sequence == 1
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.ReportEdges(iter([mapper_pb2.ReportEdgesRequest(node="m", sequence=1)]), timeout=TIMEOUT))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=TIMEOUT).edges is not None
            first.close()
    finally:
        server.stop(grace=None)


def test_edges_survive_a_mapper_restart(tmp_path: Path) -> None:
    db = tmp_path / "mapper.db"
    server = serve("127.0.0.1:0", str(db))
    try:
        with grpc.insecure_channel(server.address) as ch:
            stub = mapper_pb2_grpc.MapperStub(ch)
            list(stub.ReportEdges(iter([mapper_pb2.ReportEdgesRequest(
                node="n", sequence=1, edges=[edge(workload("frontend"), workload("cart"), count=5)]
            )]), timeout=TIMEOUT))
            before = stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=TIMEOUT)
    finally:
        server.stop()
    server = serve("127.0.0.1:0", str(db))
    try:
        with grpc.insecure_channel(server.address) as ch:
            after = mapper_pb2_grpc.MapperStub(ch).ListEdges(mapper_pb2.ListEdgesRequest(), timeout=TIMEOUT)
        assert after.edges == before.edges and after.lost == before.lost
        assert after.edges[0].count == 5
    finally:
        server.stop()


def test_listen_on_a_busy_port_fails_clearly(mapper: MapperServer) -> None:
    with pytest.raises(OSError, match="cannot listen"):
        serve(f"127.0.0.1:{mapper.port}", None)
