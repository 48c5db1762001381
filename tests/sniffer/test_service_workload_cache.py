"""The per-Service workload cache: kept across events that cannot change it (Node heartbeats, pod
status updates), dropped by those that can (labels), so lookups neither rescan pods nor go stale."""
from __future__ import annotations

from typing import Any

import pytest

from netmapper_api.endpoints import ServiceRef, Workload
from sniffer import cluster
from sniffer.cluster import ClusterIndex

SVC = ServiceRef(namespace="shop", name="web")


def pod(name: str, ip: str, labels: dict[str, str], phase: str = "Running") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "labels": labels,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name[:-2],
                                              "controller": True}]},
            "spec": {"nodeName": "n1"}, "status": {"phase": phase, "podIP": ip}}


def node(heartbeat: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}],
                       "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": str(heartbeat)}]}}


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pod scans behind service_workloads()."""
    counted: list[int] = []
    real = cluster.service_workloads

    def counting(*args: Any, **kw: Any) -> list[Workload]:
        counted.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(cluster, "service_workloads", counting)
    return counted


def loaded() -> ClusterIndex:
    index = ClusterIndex()
    index.load([
        pod("web-0", "10.0.0.1", {"app": "web"}), pod("api-0", "10.0.0.2", {"app": "api"}), node(0),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.20"}},
    ], at=0.0)
    return index


def test_node_heartbeats_and_pod_status_updates_keep_the_cache(scans: list[int]) -> None:
    index = loaded()
    assert index.service_workloads(SVC) == [Workload("shop", "StatefulSet", "web")]
    for beat in range(1, 101):
        index.apply("MODIFIED", node(beat), at=float(beat))
        index.apply("MODIFIED", pod("api-0", "10.0.0.2", {"app": "api"}, phase="Running" if beat % 2 else "Pending"),
                    at=float(beat))
        assert index.service_workloads(SVC) == [Workload("shop", "StatefulSet", "web")]
    assert len(scans) == 1


def test_a_label_change_drops_the_cache(scans: list[int]) -> None:
    index = loaded()
    assert index.service_workloads(SVC) == [Workload("shop", "StatefulSet", "web")]
    index.apply("MODIFIED", pod("api-0", "10.0.0.2", {"app": "web"}), at=1.0)  # api-0 joins the Service
    assert index.service_workloads(SVC) == [Workload("shop", "StatefulSet", "api"), Workload("shop", "StatefulSet", "web")]
    index.apply("DELETED", pod("web-0", "10.0.0.1", {"app": "web"}), at=2.0)
    assert index.service_workloads(SVC) == [Workload("shop", "StatefulSet", "api")]
    assert len(scans) == 3
