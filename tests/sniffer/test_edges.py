"""Aggregation of resolved connects into edges, in the sniffer, before they go to the mapper."""
from __future__ import annotations

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
