"""Matching semantics of the intents operator: which declared target covers which observed call."""
from __future__ import annotations

import pytest

from edge_testing import edge, internet, node, service, unresolved, workload
from netmapper.shadow.load import load_text
from netmapper.shadow.match import IntentsIndex, call_of, domain_matches
from netmapper_api.v1 import edge_pb2


def intents(targets: str, *, client: str = "{name: frontend, kind: Deployment}", namespace: str = "shop",
            version: str = "v2beta1") -> IntentsIndex:
    text = (f"apiVersion: k8s.otterize.com/{version}\nkind: ClientIntents\n"
            f"metadata: {{name: x, namespace: {namespace}}}\n"
            f"spec:\n  workload: {client}\n  targets:\n" + "".join(f"  - {t}\n" for t in targets.split(";")))
    result = load_text(text, "t.yaml")
    assert result.problems == []
    return IntentsIndex(result.intents)


def covered(index: IntentsIndex, e: edge_pb2.Edge) -> bool:
    call = call_of(e)
    assert call is not None
    return index.covering(call) is not None


FRONTEND = workload("frontend")


@pytest.mark.parametrize("target, server, expected", [
    ("kubernetes: {name: cart}", workload("cart"), True),
    ("kubernetes: {name: cart}", workload("cart", kind="StatefulSet"), True),  # kind optional
    ("kubernetes: {name: cart, kind: Deployment}", workload("cart"), True),
    ("kubernetes: {name: cart, kind: StatefulSet}", workload("cart"), False),
    ("kubernetes: {name: cart.shop}", workload("cart"), True),  # qualified with the client's own namespace
    ("kubernetes: {name: cart}", workload("cart", "other"), False),  # unqualified = client's namespace
    ("kubernetes: {name: cart.other}", workload("cart", "other"), True),
    ("kubernetes: {name: cart}", workload("cart", service=("cart-svc", "shop")), True),  # through its Service
    ("kubernetes: {name: cart}", workload("carts"), False),
    ("kubernetes: {name: cart-svc, kind: Service}", workload("cart", service=("cart-svc", "shop")), True),
    ("kubernetes: {name: kubernetes.default}", service("kubernetes", "default"), True),  # the API server
    ("kubernetes: {name: legacy}", service("legacy"), False),  # a Service is not a workload
    ("service: {name: cart-svc}", workload("cart", service=("cart-svc", "shop")), True),
    ("service: {name: cart-svc}", workload("cart"), False),  # pod IP, not through the Service
    ("service: {name: legacy}", service("legacy"), True),
    ("service: {name: legacy.other}", service("legacy"), False),
    ("kafka: {name: kafka.streaming}", workload("kafka", "streaming", "StatefulSet"), True),
])
def test_in_cluster_targets(target: str, server: edge_pb2.Endpoint, expected: bool) -> None:
    assert covered(intents(target), edge(FRONTEND, server)) is expected


API = internet("198.51.100.7", "api.partner.example")


@pytest.mark.parametrize("target, server, port, expected", [
    ("internet: {domains: [api.partner.example]}", API, 443, True),  # no ports: every port
    ("internet: {domains: [API.Partner.Example.]}", API, 443, True),  # DNS case and root dot
    ("internet: {domains: [api.partner.example], ports: [443]}", API, 443, True),
    ("internet: {domains: [api.partner.example], ports: [443]}", API, 80, False),
    ("internet: {domains: [other.example]}", API, 443, False),
    ("internet: {domains: ['*.partner.example']}", API, 443, True),
    ("internet: {domains: ['*.partner.example']}", internet("198.51.100.7", "a.b.partner.example"), 443, True),
    ("internet: {domains: ['*.partner.example']}", internet("198.51.100.7", "partner.example"), 443, False),
    ("internet: {domains: ['*.partner.example']}", internet("198.51.100.7", "evilpartner.example"), 443, False),
    ("internet: {ips: [198.51.100.7]}", API, 443, True),  # by address even when it has a name
    ("internet: {ips: [198.51.100.0/24], ports: [443, 8443]}", internet("198.51.100.99"), 8443, True),
    ("internet: {ips: [198.51.101.0/24]}", internet("198.51.100.99"), 443, False),
    ("internet: {ips: ['2001:db8::/32']}", internet("2001:db8::5"), 443, True),
    ("internet: {ips: ['2001:db8::/32']}", internet("198.51.100.99"), 443, False),  # other family
    ("internet: {ips: [10.0.0.0/8]}", unresolved("10.1.2.3"), 443, True),
    ("internet: {ips: [10.0.0.0/8]}", workload("cart", ip="10.1.2.3"), 443, False),  # workloads are not internet
    ("kubernetes: {name: cart}", API, 443, False),
    ("internet: {ips: [10.0.0.0/8]}", node("n1", "10.0.0.1"), 443, False),
])
def test_internet_targets(target: str, server: edge_pb2.Endpoint, port: int, expected: bool) -> None:
    assert covered(intents(target), edge(FRONTEND, server, port)) is expected


@pytest.mark.parametrize("client_decl, namespace, client, expected", [
    ("{name: frontend}", "shop", workload("frontend"), True),
    ("{name: frontend, kind: Deployment}", "shop", workload("frontend"), True),
    ("{name: frontend, kind: StatefulSet}", "shop", workload("frontend"), False),
    ("{name: frontend}", "other", workload("frontend"), False),
    ("{name: frontendx}", "shop", workload("frontend"), False),
])
def test_the_document_speaks_for_its_workload(client_decl: str, namespace: str, client: edge_pb2.Endpoint,
                                              expected: bool) -> None:
    index = intents("kubernetes: {name: cart.shop}", client=client_decl, namespace=namespace)
    assert covered(index, edge(client, workload("cart"))) is expected


def test_a_node_client_has_no_intents() -> None:
    assert call_of(edge(node("n1"), workload("cart"))) is None


@pytest.mark.parametrize("pattern, name, expected", [
    ("a.example", "a.example", True), ("*.example", "a.example", True), ("*.example", "example", False),
    ("*example", "aexample", True), ("a.example", "b.a.example", False),
])
def test_domain_patterns_follow_the_operators_dns_cache(pattern: str, name: str, expected: bool) -> None:
    assert domain_matches(pattern, name) is expected
