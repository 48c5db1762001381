"""The ClusterIndex as a read model: owners of kinds no feed delivers are asked for, never fetched."""
from __future__ import annotations

from typing import Any

from netmapper_api.endpoints import Workload
from sniffer.cluster import ClusterIndex

REV = ("apps/v1", "ControllerRevision", "shop", "cache-rev1")


def pod(name: str, ip: str, owner: tuple[str, str, str, str]) -> dict[str, Any]:
    api_version, kind, ns, owner_name = owner
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": f"u-{name}",
                         "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": owner_name,
                                              "controller": True}]},
            "status": {"podIP": ip}}


def test_owner_of_an_unwatched_kind_is_asked_for_and_resolved_when_added() -> None:
    index = ClusterIndex()
    index.apply("ADDED", pod("cache-0", "10.0.0.5", REV), at=1.0)
    # Until a feed answers, the reference names the workload.
    assert index.pod_at("10.0.0.5", 2.0).workload == Workload("shop", "ControllerRevision", "cache-rev1")
    assert index.missing_owners() == [REV]
    assert index.missing_owners() == []  # asked once
    revision = {"kind": "ControllerRevision", "apiVersion": "apps/v1",
                "metadata": {"name": "cache-rev1", "namespace": "shop",
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                  "name": "cache", "controller": True}]}}
    index.add_owners({REV: revision})
    assert index.pod_at("10.0.0.5", 2.0).workload == Workload("shop", "StatefulSet", "cache")
    assert index.missing_owners() == []  # StatefulSet is a watched kind: nothing more to fetch


def test_unreadable_owner_is_not_asked_for_again_until_owners_change() -> None:
    index = ClusterIndex()
    index.apply("ADDED", pod("a", "10.0.0.6", REV), at=1.0)
    assert index.missing_owners() == [REV]
    index.add_owners({REV: None})
    index.apply("ADDED", pod("b", "10.0.0.7", REV), at=1.0)
    assert index.missing_owners() == []
    assert index.pod_at("10.0.0.7", 2.0).workload == Workload("shop", "ControllerRevision", "cache-rev1")
    # A watched owner kind changed in the namespace: what the feed fetched there is asked for again.
    index.apply("ADDED", {"kind": "StatefulSet", "apiVersion": "apps/v1",
                          "metadata": {"name": "cache", "namespace": "shop"}}, at=3.0)
    assert index.missing_owners() == [REV]
