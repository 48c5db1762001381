"""diff: the three sets, per-client coverage, --since, and the documented report formats."""
from __future__ import annotations

import json

from edge_testing import T0, edge, internet, iso, node, workload
from netmapper.shadow.diff import diff
from netmapper.shadow.load import load_text
from netmapper.shadow.report import render

INTENTS = """\
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: frontend, namespace: shop}
spec:
  workload: {name: frontend, kind: Deployment}
  targets:
  - kubernetes: {name: cart, kind: Deployment}
  - kubernetes: {name: old-search}
  - internet: {domains: ["*.partner.example"], ports: [443]}
---
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: cart, namespace: shop}
spec:
  service: {name: cart}
  calls: [{name: redis}]
---
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: idle, namespace: shop}
spec:
  workload: {name: idle}
  targets: [{service: {name: cart}}]
"""
DAY = 86400

EDGES = [
    edge(workload("frontend"), workload("cart", service=("cart", "shop")), 8080, first=T0, last=T0 + DAY),
    edge(workload("frontend"), internet("198.51.100.7", "api.partner.example"), 443, first=T0, last=T0 + DAY),
    edge(workload("frontend"), internet("198.51.100.7", "api.partner.example"), 80, first=T0, last=T0 + 2 * DAY),
    edge(workload("cart"), workload("redis", kind="StatefulSet"), 6379, first=T0, last=T0),  # old
    edge(workload("invoicer", "billing", "CronJob"), workload("cart", service=("cart", "shop")), 8080,
         first=T0 + DAY, last=T0 + 2 * DAY),
    edge(node("n1"), workload("cart"), 8080),  # not expressible as intents
]


def declared() -> list:  # type: ignore[type-arg]
    result = load_text(INTENTS, "repo/intents.yaml")
    assert result.problems == []
    return result.intents


def triples(entries: list) -> list[tuple[str, str, int | None]]:  # type: ignore[type-arg]
    return [(f"{e.client.namespace}/{e.client.name}", json.dumps(e.target, sort_keys=True), e.port) for e in entries]


def test_three_sets_and_coverage() -> None:
    result = diff(EDGES, declared())
    assert triples(result.uncovered) == [
        ("billing/invoicer", '{"kubernetes": {"kind": "Deployment", "name": "cart.shop"}}', 8080),
        ("shop/frontend", '{"internet": {"domains": ["api.partner.example"], "ports": [80]}}', 80),
    ]
    assert triples(result.covered) == [
        ("shop/cart", '{"kubernetes": {"kind": "StatefulSet", "name": "redis"}}', 6379),
        ("shop/frontend", '{"internet": {"domains": ["api.partner.example"], "ports": [443]}}', 443),
        ("shop/frontend", '{"kubernetes": {"kind": "Deployment", "name": "cart"}}', 8080),
    ]
    assert triples(result.unused) == [
        ("shop/frontend", '{"kubernetes": {"name": "old-search"}}', None),
        ("shop/idle", '{"service": {"name": "cart"}}', None),
    ]
    assert [(c.client.label(), c.covered, c.observed, c.percent) for c in result.coverage] == [
        ("billing/invoicer (CronJob)", 0, 1, 0.0),
        ("shop/cart (Deployment)", 1, 1, 100.0),
        ("shop/frontend (Deployment)", 2, 3, 200 / 3),
        ("shop/idle", 0, 0, None),
    ]
    assert len(result.skipped) == 1 and "node n1" in result.skipped[0]


def test_since_leaves_older_calls_out_and_their_declarations_become_unused() -> None:
    result = diff(EDGES, declared(), since_ns=(T0 + DAY) * 10**9)
    assert ("shop/cart", '{"kubernetes": {"kind": "StatefulSet", "name": "redis"}}', 6379) not in triples(result.covered)
    assert ("shop/cart", '{"kubernetes": {"name": "redis"}}', None) in triples(result.unused)
    assert len(result.uncovered) == 2  # both uncovered calls are recent
    result = diff(EDGES, declared(), since_ns=(T0 + 2 * DAY) * 10**9)
    assert triples(result.uncovered) == [
        ("billing/invoicer", '{"kubernetes": {"kind": "Deployment", "name": "cart.shop"}}', 8080),
        ("shop/frontend", '{"internet": {"domains": ["api.partner.example"], "ports": [80]}}', 80)]
    assert result.covered == []


def test_json_is_the_documented_shape() -> None:
    out = json.loads(render(diff(EDGES, declared()), "json"))
    assert set(out) == {"covered", "uncovered", "unused"}
    assert out["uncovered"][0] == {
        "client": {"name": "invoicer", "namespace": "billing", "kind": "CronJob"},
        "target": {"kubernetes": {"name": "cart.shop", "kind": "Deployment"}},
        "port": 8080,
        "last_seen": iso(T0 + 2 * DAY),
    }
    assert out["unused"][1] == {"client": {"name": "idle", "namespace": "shop", "kind": ""},
                                "target": {"service": {"name": "cart"}}}
    for entry in out["covered"] + out["uncovered"]:
        assert set(entry) == {"client", "target", "port", "last_seen"}


def test_table_and_markdown_name_the_line_to_edit_and_the_fix() -> None:
    result = diff(EDGES, declared())
    table = render(result, "table")
    assert "UNCOVERED (observed, not declared: blocked when enforced): 2" in table
    assert "old-search" in table and "repo/intents.yaml:8" in table
    assert "shop/frontend (Deployment)  2        3         67%" in table
    md = render(result, "markdown")
    assert "**2 observed calls not covered by the declared intents**" in md
    assert f"| billing/invoicer (CronJob) | cart.shop (Deployment) | 8080 | {iso(T0 + 2 * DAY)} |" in md
    snippet = md.split("```yaml\n")[1].split("```")[0]
    assert "name: invoicer" in snippet and "name: cart.shop" in snippet and "api.partner.example" in snippet


def test_everything_covered_says_so() -> None:
    result = diff(EDGES[:2], declared())
    assert result.uncovered == []
    assert "**Every observed call is covered.**" in render(result, "markdown")
