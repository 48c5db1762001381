"""ObjectTable: the index's records by (kind, namespace, name) in nested dicts."""
from __future__ import annotations

from sniffer.kube_records import OwnerRecord
from sniffer.object_table import ObjectTable


def rs(namespace: str, name: str) -> OwnerRecord:
    return OwnerRecord(kind="ReplicaSet", api_version="apps/v1", namespace=namespace, name=name, owner_api_version=None,
                       owner_kind="", owner_name="")


def test_put_get_pop_and_listing() -> None:
    table = ObjectTable()
    a, b, c = rs("team-a", "web"), rs("team-a", "api"), rs("team-b", "web")
    for rec in (a, b, c):
        table.put(rec)
    assert table.get("ReplicaSet", "team-a", "web") is a
    assert table.get("ReplicaSet", "team-c", "web") is None and table.get("Pod", "team-a", "web") is None
    assert sorted(table.keys("ReplicaSet")) == [("ReplicaSet", "team-a", "api"), ("ReplicaSet", "team-a", "web"),
                                                ("ReplicaSet", "team-b", "web")]
    assert table.in_namespace("ReplicaSet", "team-a") == [a, b]
    assert table.counts() == {"ReplicaSet": 3}
    newer = rs("team-a", "web")
    table.put(newer)  # replaces
    assert table.get("ReplicaSet", "team-a", "web") is newer and table.counts() == {"ReplicaSet": 3}
    assert table.pop("ReplicaSet", "team-b", "web") is c
    assert table.pop("ReplicaSet", "team-b", "web") is None
    assert table.in_namespace("ReplicaSet", "team-b") == []
    for name in ("web", "api"):
        table.pop("ReplicaSet", "team-a", name)
    assert table.counts() == {} and list(table.keys("ReplicaSet")) == []  # emptied kinds leave nothing behind
