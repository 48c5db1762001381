"""Resolution of addresses to identities through the snapshot feed (the demo's cluster)."""
from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from netmapper.demo.scenario import SNAPSHOT
from sniffer.cluster import ClusterIndex
from netmapper_api.endpoints import EndpointKind, ServiceRef, Workload
from sniffer.records import ConnectObservation
from sniffer.resolver import Resolver
from sniffer.snapshot_feed import SnapshotError, load_index, read_snapshot


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(load_index(SNAPSHOT))


def obs(src: str, dst: str, port: int, *, count: int = 1, at: float = 100.0, cgroup: int = 0) -> ConnectObservation:
    return ConnectObservation(cgroup_id=cgroup, netns=1, saddr=ip_address(src), daddr=ip_address(dst), dport=port,
                              count=count, first_seen=at, last_seen=at, pid=1, comm="t")


def test_pod_ip_resolves_through_replicaset_to_deployment(resolver: Resolver) -> None:
    ep = resolver.client("10.244.0.12", 0, 100.0)
    assert ep.kind is EndpointKind.WORKLOAD
    assert ep.workload == Workload(namespace="shop", kind="Deployment", name="frontend")
    assert ep.pod == "frontend-6c8f9d7b5-q9z7m"


def test_ipv6_pod_ip_resolves_to_statefulset(resolver: Resolver) -> None:
    rc = resolver.resolve(obs("fd00:244::21", "fd00:244::31", 6379))
    assert rc.client.workload == Workload("shop", "Deployment", "cart")
    assert rc.server.workload == Workload("shop", "StatefulSet", "redis")


def test_cluster_ip_resolves_to_the_workload_behind_the_service(resolver: Resolver) -> None:
    ep = resolver.server("10.96.0.20", 100.0, resolver.client("10.244.0.11", 0, 100.0))
    assert ep.kind is EndpointKind.WORKLOAD
    assert ep.workload == Workload("shop", "Deployment", "cart")
    assert ep.service == ServiceRef("shop", "cart")


def test_job_pod_resolves_to_its_cronjob(resolver: Resolver) -> None:
    assert resolver.client("10.244.0.51", 0, 1.0).workload == Workload("billing", "CronJob", "invoicer")


def test_node_ip_and_unknown_addresses_are_kept_not_dropped(resolver: Resolver) -> None:
    assert resolver.client("10.244.0.1", 0, 1.0).node == "demo-node"
    unknown = resolver.server("10.244.0.99", 1.0, resolver.client("10.244.0.11", 0, 1.0))
    assert (unknown.kind, unknown.ip) == (EndpointKind.UNRESOLVED, "10.244.0.99")
    outside = resolver.server("198.51.100.7", 1.0, unknown)
    assert (outside.kind, outside.ip) == (EndpointKind.INTERNET, "198.51.100.7")


def pod(name: str, ip: str, *, owner: tuple[str, str] | None = None, ns: str = "ns", uid: str | None = None,
        annotations: dict[str, str] | None = None, host_network: bool = False, labels: dict[str, str] | None = None) -> dict:
    meta: dict = {"name": name, "namespace": ns, "uid": uid or f"uid-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"hostNetwork": host_network},
            "status": {"podIP": ip}}


def test_workload_name_annotation_overrides_the_owner_name() -> None:
    index = ClusterIndex()
    index.apply("ADDED", pod("api-1", "10.0.0.5", owner=("StatefulSet", "api"),
                             annotations={"intents.otterize.com/workload-name": "payments-api"}), at=0)
    assert index.pod_at("10.0.0.5", 1).workload == Workload("ns", "StatefulSet", "payments-api")


def test_owner_missing_from_the_feed_still_names_the_workload() -> None:
    index = ClusterIndex()  # the ReplicaSet's owner (a Deployment) was never fed
    index.apply("ADDED", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": "web-abc", "namespace": "ns", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}]}}, at=0)
    index.apply("ADDED", pod("web-abc-1", "10.0.0.6", owner=("ReplicaSet", "web-abc")), at=0)
    assert index.pod_at("10.0.0.6", 1).workload == Workload("ns", "Deployment", "web")


def test_owner_arriving_after_its_pod_updates_the_pod_workload() -> None:
    index = ClusterIndex()
    index.apply("ADDED", pod("web-abc-1", "10.0.0.6", owner=("ReplicaSet", "web-abc")), at=0)
    assert index.pod_at("10.0.0.6", 1).workload == Workload("ns", "ReplicaSet", "web-abc")
    index.apply("ADDED", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": "web-abc", "namespace": "ns", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}]}}, at=2)
    assert index.pod_at("10.0.0.6", 3).workload == Workload("ns", "Deployment", "web")


def test_reused_ip_resolves_by_time_and_deleted_pod_stays_for_grace() -> None:
    index = ClusterIndex(grace=60, slack=0)
    old = pod("old", "10.0.0.7", owner=("StatefulSet", "db"))
    index.apply("ADDED", old, at=10)
    index.apply("DELETED", old, at=20)
    index.apply("ADDED", pod("new", "10.0.0.7", owner=("DaemonSet", "agent")), at=30)
    assert index.pod_at("10.0.0.7", 15).name == "old"
    assert index.pod_at("10.0.0.7", 25).name == "old"  # after deletion, within grace, before reuse
    assert index.pod_at("10.0.0.7", 35).name == "new"
    index.prune(now=200)
    assert index.pod_at("10.0.0.7", 15) is None


def test_host_network_pod_never_claims_the_node_ip() -> None:
    index = ClusterIndex()
    index.apply("ADDED", pod("agent-x", "10.0.0.1", owner=("DaemonSet", "agent"), host_network=True), at=0)
    assert index.pod_at("10.0.0.1", 1) is None


def test_cgroup_attributes_a_client_without_its_own_ip() -> None:
    index = ClusterIndex()
    index.apply("ADDED", pod("agent-x", "10.0.0.1", owner=("DaemonSet", "agent"), host_network=True, uid="u-1"), at=0)
    r = Resolver(index, cgroup_pods=lambda cgroup_id, pid: {4242: "u-1"}.get(cgroup_id))
    assert r.client("10.0.0.1", 4242, 1).workload == Workload("ns", "DaemonSet", "agent")
    assert r.client("10.0.0.1", 7, 1).kind is EndpointKind.UNRESOLVED


def test_selectorless_service_resolves_through_endpointslices() -> None:
    index = ClusterIndex()
    index.apply("ADDED", pod("db-0", "10.0.0.8", owner=("StatefulSet", "db")), at=0)
    index.apply("ADDED", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "ns"},
                          "spec": {"clusterIP": "10.96.1.1"}}, at=0)
    index.apply("ADDED", {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                          "metadata": {"name": "db-x", "namespace": "ns", "labels": {"kubernetes.io/service-name": "db"}},
                          "endpoints": [{"addresses": ["10.0.0.8"], "targetRef": {"kind": "Pod", "name": "db-0", "namespace": "ns"}}]}, at=0)
    ep = Resolver(index).server("10.96.1.1", 1, Resolver(index).client("10.0.0.9", 0, 1))
    assert ep.workload == Workload("ns", "StatefulSet", "db")


def test_service_without_backends_is_a_service_endpoint() -> None:
    index = ClusterIndex()
    index.apply("ADDED", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"},
                          "spec": {"clusterIP": "10.96.0.1"}}, at=0)
    ep = Resolver(index).server("10.96.0.1", 1, Resolver(index).client("10.0.0.9", 0, 1))
    assert (ep.kind, ep.service) == (EndpointKind.SERVICE, ServiceRef("default", "kubernetes"))


@pytest.mark.parametrize("text, message", [
    ("kind: List\nitems: 3\n", "'items' of a List must be a list"),
    ("apiVersion: v1\nmetadata: {name: x}\n", "object without 'kind'"),
    ("kind: Pod\nmetadata: {}\n", "Pod without metadata.name"),
    ("kind: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a Kubernetes object or List"),
])
def test_bad_snapshot_files_name_the_file_and_the_reason(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "snap.yaml"
    f.write_text(text)
    with pytest.raises(SnapshotError, match=message) as err:
        read_snapshot(f)
    assert str(f) in str(err.value)


def test_missing_snapshot_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        read_snapshot(tmp_path / "nope.yaml")


def test_typed_list_items_without_kind_take_it_from_the_list(tmp_path: Path) -> None:
    f = tmp_path / "pods.yaml"
    f.write_text("apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a, namespace: n}\n  status: {podIP: 10.1.1.1}\n"
                 "---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {clusterIP: 10.96.9.9}\n")
    index = load_index(f)
    assert index.pod_at("10.1.1.1", 0).name == "a"
    assert index.service_at("10.96.9.9") == ServiceRef("n", "s")


def test_service_backends_follow_pod_changes() -> None:
    index = ClusterIndex()
    index.apply("ADDED", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "ns"},
                          "spec": {"clusterIP": "10.96.2.2", "selector": {"app": "api"}}}, at=0)
    ref = ServiceRef("ns", "api")
    assert index.service_workloads(ref) == []  # asked (and remembered) before any backend exists
    index.apply("ADDED", pod("api-0", "10.0.0.3", owner=("StatefulSet", "api"), labels={"app": "api"}), at=1)
    assert index.service_workloads(ref) == [Workload("ns", "StatefulSet", "api")]
    index.apply("DELETED", pod("api-0", "10.0.0.3", owner=("StatefulSet", "api"), labels={"app": "api"}), at=2)
    assert index.service_workloads(ref) == []
