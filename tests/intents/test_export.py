"""Export: edges -> ClientIntents. Every document produced here is validated against the CRD schema."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netmapper.intents.crd import ClientIntentsValidator
from netmapper.intents.export import ExportOptions, build_client_intents, export_intents, unexportable
from netmapper.intents.output import render_json, write_intents
from netmapper.intents.yaml_writer import render_yaml
from edge_testing import edge, internet, node, service, unresolved, workload
from netmapper_api.v1 import edge_pb2


def valid(validator: ClientIntentsValidator, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert validator.validate_all(docs) == []
    return docs


def cluster() -> list[edge_pb2.Edge]:
    """The demo's shape: a Service call, a direct StatefulSet call, another namespace, the outside world."""
    return [
        edge(workload("frontend", pod="frontend-1"), workload("cart", service=("cart", "shop")), 8080),
        edge(workload("frontend", pod="frontend-2"), workload("cart", service=("cart", "shop")), 8080),
        edge(workload("cart"), workload("redis", kind="StatefulSet", pod="redis-0"), 6379),
        edge(workload("reporter", "ops", "CronJob"), workload("cart", service=("cart", "shop")), 8080),
        edge(workload("frontend"), internet("93.184.216.34", "example.com"), 443),
        edge(workload("frontend"), internet("93.184.216.35", "example.com", "www.example.com"), 80),
        edge(workload("frontend"), internet("8.8.8.8"), 443),
        edge(workload("frontend"), internet("1.1.1.1"), 443),
        edge(workload("frontend"), internet("9.9.9.9"), 53, protocol=edge_pb2.PROTOCOL_UDP),
        edge(workload("frontend"), service("kubernetes", "default"), 443),
        edge(node("node-1"), workload("cart"), 8080),
        edge(workload("frontend"), unresolved("10.244.9.9"), 8080),
        edge(workload("frontend"), node("node-2", "192.168.0.2"), 10250),
    ]


FRONTEND_INTERNET = [
    {"internet": {"domains": ["example.com"], "ports": [80, 443]}},
    {"internet": {"domains": ["www.example.com"], "ports": [80]}},
    {"internet": {"ips": ["1.1.1.1", "8.8.8.8"], "ports": [443]}},
    {"internet": {"ips": ["9.9.9.9"], "ports": [53]}},
]


def v2(namespace: str, name: str, kind: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "k8s.otterize.com/v2beta1",
        "kind": "ClientIntents",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"workload": {"name": name, "kind": kind}, "targets": targets},
    }


def test_v2beta1_one_document_per_client_workload(crd_validator: ClientIntentsValidator) -> None:
    docs = valid(crd_validator, build_client_intents(cluster()))
    assert docs == [
        v2("ops", "reporter", "CronJob", [{"kubernetes": {"name": "cart.shop", "kind": "Deployment"}}]),
        v2("shop", "cart", "Deployment", [{"kubernetes": {"name": "redis", "kind": "StatefulSet"}}]),
        v2("shop", "frontend", "Deployment", [
            {"kubernetes": {"name": "cart", "kind": "Deployment"}},
            {"service": {"name": "kubernetes.default"}},  # a Service with no workload behind it
            *FRONTEND_INTERNET,
        ]),
    ]


def test_what_cannot_be_expressed_is_reported() -> None:
    assert unexportable(cluster()) == [
        "Deployment frontend.shop -> node node-2:10250: server is a node",
        "Deployment frontend.shop -> unresolved 10.244.9.9:8080: server address is unresolved",
        "node node-1 -> Deployment cart.shop:8080: client is not a workload",
    ]


def test_service_targets_replace_the_workload_when_asked(crd_validator: ClientIntentsValidator) -> None:
    docs = valid(crd_validator, build_client_intents(cluster(), ExportOptions(include_service_targets=True)))
    by_name = {d["metadata"]["name"]: d["spec"]["targets"] for d in docs}
    assert by_name["reporter"] == [{"service": {"name": "cart.shop"}}]
    assert by_name["cart"] == [{"kubernetes": {"name": "redis", "kind": "StatefulSet"}}]  # called directly
    assert by_name["frontend"][:2] == [{"service": {"name": "cart"}}, {"service": {"name": "kubernetes.default"}}]


def test_v1alpha3(crd_validator: ClientIntentsValidator) -> None:
    docs = valid(crd_validator, build_client_intents(cluster(), ExportOptions(output_version="v1alpha3")))
    frontend = docs[2]
    assert frontend["apiVersion"] == "k8s.otterize.com/v1alpha3"
    assert frontend["spec"] == {
        "service": {"name": "frontend", "kind": "Deployment"},
        "calls": [
            {"name": "cart", "kind": "Deployment"},
            {"name": "svc:kubernetes.default"},
            *({"type": "internet", "internet": t["internet"]} for t in FRONTEND_INTERNET),
        ],
    }
    assert docs[0]["spec"] == {"service": {"name": "reporter", "kind": "CronJob"},
                               "calls": [{"name": "cart.shop", "kind": "Deployment"}]}


def test_unknown_output_version_is_refused() -> None:
    with pytest.raises(ValueError, match="output_version"):
        ExportOptions(output_version="v1")  # type: ignore[arg-type]


def test_namespace_filter_selects_clients(crd_validator: ClientIntentsValidator) -> None:
    docs = valid(crd_validator, build_client_intents(cluster(), ExportOptions(namespaces=("ops",))))
    assert [d["metadata"]["name"] for d in docs] == ["reporter"]


@pytest.mark.parametrize(
    ("server", "clients"),
    [("cart.shop", ["reporter", "frontend"]), ("redis.shop", ["cart"]), ("example.com", ["frontend"]),
     ("kubernetes.default", ["frontend"]), ("nothing.shop", [])],
)
def test_server_filter_keeps_only_that_target(crd_validator: ClientIntentsValidator, server: str, clients: list[str]) -> None:
    docs = valid(crd_validator, build_client_intents(cluster(), ExportOptions(server=server)))
    assert [d["metadata"]["name"] for d in docs] == clients
    assert all(len(d["spec"]["targets"]) == 1 for d in docs)


def test_excluded_services_vanish_as_clients_and_targets(crd_validator: ClientIntentsValidator) -> None:
    docs = valid(crd_validator, build_client_intents(cluster(), ExportOptions(exclude_services=("cart",))))
    assert [d["metadata"]["name"] for d in docs] == ["frontend"]  # reporter only called cart: dropped
    assert {"kubernetes": {"name": "cart", "kind": "Deployment"}} not in docs[0]["spec"]["targets"]
    docs = build_client_intents(cluster(), ExportOptions(exclude_services=("redis.shop",)))
    assert [d["metadata"]["name"] for d in docs] == ["reporter", "frontend"]


def test_yaml_output(crd_validator: ClientIntentsValidator) -> None:
    docs = build_client_intents(cluster()[:4])
    text = render_yaml(docs)
    assert text.startswith(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata:\n  name: reporter\n"
        "  namespace: ops\nspec:\n  workload:\n    name: reporter\n    kind: CronJob\n  targets:\n"
        "    - kubernetes:\n        name: cart.shop\n        kind: Deployment\n---\n"
    )
    parsed = list(yaml.safe_load_all(text))
    assert parsed == docs
    valid(crd_validator, parsed)


def test_json_output_is_an_array_of_the_documents(crd_validator: ClientIntentsValidator) -> None:
    docs = build_client_intents(cluster())
    assert valid(crd_validator, json.loads(render_json(docs))) == docs


def test_write_single_file_and_dir(tmp_path: Path, crd_validator: ClientIntentsValidator) -> None:
    docs = build_client_intents(cluster())
    [single] = write_intents(docs, tmp_path / "out" / "intents.yaml")
    assert valid(crd_validator, list(yaml.safe_load_all(single.read_text()))) == docs
    files = write_intents(docs, tmp_path / "dir", output_type="dir")
    assert [f.name for f in files] == ["ops.reporter.yaml", "shop.cart.yaml", "shop.frontend.yaml"]
    assert [valid(crd_validator, list(yaml.safe_load_all(f.read_text())))[0] for f in files] == docs
    json_files = write_intents(docs, tmp_path / "json", output_type="dir", fmt="json")
    assert [json.loads(f.read_text()) for f in json_files] == docs


def test_validator_is_strict(crd_validator: ClientIntentsValidator) -> None:
    doc = build_client_intents(cluster())[0]
    typo = json.loads(json.dumps(doc))
    typo["spec"]["targets"][0] = {"kubernets": {"name": "cart.shop"}}
    assert any("kubernets" in e for e in crd_validator.errors(typo))
    bad_port = build_client_intents(cluster())[2]
    bad_port["spec"]["targets"][2]["internet"]["ports"] = ["443"]
    assert any("is not of type 'integer'" in e for e in crd_validator.errors(bad_port))
    assert crd_validator.errors({**doc, "apiVersion": "k8s.otterize.com/v9"})
    no_workload = json.loads(json.dumps(doc))
    del no_workload["spec"]["workload"]
    assert any("'workload' is a required property" in e for e in crd_validator.errors(no_workload))


# --- properties over random edge sets -------------------------------------------------------------

# Names chosen to stress YAML quoting: words YAML reads as booleans/null/numbers, leading symbols, unicode.
_tricky = st.sampled_from(
    ["cart", "yes", "No", "null", "~", "1e3", "0x1f", "123", "1.5", "2024-01-01", "-dash", "a: b", "#x", "ü-svc",
     "on", "y", "with space", "quote\"d", "back\\slash", "tab\tx", ".hidden", "a.b"]
)
_ns = st.sampled_from(["shop", "ops", "default", "true"])
_workload = st.builds(lambda n, ns, k: workload(n, ns, k), _tricky, _ns, st.sampled_from(["Deployment", "StatefulSet", ""]))
_server = st.one_of(
    _workload,
    st.builds(lambda n, ns, s: workload(n, ns, service=(s, ns)), _tricky, _ns, _tricky),
    st.builds(lambda n, ns: service(n, ns), _tricky, _ns),
    st.builds(lambda ip, names: internet(ip, *names),
              st.sampled_from(["1.1.1.1", "8.8.8.8", "2001:db8::1", "93.184.216.34"]),
              st.lists(st.sampled_from(["example.com", "api.example.com", "yes.example", "1e3.io"]), max_size=2)),
    st.builds(unresolved, st.sampled_from(["10.244.0.9"])),
)
_client = st.one_of(_workload, st.builds(node, st.sampled_from(["node-1"])))
_edges = st.lists(st.builds(lambda c, s, p: edge(c, s, p), _client, _server, st.sampled_from([53, 80, 443, 8080])),
                  max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edges, st.randoms(use_true_random=False), st.sampled_from(["v2beta1", "v1alpha3"]), st.booleans())
def test_random_exports_are_valid_round_trip_and_order_independent(
    crd_validator: ClientIntentsValidator, edges: list[edge_pb2.Edge], rnd: random.Random, version: str, services: bool
) -> None:
    options = ExportOptions(output_version=version, include_service_targets=services)  # type: ignore[arg-type]
    result = export_intents(edges, options)
    valid(crd_validator, result.documents)
    text = render_yaml(result.documents)
    assert list(yaml.safe_load_all(text)) == result.documents if result.documents else text == ""
    shuffled = list(edges)
    rnd.shuffle(shuffled)
    again = export_intents(shuffled, options)
    assert render_yaml(again.documents) == text
    assert again.skipped == result.skipped
    # One document per distinct client workload, never two with the same namespace/name.
    names = [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in result.documents]
    assert len(names) == len(set(names))
    workloads = [(d["metadata"]["namespace"], (d["spec"].get("workload") or d["spec"].get("service"))["name"],
                  (d["spec"].get("workload") or d["spec"].get("service")).get("kind", "")) for d in result.documents]
    assert workloads == sorted(set(workloads))


def test_same_name_different_kinds_get_distinct_documents(crd_validator: ClientIntentsValidator) -> None:
    docs = valid(crd_validator, build_client_intents([
        edge(workload("cart"), workload("redis"), 6379),
        edge(workload("cart", kind="StatefulSet"), workload("db"), 5432),
    ]))
    assert [(d["metadata"]["name"], d["spec"]["workload"]) for d in docs] == [
        ("cart-deployment", {"name": "cart", "kind": "Deployment"}),
        ("cart-statefulset", {"name": "cart", "kind": "StatefulSet"}),
    ]
