"""Aggregation of resolved connects into edges, in the sniffer, before they go to the mapper."""
from __future__ import annotations

import pytest

from netmapper_api.v1 import edge_pb2
from sniffer.edges import EdgeAccumulator
from netmapper_api.endpoints import Endpoint, EndpointKind, ServiceRef, Workload
from sniffer.resolver import ResolvedConnect

FRONTEND = Workload("shop", "Deployment", "frontend")
CART = Workload("shop", "Deployment", "cart")


def connect(client_pod: str, *, count: int = 1, first: float = 10.0, last: float = 10.0, port: int = 8080,
            names: tuple[str, ...] = ()) -> ResolvedConnect:
    return ResolvedConnect(
        client=Endpoint(EndpointKind.WORKLOAD, ip="10.0.0.1", workload=FRONTEND, pod=client_pod),
        server=Endpoint(EndpointKind.WORKLOAD, ip="10.96.0.20", workload=CART, service=ServiceRef("shop", "cart"),
                        dns_names=names),
        port=port, count=count, first_seen=first, last_seen=last)


def test_replicas_of_one_workload_make_one_edge_with_summed_counts_and_time_span() -> None:
    acc = EdgeAccumulator()
    acc.add([connect("frontend-a", count=5, first=10, last=12), connect("frontend-b", count=3, first=8, last=11),
             connect("frontend-a", port=9090)])
    edges = sorted(acc.take(), key=lambda e: e.port)
    assert [(e.port, e.count) for e in edges] == [(8080, 8), (9090, 1)]
    e = edges[0]
    assert (e.first_seen.seconds, e.last_seen.seconds) == (8, 12)
    assert (e.client.workload.name, e.server.workload.name, e.server.service.name) == ("frontend", "cart", "cart")
    assert e.protocol == edge_pb2.PROTOCOL_TCP
    assert len(acc) == 0 and acc.take() == []


def test_dns_names_accumulate_sorted() -> None:
    acc = EdgeAccumulator()
    acc.add([connect("a", names=("cart.shop.svc.cluster.local",)), connect("a", names=("cart",))])
    (edge,) = acc.take()
    assert list(edge.server.dns_names) == ["cart", "cart.shop.svc.cluster.local"]


def test_overflow_beyond_max_edges_is_counted_not_silent() -> None:
    acc = EdgeAccumulator(max_edges=2)
    acc.add([connect("a", port=p, count=2) for p in (1, 2, 3, 4)])
    acc.add([connect("a", port=1, count=7)])  # an existing edge still merges
    assert len(acc) == 2 and acc.overflow == 4
    assert sorted(e.count for e in acc.take()) == [2, 9]


def test_a_known_edge_is_refreshed_at_most_every_refresh_seconds_with_its_accumulated_count() -> None:
    acc = EdgeAccumulator(refresh=30.0)
    acc.add([connect("a", count=2)])
    assert [e.count for e in acc.take(now=100.0)] == [2]  # new: sent at once
    for t in (101.0, 110.0, 129.0):  # known: connects keep counting, nothing is sent before the refresh
        acc.add([connect("a", count=5, last=t)])
        assert acc.take(now=t) == []
    acc.add([connect("a", port=9090)])  # a new edge meanwhile goes out at once, alone
    assert [(e.port, e.count) for e in acc.take(now=129.5)] == [(9090, 1)]
    (refreshed,) = acc.take(now=130.0)
    assert (refreshed.port, refreshed.count, refreshed.last_seen.seconds) == (8080, 15, 129)
    assert acc.take(now=131.0) == [] and len(acc) == 0
    acc.add([connect("a", count=1, last=140.0)])
    assert acc.take(now=140.0) == []
    assert [e.count for e in acc.take()] == [1]  # shutdown: everything pending, due or not


def test_known_edges_are_bounded_and_a_forgotten_one_is_sent_as_new() -> None:
    acc = EdgeAccumulator(refresh=30.0, max_known=2)
    for port in (1, 2, 3):
        acc.add([connect("a", port=port)])
        acc.take(now=0.0)
    assert acc.known == 2
    acc.add([connect("a", port=1), connect("a", port=3)])
    assert [e.port for e in acc.take(now=1.0)] == [1]  # port 1 was forgotten (least recently sent)


@pytest.mark.parametrize("columns", [False, True], ids=["edges", "columns"])
def test_serialized_batch_is_cut_into_requests_within_the_limits(columns: bool) -> None:
    from netmapper_api.columns import column_edges
    from netmapper_api.limits import MAX_REPORT_EDGES
    from netmapper_api.v1 import mapper_pb2

    n = 2 * MAX_REPORT_EDGES + 7
    acc = EdgeAccumulator()
    acc.add([connect("frontend-a", port=p, count=p, names=("cart",)) for p in range(1, n + 1)])
    chunks = acc.take_serialized(columns=columns)
    assert [count for count, _ in chunks] == [MAX_REPORT_EDGES, MAX_REPORT_EDGES, 7] and len(acc) == 0
    requests = [mapper_pb2.ReportEdgesRequest.FromString(payload) for _, payload in chunks]
    # One form only; the columns of the SERIALIZE_EDGES-sized parts of a chunk concatenate into one.
    assert all(len(r.edges) == 0 if columns else not r.HasField("columns") for r in requests)
    per_request = [column_edges(r.columns) if columns else list(r.edges) for r in requests]
    assert [len(es) for es in per_request] == [count for count, _ in chunks]
    edges = [e for es in per_request for e in es]
    assert all(e.first_seen.seconds and e.last_seen.seconds >= e.first_seen.seconds for e in edges)
    assert sorted((e.port, e.count) for e in edges) == [(p, p) for p in range(1, n + 1)]
    assert all(list(e.server.dns_names) == ["cart"] and e.client.workload.name == "frontend" for e in edges)
