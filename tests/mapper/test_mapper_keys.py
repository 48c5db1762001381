"""Edge identity: what splits an edge and what is merged into it."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netmapper_api import keys
from netmapper_api.keys import InvalidEdge
from edge_testing import edge, internet, node, service, unresolved, workload
from netmapper_api.v1 import edge_pb2


def test_workload_identity_ignores_pod_ip_service_and_names() -> None:
    a = edge(workload("frontend", pod="frontend-1", ip="10.244.0.5"),
             workload("cart", pod="cart-a", ip="10.244.0.9", service=("cart", "shop"), dns=("cart.shop",)))
    b = edge(workload("frontend", pod="frontend-2", ip="10.244.0.6"), workload("cart", pod="cart-b"))
    assert keys.edge_key(a) == keys.edge_key(b)
    assert keys.edge_key(a) == (
        (keys.WORKLOAD, "shop", "Deployment", "frontend"), (keys.WORKLOAD, "shop", "Deployment", "cart"), 8080, keys.TCP
    )


@pytest.mark.parametrize(
    "other",
    [
        edge(workload("frontend"), workload("cart"), 9090),
        edge(workload("frontend"), workload("cart"), protocol=edge_pb2.PROTOCOL_UDP),
        edge(workload("frontend"), workload("cart", namespace="other")),
        edge(workload("frontend"), workload("cart", kind="StatefulSet")),
        edge(workload("frontend", namespace="other"), workload("cart")),
    ],
)
def test_port_protocol_namespace_and_kind_split_edges(other: edge_pb2.Edge) -> None:
    assert keys.edge_key(edge(workload("frontend"), workload("cart"))) != keys.edge_key(other)


def test_identities_of_other_endpoint_kinds() -> None:
    assert keys.endpoint_identity(service("kubernetes", "default"), "server") == (keys.SERVICE, "default", "kubernetes", "")
    assert keys.endpoint_identity(node("node-1", "192.168.1.5"), "server") == (keys.NODE, "node-1", "", "")
    assert keys.endpoint_identity(node("", "192.168.1.5"), "server") == (keys.NODE, "", "192.168.1.5", "")
    assert keys.endpoint_identity(internet("2001:db8::0001", "example.com"), "server") == (keys.INTERNET, "2001:db8::1", "", "")
    assert keys.endpoint_identity(unresolved("10.0.0.7"), "server") == (keys.UNRESOLVED, "10.0.0.7", "", "")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (edge_pb2.Edge(server=workload("cart"), port=80, protocol=edge_pb2.PROTOCOL_TCP), "no client"),
        (edge_pb2.Edge(client=workload("cart"), port=80, protocol=edge_pb2.PROTOCOL_TCP), "no server"),
        (edge(workload("a"), workload("b"), 0), "port 0"),
        (edge(workload("a"), workload("b"), 65536), "port 65536"),
        (edge(workload("a"), workload("b"), protocol=edge_pb2.PROTOCOL_UNKNOWN), "unknown protocol"),
        (edge(workload("a"), workload("b"), protocol=17), "unknown protocol"),
        (edge(workload("a"), edge_pb2.Endpoint(ip="1.2.3.4")), "unknown endpoint kind"),
        (edge(workload("a", namespace=""), workload("b")), "client: workload endpoint needs"),
        (edge(workload("a"), internet("")), "server: ENDPOINT_KIND_INTERNET endpoint needs ip"),
        (edge(workload("a"), internet("not-an-ip")), "invalid IP address"),
        (edge(workload("a"), node("", "")), "node endpoint needs"),
        (edge(workload("a"), service("", "shop")), "service endpoint needs"),
        (edge(workload("a\0b"), workload("b")), "NUL"),
    ],
)
def test_invalid_edges_are_rejected_with_a_reason(bad: edge_pb2.Edge, reason: str) -> None:
    with pytest.raises(InvalidEdge, match=reason):
        keys.edge_key(bad)


def test_attrs_normalise_and_sort_dns_names() -> None:
    attrs = keys.endpoint_attrs(internet("1.2.3.4", "B.example.com.", "a.example.com", "b.example.com"))
    assert attrs.dns_names == ("a.example.com", "b.example.com")


def test_attrs_dns_names_are_bounded() -> None:
    names = [f"n{i:02d}.example.com" for i in range(40)]
    assert keys.endpoint_attrs(internet("1.2.3.4", *names)).dns_names == tuple(sorted(names)[: keys.MAX_DNS_NAMES])


@given(st.lists(st.text(max_size=3), max_size=30), st.lists(st.text(max_size=3), max_size=30))
def test_bounded_union_is_sorted_bounded_and_order_independent(a: list[str], b: list[str]) -> None:
    one = keys.bounded_union(keys.bounded_union((), a, 5), b, 5)
    other = keys.bounded_union(keys.bounded_union((), b, 5), a, 5)
    assert one == other == tuple(sorted(set(a) | set(b))[:5])


_names = st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=6)
_ids = st.one_of(
    st.tuples(st.just(keys.WORKLOAD), _names, _names, _names),
    st.tuples(st.just(keys.SERVICE), _names, _names, st.just("")),
    st.tuples(st.just(keys.INTERNET), _names, st.just(""), st.just("")),
)


@given(st.lists(st.tuples(_ids, _ids, st.integers(1, 65535), st.sampled_from([1, 2])), max_size=40))
def test_sort_key_orders_like_the_key_tuple(edge_keys: list[keys.EdgeKey]) -> None:
    assert sorted(edge_keys, key=keys.sort_key) == sorted(edge_keys)


def test_endpoint_message_round_trips_identity_and_attrs() -> None:
    ep = workload("cart", pod="cart-1", ip="10.0.0.1", service=("cart-svc", "shop"), dns=("cart.shop.svc.cluster.local",))
    identity = keys.endpoint_identity(ep, "server")
    attrs = keys.endpoint_attrs(ep)
    assert keys.endpoint_message(identity, attrs) == ep
