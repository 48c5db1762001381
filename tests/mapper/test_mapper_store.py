"""EdgeStore in memory: merge semantics, validation, filters, ordering, reset/expire, lost totals."""
from __future__ import annotations

import random
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netmapper_api import keys
from mapper.store import EdgeStore
from edge_testing import T0, edge, internet, node, service, summary, unresolved, workload
from netmapper_api.v1 import edge_pb2, mapper_pb2


def flt(namespaces: tuple[str, ...] = (), client: str = "", server: str = "") -> edge_pb2.EdgeFilter:
    return edge_pb2.EdgeFilter(namespaces=namespaces, client=client, server=server)


def test_same_edge_reported_again_merges_into_one() -> None:
    store = EdgeStore()
    batch = [edge(workload("frontend"), workload("cart"), first=T0 + 10, last=T0 + 20, count=3)]
    assert store.merge(batch, "node-a").accepted == 1
    store.merge([edge(workload("frontend"), workload("cart"), first=T0 + 5, last=T0 + 15, count=2)], "node-a")
    store.merge(batch, "node-a")
    [e] = store.list()
    assert e.count == 8  # sum of the reported deltas
    assert e.first_seen.ToSeconds() == T0 + 5  # min
    assert e.last_seen.ToSeconds() == T0 + 20  # max
    assert list(e.reporting_nodes) == ["node-a"]


def test_reporting_nodes_are_a_sorted_union() -> None:
    store = EdgeStore()
    for n in ("node-c", "node-a", "node-b", "node-a"):
        store.merge([edge(workload("frontend"), workload("cart"))], n)
    [e] = store.list()
    assert list(e.reporting_nodes) == ["node-a", "node-b", "node-c"]
    assert e.count == 4


def test_pods_of_one_workload_are_one_edge_with_an_order_independent_example_pod() -> None:
    pods = ["frontend-2", "frontend-1", "frontend-3", "", "frontend-1", "frontend-9", "frontend-5", "frontend-2"]
    lists = []
    for order in (pods, list(reversed(pods))):
        store = EdgeStore()
        for i, pod in enumerate(order):
            store.merge([edge(workload("frontend", pod=pod, ip=f"10.0.0.{9 - i}"), workload("cart"))], f"node-{i % 3}")
        [e] = store.list()
        assert (e.client.pod, e.count) == ("frontend-1", 8)
        lists.append(e)
    assert lists[0] == lists[1]


def test_dns_names_and_services_are_unioned() -> None:
    store = EdgeStore()
    store.merge([edge(workload("a"), internet("1.2.3.4", "b.example.com"), 443)], "n")
    store.merge([edge(workload("a"), internet("1.2.3.4", "a.example.com", "B.example.com."), 443)], "n")
    store.merge([edge(workload("a"), workload("cart", service=("cart-v2", "shop")))], "n")
    store.merge([edge(workload("a"), workload("cart", service=("cart", "shop")))], "n")
    store.merge([edge(workload("a"), workload("cart"))], "n")  # direct pod call: Services remain
    by_server = {summary(e)[1]: e for e in store.list()}
    assert list(by_server["1.2.3.4"].server.dns_names) == ["a.example.com", "b.example.com"]
    # The proto holds one Service: the first in sort order of the union.
    assert by_server["cart.shop"].server.service.name == "cart"
    assert len(store.list([flt(server="cart-v2")])) == 1  # the other one is still known


def test_invalid_edges_are_rejected_and_the_rest_accepted() -> None:
    store = EdgeStore()
    result = store.merge(
        [
            edge(workload("a"), workload("b")),
            edge(workload("a"), workload("b"), 0),
            edge(workload("a"), internet("")),
            edge(workload("a"), workload("c"), protocol=edge_pb2.PROTOCOL_UNKNOWN),
            edge_pb2.Edge(),
            edge(workload("a"), workload("d")),
        ],
        "n",
    )
    assert (result.accepted, result.rejected) == (2, 4)
    assert result.error == "port 0 out of range 1..65535"  # the first reason
    assert [summary(e) for e in store.list()] == [("a.shop", "b.shop", 8080), ("a.shop", "d.shop", 8080)]


def test_batch_without_node_is_rejected_whole() -> None:
    store = EdgeStore()
    result = store.merge([edge(workload("a"), workload("b"))], "")
    assert (result.accepted, result.rejected, result.error) == (0, 1, "request has no node name")
    assert len(store) == 0


def test_time_rules() -> None:
    store = EdgeStore()
    before = time.time_ns()
    unstamped = edge_pb2.Edge(client=workload("a"), server=workload("b"), port=80, protocol=edge_pb2.PROTOCOL_TCP)
    backwards = edge(workload("a"), workload("c"), first=T0 + 10, last=T0)
    assert store.merge([unstamped, backwards], "n").rejected == 1
    [e] = store.list()
    assert before <= e.first_seen.ToNanoseconds() == e.last_seen.ToNanoseconds() <= time.time_ns()
    assert e.count == 1  # count 0 is read as one observation


def test_expired_then_reported_again_edge_comes_back() -> None:
    store = EdgeStore()
    store.merge([edge(workload("a"), workload("old"), first=T0), edge(workload("a"), workload("new"), first=T0 + 100)], "n")
    assert store.expire(T0 + 50) == 1
    assert [summary(e)[1] for e in store.list()] == ["new.shop"]
    # The fast index still remembers the expired record; the edge must be recreated, not lost.
    store.merge([edge(workload("a"), workload("old"), first=T0 + 200, count=5)], "n")
    assert {summary(e)[1]: e.count for e in store.list()} == {"new.shop": 1, "old.shop": 5}


def test_reset_forgets_everything_and_counts() -> None:
    store = EdgeStore()
    store.merge([edge(workload("a"), workload(f"s{i}")) for i in range(5)], "n")
    assert store.reset() == 5
    assert store.list() == []
    store.merge([edge(workload("a"), workload("s1"))], "n")
    assert len(store.list()) == 1


def test_lost_events_are_totalled_per_source() -> None:
    store = EdgeStore()
    lost = edge_pb2.LostEvents(source=edge_pb2.LOST_SOURCE_KERNEL_MAP_FULL, count=3)
    lost.first.FromSeconds(T0 + 5)
    lost.last.FromSeconds(T0 + 6)
    store.record_lost([lost], "node-a")
    later = edge_pb2.LostEvents(source=edge_pb2.LOST_SOURCE_KERNEL_MAP_FULL, count=4)
    later.first.FromSeconds(T0 + 1)
    later.last.FromSeconds(T0 + 9)
    store.record_lost([later, edge_pb2.LostEvents(source=edge_pb2.LOST_SOURCE_RING_BUFFER, count=0)], "node-b")
    [total] = store.lost_totals()
    assert (total.source, total.count, total.first.seconds, total.last.seconds) == (
        edge_pb2.LOST_SOURCE_KERNEL_MAP_FULL, 7, T0 + 1, T0 + 9
    )


def _cluster_edges() -> list[edge_pb2.Edge]:
    return [
        edge(workload("frontend"), workload("cart", service=("cart", "shop")), 8080),
        edge(workload("cart"), workload("redis", kind="StatefulSet"), 6379),
        edge(workload("reporter", "ops"), workload("cart"), 8080),
        edge(workload("frontend"), workload("auth", "identity"), 443),
        edge(workload("frontend"), internet("93.184.216.34", "example.com"), 443),
        edge(workload("frontend"), service("kubernetes", "default"), 443),
        edge(node("node-1"), workload("cart"), 8080),
        edge(unresolved("10.244.9.9"), workload("cart"), 8080),
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([], 8),
        ([flt()], 8),  # an empty filter matches everything
        ([flt(namespaces=("ops",))], [("reporter.ops", "cart.shop", 8080)]),
        ([flt(namespaces=("identity", "default"))], [("frontend.shop", "auth.identity", 443),
                                                     ("frontend.shop", "svc:kubernetes.default", 443)]),
        ([flt(client="reporter")], [("reporter.ops", "cart.shop", 8080)]),
        ([flt(client="reporter.shop")], []),
        ([flt(server="redis.shop")], [("cart.shop", "redis.shop", 6379)]),
        ([flt(server="kubernetes.default")], [("frontend.shop", "svc:kubernetes.default", 443)]),
        ([flt(server="example.com")], [("frontend.shop", "93.184.216.34", 443)]),
        ([flt(server="node-1")], []),
        ([flt(client="node-1")], [("node:node-1", "cart.shop", 8080)]),
        # fields AND within a filter
        ([flt(namespaces=("shop",), client="frontend", server="cart")], [("frontend.shop", "cart.shop", 8080)]),
        ([flt(namespaces=("ops",), client="frontend")], []),
        # filters OR
        ([flt(client="reporter"), flt(server="redis")], [("cart.shop", "redis.shop", 6379),
                                                          ("reporter.ops", "cart.shop", 8080)]),
    ],
)
def test_filters(filters: list[edge_pb2.EdgeFilter], expected: int | list[tuple[str, str, int]]) -> None:
    store = EdgeStore()
    store.merge(_cluster_edges(), "n")
    got = [summary(e) for e in store.list(filters)]
    if isinstance(expected, int):
        assert len(got) == expected
    else:
        assert sorted(got) == sorted(expected)


def test_server_filter_matches_the_service_a_workload_was_reached_through() -> None:
    store = EdgeStore()
    store.merge(_cluster_edges(), "n")
    store.merge([edge(workload("frontend"), workload("cart", service=("cart-public", "shop")), 8080)], "n")
    assert [summary(e) for e in store.list([flt(server="cart-public.shop")])] == [("frontend.shop", "cart.shop", 8080)]


@settings(max_examples=30, deadline=None)
@given(st.randoms(use_true_random=False))
def test_list_order_does_not_depend_on_arrival_order(rnd: random.Random) -> None:
    edges = _cluster_edges() + [edge(workload(f"c{i % 3}"), workload(f"s{i % 5}"), 80 + i % 4) for i in range(30)]
    one, other = EdgeStore(), EdgeStore()
    one.merge(edges, "n")
    shuffled = list(edges)
    rnd.shuffle(shuffled)
    for e in shuffled:  # one at a time, so the new-key merge path sees a different order too
        other.merge([e], "n")
    assert one.list() == other.list()
    listed = one.list()
    assert [keys.edge_key(e) for e in listed] == sorted(keys.edge_key(e) for e in listed)


def test_list_response_is_the_canonical_protobuf_serialization() -> None:
    store = EdgeStore()
    store.merge(_cluster_edges(), "node-b")
    store.merge(_cluster_edges()[:3], "node-a")
    store.record_lost([edge_pb2.LostEvents(source=edge_pb2.LOST_SOURCE_RING_BUFFER, count=2)], "node-a")
    raw = store.list_response_bytes()
    parsed = mapper_pb2.ListEdgesResponse.FromString(raw)
    assert len(parsed.edges) == 8 and len(parsed.lost) == 1
    assert parsed.SerializeToString(deterministic=True) == raw
    # Bytes built from caches must equal a fresh build after more merges change count and times.
    store.merge([edge(workload("frontend"), workload("cart"), 8080, first=T0 + 1000, count=7)], "node-c")
    again = store.list_response_bytes()
    assert mapper_pb2.ListEdgesResponse.FromString(again).SerializeToString(deterministic=True) == again


def test_concurrent_merges_lose_nothing() -> None:
    store = EdgeStore()
    batch = [edge(workload(f"c{i % 7}", pod=f"p{i}"), workload(f"s{i % 11}"), 80 + i % 3) for i in range(200)]
    distinct = {keys.edge_key(e) for e in batch}

    def worker(n: int) -> None:
        for _ in range(25):
            store.merge(batch, f"node-{n}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listed = store.list()
    assert len(listed) == len(distinct)
    assert sum(e.count for e in listed) == 8 * 25 * 200
    assert all(len(e.reporting_nodes) == 8 for e in listed)
