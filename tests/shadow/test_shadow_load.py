"""Reading declared ClientIntents: every apiVersion of the CRD and every target type, files and
directories, multi-document YAML, and malformed documents reported with their position and skipped."""
from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from netmapper.intents.crd import ClientIntentsValidator
from netmapper.shadow.load import load_paths, load_text, split_documents
from netmapper.shadow.model import ClientRef

# One document per apiVersion, each with every network target type that version can express, plus one
# target that is not a network call (it must be counted as ignored, never compared).
V2 = """\
apiVersion: k8s.otterize.com/{version}
kind: ClientIntents
metadata: {{name: frontend, namespace: shop}}
spec:
  workload: {{name: frontend, kind: Deployment}}
  targets:
  - kubernetes: {{name: cart, kind: Deployment}}
  - kubernetes: {{name: ledger.billing}}
  - kubernetes: {{name: redis, kind: Service}}
  - service: {{name: search.catalog}}
  - internet: {{domains: ["*.partner.example", api.maps.example], ports: [443]}}
  - internet: {{ips: [198.51.100.0/24, "2001:db8::1"]}}
  - kafka: {{name: kafka.streaming, topics: [{{name: orders, operations: [produce]}}]}}
  - sql: {{name: pg, privileges: [{{databaseName: shop, operations: [SELECT]}}]}}
"""
V1 = """\
apiVersion: k8s.otterize.com/{version}
kind: ClientIntents
metadata: {{name: frontend, namespace: shop}}
spec:
  service: {{name: frontend, kind: Deployment}}
  calls:
  - {{name: cart, kind: Deployment}}
  - {{name: ledger.billing, type: http, HTTPResources: [{{path: /pay, methods: [POST]}}]}}
  - {{name: redis, kind: Service}}
  - {{name: "svc:search.catalog"}}
  - {{type: internet, internet: {{domains: ["*.partner.example", api.maps.example], ports: [443]}}}}
  - {{type: internet, internet: {{ips: [198.51.100.0/24, "2001:db8::1"]}}}}
  - {{name: kafka.streaming, type: kafka, kafkaTopics: [{{name: orders, operations: [produce]}}]}}
  - {{name: pg, type: database, databaseResources: [{{databaseName: shop, operations: [SELECT]}}]}}
"""
V1ALPHA2 = """\
apiVersion: k8s.otterize.com/v1alpha2
kind: ClientIntents
metadata: {name: frontend, namespace: shop}
spec:
  service: {name: frontend}
  calls:
  - {name: cart}
  - {name: ledger.billing, type: http, resources: [{path: /pay, methods: [POST]}]}
  - {name: "svc:search.catalog"}
  - {name: kafka.streaming, type: kafka, topics: [{name: orders, operations: [produce]}]}
  - {name: pg, type: database, databaseResources: [{databaseName: shop, operations: [SELECT]}]}
"""

EXPECTED_TARGETS = [
    ("kubernetes", "cart", "shop", "Deployment", (), (), ()),
    ("kubernetes", "ledger", "billing", "", (), (), ()),
    ("service", "redis", "shop", "", (), (), ()),
    ("service", "search", "catalog", "", (), (), ()),
    ("internet", "", "", "", ("*.partner.example", "api.maps.example"), (), (443,)),
    ("internet", "", "", "", (), ("198.51.100.0/24", "2001:db8::1"), ()),
    ("kubernetes", "kafka", "streaming", "", (), (), ()),
]


def document(version: str) -> str:
    if version == "v1alpha2":
        return V1ALPHA2
    return (V2 if version.startswith("v2") else V1).format(version=version)


def summary(target: object) -> tuple[object, ...]:
    t = target
    return (t.type, t.name, t.namespace, t.kind, t.domains, t.ips, t.ports)  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v2alpha1", "v2beta1"])
def test_every_version_reads_every_target_type(version: str) -> None:
    assert ClientIntentsValidator(strict=False).errors(YAML(typ="safe").load(document(version))) == []
    result = load_text(document(version), "intents.yaml")
    assert result.problems == []
    (doc,) = result.intents
    assert doc.client == ClientRef(namespace="shop", name="frontend", kind="Deployment")
    assert doc.api_version == f"k8s.otterize.com/{version}"
    assert [summary(t) for t in doc.targets] == EXPECTED_TARGETS
    assert doc.ignored_targets == 1  # the sql / database target
    assert [t.source for t in doc.targets] == [f"intents.yaml:{7 + i}" for i in range(7)]


def test_v1alpha2_has_no_kind_and_no_internet() -> None:
    assert ClientIntentsValidator(strict=False).errors(YAML(typ="safe").load(V1ALPHA2)) == []
    (doc,) = load_text(V1ALPHA2, "x.yaml").intents
    assert doc.client == ClientRef(namespace="shop", name="frontend", kind="")
    assert [summary(t) for t in doc.targets] == [
        ("kubernetes", "cart", "shop", "", (), (), ()),
        ("kubernetes", "ledger", "billing", "", (), (), ()),
        ("service", "search", "catalog", "", (), (), ()),
        ("kubernetes", "kafka", "streaming", "", (), (), ()),
    ]
    assert doc.ignored_targets == 1


def test_every_version_of_the_crd_is_covered_by_these_tests() -> None:
    versions = {v.removeprefix("k8s.otterize.com/") for v in ClientIntentsValidator().versions}
    assert versions == {"v1alpha2", "v1alpha3", "v1beta1", "v2alpha1", "v2beta1"}


def test_directories_are_searched_recursively_and_other_kinds_skipped(tmp_path: Path) -> None:
    (tmp_path / "team-a" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "team-a" / "deep" / "all.yml").write_text(
        document("v2beta1") + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\n"
        + document("v1alpha3").replace("frontend", "cart"))
    (tmp_path / "team-a" / "kustomization.yaml").write_text("resources: [deep/all.yml]\n")
    (tmp_path / "b.json").write_text('{"apiVersion": "k8s.otterize.com/v2alpha1", "kind": "ClientIntents", '
                                     '"metadata": {"name": "j", "namespace": "n"}, '
                                     '"spec": {"workload": {"name": "j"}, "targets": []}}')
    (tmp_path / ".git" / "stale.yaml").write_text(document("v2beta1").replace("frontend", "hidden"))
    (tmp_path / "notes.txt").write_text(document("v2beta1").replace("frontend", "txt"))
    result = load_paths([tmp_path])
    assert result.problems == []
    assert sorted((d.client.namespace, d.client.name) for d in result.intents) == [
        ("n", "j"), ("shop", "cart"), ("shop", "frontend")]
    assert {d.path.name for d in result.intents if d.path} == {"all.yml", "b.json"}


def test_a_kind_list_is_opened() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(
        "- " + document("v2beta1").replace("frontend", name).replace("\n", "\n  ").rstrip() + "\n"
        for name in ("a", "b"))
    assert [d.client.name for d in load_text(text, "list.yaml").intents] == ["a", "b"]


MALFORMED = """\
# first: fine
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: ok, namespace: shop}
spec:
  workload: {name: ok}
  targets:
  - kubernetes: {name: cart}
---
# second: broken YAML
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: broken, namespace: shop
spec: {}
---
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: bad-ip, namespace: shop}
spec:
  workload: {name: bad-ip}
  targets:
  - internet:
      ips: [10.0.0.1, not-an-address]
---
apiVersion: k8s.otterize.com/v9
kind: ClientIntents
metadata: {name: future, namespace: shop}
spec: {}
---
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: two-keys, namespace: shop}
spec:
  workload: {name: two-keys}
  targets:
  - kubernetes: {name: a}
    service: {name: b}
---
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: no-ns}
spec:
  service: {name: no-ns}
  calls: []
---
# last: fine again
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: last, namespace: shop}
spec:
  service: {name: last}
  calls: [{name: a.b.c}]
"""


def test_malformed_documents_are_reported_with_position_and_the_rest_is_read(tmp_path: Path) -> None:
    f = tmp_path / "repo.yaml"
    f.write_text(MALFORMED)
    result = load_paths([tmp_path])
    assert [d.client.name for d in result.intents] == ["ok"]
    problems = [(p.where, p.message) for p in result.problems]
    assert [w for w, _ in problems] == [
        f"{f}:14:5",  # where the parser noticed the unclosed flow mapping
        f"{f}:23:23",  # the bad address itself
        f"{f}:25:1",  # apiVersion
        f"{f}:36:5",  # the target with two keys
        f"{f}:41:1",  # metadata, which lacks its namespace
        f"{f}:52:12",  # a.b.c
    ]
    messages = [m for _, m in problems]
    assert messages[0].startswith("invalid YAML")
    assert "'not-an-address' is not an IP address or CIDR" in messages[1]
    assert "apiVersion 'k8s.otterize.com/v9'" in messages[2]
    assert "exactly one of" in messages[3]
    assert "metadata.namespace" in messages[4]
    assert "more than one '.'" in messages[5]


def test_default_namespace_fills_documents_without_one() -> None:
    text = MALFORMED.split("---\n")[5]
    (doc,) = load_text(text, "x.yaml", default_namespace="team-x").intents
    assert doc.client == ClientRef(namespace="team-x", name="no-ns")


def test_split_documents_keeps_every_byte() -> None:
    chunks = list(split_documents(MALFORMED))
    assert "".join(text for _, text in chunks) == MALFORMED
    assert [line for line, _ in chunks] == [0, 8, 14, 23, 28, 37, 44]


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_paths([tmp_path / "nope"])
