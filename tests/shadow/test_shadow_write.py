"""diff --write: missing targets added in place, unused ones pruned, everything else byte for byte."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge_testing import edge, internet, workload
from netmapper.intents.crd import ClientIntentsValidator
from netmapper.shadow.diff import diff
from netmapper.shadow.load import load_paths
from netmapper.shadow.write import guess_indent, write_directory

SHOP = """\
# Intents of the shop team. Reviewed by @shop-leads.
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata:
  namespace: shop   # key order as the team likes it
  name: frontend
spec:
  workload:
    name: frontend
    kind: Deployment
  targets:
    # the cart API
    - kubernetes:
        name: cart
        kind: Deployment
    - kubernetes: {name: search}   # retired last quarter
    - internet:
        domains: ['api.partner.example']
        ports: [443]
---
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: cart, namespace: shop}
spec:
  service: {name: cart, kind: Deployment}
  calls:
  - name: redis   # cache
    kind: StatefulSet
"""
UNTOUCHED = """\
# billing does not change in this test: not one byte of this file may move
apiVersion: "k8s.otterize.com/v2alpha1"
kind: ClientIntents
metadata: {name: invoicer, namespace: billing}
spec:
  workload: {name: invoicer, kind: CronJob}
  targets:
      -   kubernetes:
              name: cart.shop
...
"""
OTHER = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '1'}\n"

EDGES = [
    edge(workload("frontend"), workload("cart", service=("cart", "shop")), 8080),
    edge(workload("frontend"), internet("198.51.100.7", "api.partner.example"), 443),
    edge(workload("frontend"), internet("198.51.100.7", "api.partner.example"), 8443),  # new port
    edge(workload("frontend"), workload("catalog", kind="StatefulSet"), 9000),  # new target
    edge(workload("cart"), workload("redis", kind="StatefulSet"), 6379),
    edge(workload("cart"), workload("ledger", "billing"), 7000),  # new, v1alpha3 notation
    edge(workload("invoicer", "billing", "CronJob"), workload("cart"), 8080),
    edge(workload("mailer", "notify"), internet("203.0.113.5"), 25),  # new client: new file
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "intents.yaml").write_text(SHOP)
    (tmp_path / "billing.yaml").write_text(UNTOUCHED)
    (tmp_path / "configmap.yaml").write_text(OTHER)
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_write_adds_missing_targets_and_keeps_every_other_byte(repo: Path) -> None:
    result = write_directory(repo, EDGES)
    assert sorted(str(p.relative_to(repo)) for p in result.files_changed) == ["shop/intents.yaml"]
    assert [p.name for p in result.files_created] == ["mailer.notify.yaml"]
    assert (repo / "billing.yaml").read_text() == UNTOUCHED
    assert (repo / "configmap.yaml").read_text() == OTHER
    assert (repo / "shop" / "intents.yaml").read_text() == SHOP.replace(
        """        ports: [443]
---""", """        ports: [443]
    - kubernetes:
        name: catalog
        kind: StatefulSet
    - internet:
        domains: [api.partner.example]
        ports: [8443]
---""").replace("""  - name: redis   # cache
    kind: StatefulSet
""", """  - name: redis   # cache
    kind: StatefulSet
  - name: ledger.billing
    kind: Deployment
""")
    assert (repo / "mailer.notify.yaml").read_text() == """\
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata:
  name: mailer
  namespace: notify
spec:
  workload:
    name: mailer
    kind: Deployment
  targets:
    - internet:
        ips:
          - "203.0.113.5"
        ports:
          - 25
"""
    after = load_paths([repo])
    assert after.problems == []
    assert diff(EDGES, after.intents).uncovered == []
    validator = ClientIntentsValidator()  # strict: what kubectl apply --validate=strict would say
    for f in repo.rglob("*.yaml"):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "ClientIntents":
                assert validator.errors(doc) == [], f


def test_write_is_idempotent(repo: Path) -> None:
    write_directory(repo, EDGES, prune=True)
    first = snapshot(repo)
    again = write_directory(repo, EDGES, prune=True)
    assert (again.added, again.pruned, again.files_changed, again.files_created) == ([], [], [], [])
    assert snapshot(repo) == first


def test_prune_removes_only_unused_targets(repo: Path) -> None:
    result = write_directory(repo, EDGES, prune=True)
    assert [e.target for e in result.pruned] == [{"kubernetes": {"name": "search"}}]
    text = (repo / "shop" / "intents.yaml").read_text()
    assert "search" not in text
    assert "# the cart API" in text and "# cache" in text and "# Intents of the shop team" in text
    assert (repo / "billing.yaml").read_text() == UNTOUCHED  # its one target is used
    assert diff(EDGES, load_paths([repo]).intents).unused == []


def test_without_prune_unused_targets_stay(repo: Path) -> None:
    write_directory(repo, EDGES)
    assert "kubernetes: {name: search}   # retired last quarter" in (repo / "shop" / "intents.yaml").read_text()


def test_nothing_to_do_writes_nothing(repo: Path) -> None:
    before = snapshot(repo)
    mtimes = {p: p.stat().st_mtime_ns for p in repo.rglob("*.yaml")}
    result = write_directory(repo, EDGES[:2])
    assert result.files_changed == [] and result.files_created == []
    assert snapshot(repo) == before
    assert {p: p.stat().st_mtime_ns for p in repo.rglob("*.yaml")} == mtimes


def test_an_empty_directory_gets_one_file_per_client(tmp_path: Path) -> None:
    result = write_directory(tmp_path / "new", EDGES)
    assert sorted(p.name for p in result.files_created) == [
        "cart.shop.yaml", "frontend.shop.yaml", "invoicer.billing.yaml", "mailer.notify.yaml"]
    assert diff(EDGES, load_paths([tmp_path / "new"]).intents).uncovered == []


@pytest.mark.parametrize("text, expected", [
    ("a:\n  b:\n    - c\n", (2, 4, 2)),
    ("a:\n  b:\n  - c\n", (2, 2, 0)),
    ("a:\n    b:\n        -   c: 1\n            d: 2\n", (4, 8, 4)),
    ("a: 1\n", (2, 2, 0)),
])
def test_indentation_is_read_off_the_document(text: str, expected: tuple[int, int, int]) -> None:
    assert guess_indent(text) == expected


def test_what_a_documents_version_cannot_express_is_reported_not_written(tmp_path: Path) -> None:
    old = ("apiVersion: k8s.otterize.com/v1alpha2\nkind: ClientIntents\nmetadata: {name: cart, namespace: shop}\n"
           "spec:\n  service: {name: cart}\n  calls:\n  - name: redis\n")
    (tmp_path / "cart.yaml").write_text(old)
    edges = [edge(workload("cart"), workload("redis", kind="StatefulSet"), 6379),
             edge(workload("cart"), internet("203.0.113.5", "pay.example"), 443),  # v1alpha2 has no internet
             edge(workload("cart"), workload("ledger", "billing"), 7000)]
    result = write_directory(tmp_path, edges)
    assert len(result.not_written) == 1 and "v1alpha2 cannot express" in result.not_written[0]
    assert (tmp_path / "cart.yaml").read_text() == old + "  - name: ledger.billing\n"  # no kind in v1alpha2
    assert result.files_created == []  # a second document for the client would clash in the cluster


def test_v1alpha3_gets_internet_calls_in_its_own_notation(tmp_path: Path) -> None:
    (tmp_path / "cart.yaml").write_text("apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\n"
                                        "metadata: {name: cart, namespace: shop}\nspec:\n  service: {name: cart}\n"
                                        "  calls: []\n")
    write_directory(tmp_path, [edge(workload("cart"), internet("203.0.113.5", "pay.example"), 443)])
    assert (tmp_path / "cart.yaml").read_text().endswith(
        "  calls:\n  - type: internet\n    internet:\n      domains: [pay.example]\n      ports: [443]\n")
    assert diff([edge(workload("cart"), internet("203.0.113.5", "pay.example"), 443)],
                load_paths([tmp_path]).intents).uncovered == []


def test_blank_lines_header_comments_and_document_markers_stay(tmp_path: Path) -> None:
    text = ("# file header\n\n---\n\n# leading comment of the document\n"
            "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: frontend, namespace: shop}\n"
            "spec:\n  workload: {name: frontend}\n  targets:\n  - kubernetes: {name: cart}  # trailing\n\n\n"
            "---\napiVersion: v1\nkind: ConfigMap\n...\n")
    (tmp_path / "a.yaml").write_text(text)
    write_directory(tmp_path, [edge(workload("frontend"), workload("db"), 5432)])
    assert (tmp_path / "a.yaml").read_text() == text.replace(
        "# trailing\n", "# trailing\n  - kubernetes:\n      name: db\n      kind: Deployment\n")
