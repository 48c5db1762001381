"""KubeFeed against a real kube-apiserver: what is created through the API reaches the ClusterIndex.

No kubelet or controllers run, so the tests create the whole owner chain themselves (Deployment ->
ReplicaSet -> Pod with ownerReferences) and set pod addresses through the status subresource.
Every test works in its own namespace.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sniffer.cluster import ClusterIndex, PodInfo
from sniffer.feed import IdentityFeed
from netmapper_api.endpoints import ServiceRef, Workload
from sniffer.backoff import Backoff
from sniffer.kube_feed import KubeFeed
from sniffer.kube_http import KubeSettings
from sniffer.kube_records import EndpointSliceRecord, OwnerRecord, PodRecord
from sniffer.kube_shape import slim_pod
from sniffer.watch_lines import iter_watch_lines

from .cluster import NOBODY_TOKEN, ApiServerCluster
from .kube_objects import NODE, Kube, eventually, ref, template_spec

pytestmark = pytest.mark.apiserver

OTHER_NODE = "node-b"


def pod_named(index: ClusterIndex, ip: str, name: str) -> PodInfo | None:
    """The pod holding `ip` now, if it is the one called `name`."""
    p = index.pod_at(ip, time.time())
    return p if p is not None and p.name == name else None


@pytest.fixture
def start_feed(apiserver: ApiServerCluster) -> Iterator[Callable[..., tuple[KubeFeed, ClusterIndex]]]:
    """Start a KubeFeed on a fresh index (from the kubeconfig, as `--kubeconfig` would); stop it after."""
    feeds: list[KubeFeed] = []

    def start(**kw: Any) -> tuple[KubeFeed, ClusterIndex]:
        kw.setdefault("node_name", NODE)
        feed = KubeFeed.from_kubeconfig(apiserver.kubeconfig_path, **kw)
        index = ClusterIndex()
        feeds.append(feed)
        feed.start(index)
        assert feed.wait_synced(15), f"feed did not sync: {feed.stats()}"
        return feed, index

    yield start
    for f in feeds:
        f.stop()


# ---- initial sync --------------------------------------------------------------------------------

def test_sync_resolves_every_owner_chain(kube: Kube, start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    ns = kube.namespace
    dep = kube.owner("apps/v1", "Deployment", "web")
    rs = kube.owner("apps/v1", "ReplicaSet", "web-5d8f", owner=dep)
    web_ip = kube.next_ip()
    kube.pod("web-5d8f-abcde", ip=web_ip, owner=rs, labels={"app": "web"})

    sts = kube.owner("apps/v1", "StatefulSet", "db", spec={**template_spec("db"), "serviceName": "db"})
    db_ip = kube.next_ip()
    kube.pod("db-0", ip=db_ip, owner=sts, labels={"app": "db"}, node=OTHER_NODE)

    ds = kube.owner("apps/v1", "DaemonSet", "agent")
    agent_ip = kube.next_ip()
    kube.pod("agent-x1", ip=agent_ip, owner=ds)

    cron = kube.create("batch/v1beta1", "CronJob", {"metadata": {"name": "nightly"}, "spec": {
        "schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "main", "image": "registry.invalid/app:1"}]}}}}}})
    job = kube.create("batch/v1", "Job", {"metadata": {"name": "nightly-1700", "ownerReferences": [ref(cron)]},
                                          "spec": {"template": {"spec": {
                                              "restartPolicy": "Never",
                                              "containers": [{"name": "main", "image": "registry.invalid/app:1"}]}}}})
    job_ip = kube.next_ip()
    kube.pod("nightly-1700-q2x", ip=job_ip, owner=job, node=OTHER_NODE)

    svc = kube.create("v1", "Service", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    kube.create("discovery.k8s.io/v1beta1", "EndpointSlice", {
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [web_ip], "conditions": {"ready": True},
                       "targetRef": {"kind": "Pod", "namespace": ns, "name": "web-5d8f-abcde"}}]})
    node_name = f"{ns}-node"
    kube.create("v1", "Node", {"metadata": {"name": node_name}})
    kube.core.patch_node_status(node_name, {"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.77"}]}})

    feed, index = start_feed()
    now = time.time()

    def workload(ip: str) -> Workload | None:
        pod = index.pod_at(ip, now)
        return pod.workload if pod else None

    assert workload(web_ip) == Workload(ns, "Deployment", "web")
    assert workload(db_ip) == Workload(ns, "StatefulSet", "db")
    assert workload(agent_ip) == Workload(ns, "DaemonSet", "agent")
    assert workload(job_ip) == Workload(ns, "CronJob", "nightly")
    assert index.service_at(svc["spec"]["clusterIP"]) == ServiceRef(ns, "web")
    assert index.service_workloads(ServiceRef(ns, "web")) == [Workload(ns, "Deployment", "web")]
    assert index.node_of("192.0.2.77") == node_name
    # The API server's own Service: `kubernetes.default` resolves like any other Service.
    assert index.service_at("10.96.0.1") == ServiceRef("default", "kubernetes")

    # kubectl shape: kind/apiVersion set on listed items, in the version the server serves.
    eps = index.object("EndpointSlice", ns, "web-abc")
    assert isinstance(eps, EndpointSliceRecord) and eps.api_version == "discovery.k8s.io/v1beta1"
    assert eps.service_name == "web" and eps.pods == ((ns, "web-5d8f-abcde"),)
    stats = feed.stats()
    assert stats["endpointslices"].served == "discovery.k8s.io/v1beta1"
    assert stats["cronjobs"].served == "batch/v1beta1"
    # Owners are metadata-only: ownerReferences present, pod template gone.
    stored_rs = index.object("ReplicaSet", ns, "web-5d8f")
    assert isinstance(stored_rs, OwnerRecord) and stored_rs.api_version == "apps/v1"
    assert stored_rs.owner == ("apps/v1", "Deployment", "web")


def test_local_and_remote_pods_kept_as_records(kube: Kube,
                                               start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    ns = kube.namespace
    kube.pod("local", ip=kube.next_ip(), node=NODE,
             annotations={"intents.otterize.com/workload-name": "renamed", "big": "x" * 1000})
    kube.pod("remote", ip=kube.next_ip(), node=OTHER_NODE,
             annotations={"intents.otterize.com/workload-name": "renamed-too", "big": "x" * 1000})
    _, index = start_feed()
    local, remote = index.object("Pod", ns, "local"), index.object("Pod", ns, "remote")
    assert isinstance(local, PodRecord) and isinstance(remote, PodRecord)
    assert local.node == NODE and local.workload_name == "renamed"
    assert remote.node == OTHER_NODE and remote.workload_name == "renamed-too"
    assert remote.ips
    # The annotation override survives slimming.
    pod = index.pod_at(remote.ips[0], time.time())
    assert pod is not None and pod.workload == Workload(ns, "Pod", "renamed-too")


def test_remote_host_network_pod_does_not_claim_the_node_ip(
        kube: Kube, start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    node_ip = "192.0.2.10"  # Kube.set_pod_ip reports this as hostIP
    kube.pod("hostnet", ip=node_ip, node=OTHER_NODE, host_network=True)
    _, index = start_feed()
    stored = index.object("Pod", kube.namespace, "hostnet")
    assert isinstance(stored, PodRecord) and stored.host_network is True  # kept through slimming
    now = time.time()
    assert index.pod_at(node_ip, now) is None


def test_without_node_name_every_pod_comes_from_one_stream(
        kube: Kube, start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    kube.pod("remote", ip=kube.next_ip(), node=OTHER_NODE)
    feed, index = start_feed(node_name=None)
    remote = index.object("Pod", kube.namespace, "remote")
    assert isinstance(remote, PodRecord) and remote.node == OTHER_NODE
    assert "pods" in feed.stats()


# ---- live changes --------------------------------------------------------------------------------

def test_pod_created_after_start_arrives_through_the_watch(kube: Kube,
                                                    start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    ns = kube.namespace
    feed, index = start_feed()
    dep = kube.owner("apps/v1", "Deployment", "late")
    rs = kube.owner("apps/v1", "ReplicaSet", "late-77", owner=dep)
    ip = kube.next_ip()
    lists_before = {name: s.lists for name, s in feed.stats().items()}
    kube.pod("late-77-zzz", ip=ip, owner=rs, node=OTHER_NODE)
    pod = eventually(lambda: index.pod_at(ip, time.time()))
    # Delivered by a watch event, not by a relist (how fast is bench's business, not this test's).
    assert {name: s.lists for name, s in feed.stats().items()} == lists_before
    assert pod.workload == Workload(ns, "Deployment", "late")


def test_deleted_pod_ip_reused_by_another_workload(kube: Kube,
                                                   start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    ns = kube.namespace
    _, index = start_feed()
    old_owner = kube.owner("apps/v1", "StatefulSet", "old", spec={**template_spec("old"), "serviceName": "old"})
    new_owner = kube.owner("apps/v1", "DaemonSet", "new")
    ip = kube.next_ip()
    kube.pod("old-0", ip=ip, owner=old_owner)
    eventually(lambda: index.pod_at(ip, time.time()))
    while_old = time.time()
    time.sleep(0.05)

    kube.core.delete_namespaced_pod("old-0", ns, grace_period_seconds=0)
    eventually(lambda: index.object("Pod", ns, "old-0") is None or None)
    time.sleep(0.05)
    kube.pod("new-x", ip=ip, owner=new_owner)
    # The IP arrives with the status update, after the pod itself.
    new = eventually(lambda: pod_named(index, ip, "new-x"))
    assert new.workload == Workload(ns, "DaemonSet", "new")
    old = index.pod_at(ip, while_old)
    assert old is not None and old.workload == Workload(ns, "StatefulSet", "old")

    # Recreate under the same name: the index follows the new object, not the old uid.
    kube.core.delete_namespaced_pod("new-x", ns, grace_period_seconds=0)
    eventually(lambda: index.object("Pod", ns, "new-x") is None or None)
    second = kube.pod("new-x", ip=ip, owner=new_owner)
    stored = eventually(lambda: index.object("Pod", ns, "new-x"))
    assert isinstance(stored, PodRecord) and stored.uid == second["metadata"]["uid"]


def test_pod_bound_to_this_node_moves_to_the_full_stream(
        kube: Kube, start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    ns = kube.namespace
    _, index = start_feed()
    kube.pod("pending", ip=None, node=None)
    unscheduled = eventually(lambda: index.object("Pod", ns, "pending"))
    assert isinstance(unscheduled, PodRecord) and unscheduled.node == ""  # not our node (yet)
    # What the scheduler does: the pod leaves the other-nodes watch (DELETED there) and enters ours.
    kube.create("v1", "Binding", {"metadata": {"name": "pending"}, "target": {"kind": "Node", "name": NODE}})

    def bound_pod() -> PodRecord | None:
        o = index.object("Pod", ns, "pending")
        return o if isinstance(o, PodRecord) and o.node == NODE else None

    eventually(bound_pod)
    ip = kube.next_ip()
    kube.set_pod_ip("pending", ip)
    eventually(lambda: index.pod_at(ip, time.time()))
    time.sleep(0.3)  # a late DELETED from the other stream would have landed by now
    assert index.object("Pod", ns, "pending") is not None


def test_owner_arriving_after_its_pod_updates_the_workload(
        kube: Kube, start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    ns = kube.namespace
    _, index = start_feed()
    dep = kube.owner("apps/v1", "Deployment", "api")
    # Watch order across kinds is not guaranteed: here the pod is seen before its ReplicaSet.
    ip = kube.next_ip()
    kube.pod("api-1-p", ip=ip, owner={"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                      "metadata": {"name": "api-1", "uid": str(uuid.uuid4())}})
    pod = eventually(lambda: index.pod_at(ip, time.time()))
    assert pod.workload == Workload(ns, "ReplicaSet", "api-1")
    kube.owner("apps/v1", "ReplicaSet", "api-1", owner=dep)
    def via_deployment() -> PodInfo | None:
        p = index.pod_at(ip, time.time())
        return p if p is not None and p.workload.kind == "Deployment" else None

    assert eventually(via_deployment).workload == Workload(ns, "Deployment", "api")


# ---- failures and recovery ----------------------------------------------------------------------

def test_410_gone_relists_and_drops_what_was_deleted_meanwhile(
        apiserver: ApiServerCluster, kube: Kube, start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    ns = kube.namespace
    feed, index = start_feed(backoff_initial=0.1, backoff_max=0.5)
    gone_ip, kept_ip = kube.next_ip(), kube.next_ip()
    kube.pod("vanishes", ip=gone_ip, node=NODE)
    kube.pod("stays", ip=kept_ip, node=OTHER_NODE)
    eventually(lambda: index.pod_at(gone_ip, time.time()) and index.pod_at(kept_ip, time.time()))
    before = feed.stats()

    # While the API server is down, the pod disappears from storage: no watch can report it. The
    # restarted server's watch cache begins at etcd's current revision, so resuming from ours is a
    # 410, and only the relist can notice the deletion.
    apiserver.stop_apiserver()
    assert apiserver.etcd_delete(f"/registry/pods/{ns}/vanishes") == 1
    apiserver.start_apiserver()

    eventually(lambda: index.object("Pod", ns, "vanishes") is None or None, timeout=15)
    after = feed.stats()
    assert after["pods-local"].relists_gone > before["pods-local"].relists_gone
    assert after["pods-local"].lists >= 2
    assert index.object("Pod", ns, "stays") is not None
    # The deleted pod's IP stays resolvable for late observations made before the deletion...
    before_deletion = time.time() - 1
    assert index.pod_at(gone_ip, before_deletion) is not None
    # ...and the feed is live again afterwards.
    late_ip = kube.next_ip()
    kube.pod("after-restart", ip=late_ip, node=NODE)
    eventually(lambda: index.pod_at(late_ip, time.time()), timeout=5)


def test_forbidden_user_syncs_empty_and_lookup_stops(
        apiserver: ApiServerCluster, kube: Kube) -> None:
    kube.pod("secret", ip=kube.next_ip())
    feed = KubeFeed(settings=apiserver.configuration(token=NOBODY_TOKEN), node_name=NODE,
                    backoff_initial=0.1, backoff_max=0.2)
    index = ClusterIndex()
    feed.start(index)
    try:
        # No RBAC at all: the feed reports the problem but neither hangs nor crashes.
        assert feed.wait_synced(10)
        assert index.counts() == {}
        stats = feed.stats()
        assert all(s.errors >= 1 and "403" in s.last_error for s in stats.values()), stats
        assert feed.lookup_owner("v1", "Pod", kube.namespace, "secret") is None
    finally:
        feed.stop()


# ---- owner kinds nobody watches (one GET each) -----------------------------------------------

def test_unknown_owner_kind_resolved_by_lookup(
        kube: Kube, start_feed: Callable[..., tuple[KubeFeed, ClusterIndex]]) -> None:
    ns = kube.namespace
    sts = kube.owner("apps/v1", "StatefulSet", "cache", spec={**template_spec("cache"), "serviceName": "cache"})
    # ControllerRevision is a built-in kind the feed does not watch: it stands in for a custom
    # controller's kind (custom resources crash this test server build).
    rev = kube.create("apps/v1", "ControllerRevision", {
        "metadata": {"name": "cache-rev1", "ownerReferences": [ref(sts)]}, "revision": 1, "data": {}})
    via_rev, dangling = kube.next_ip(), kube.next_ip()
    kube.pod("cache-0", ip=via_rev, owner=rev)
    kube.pod("orphan", ip=dangling, owner={"apiVersion": "apps/v1", "kind": "ControllerRevision",
                                           "metadata": {"name": "missing", "uid": str(uuid.uuid4())}})
    feed, index = start_feed()

    got = index.pod_at(via_rev, time.time())
    assert got is not None and got.workload == Workload(ns, "StatefulSet", "cache")
    # NotFound stops the walk; the reference itself still names the workload.
    got = index.pod_at(dangling, time.time())
    assert got is not None and got.workload == Workload(ns, "ControllerRevision", "missing")

    found = feed.lookup_owner("apps/v1", "ControllerRevision", ns, "cache-rev1")
    assert found is not None and found["metadata"]["ownerReferences"][0]["name"] == "cache"
    assert feed.lookup_owner("apps/v1", "ControllerRevision", ns, "missing") is None
    assert feed.lookup_owner("example.com/v1", "Widget", ns, "w") is None  # kind not served


# ---- pure helpers --------------------------------------------------------------------------------

def test_slim_pod_keeps_identity_only() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"a": "b"},
                        "annotations": {"intents.otterize.com/workload-name": "w", "other": "x"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "r"}]},
           "spec": {"nodeName": "n1", "hostNetwork": True, "containers": [{"name": "c"}]},
           "status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}], "conditions": [{}], "phase": "Running"}}
    slim = slim_pod(pod)
    assert slim["metadata"]["annotations"] == {"intents.otterize.com/workload-name": "w"}
    assert slim["metadata"]["ownerReferences"] == [{"kind": "ReplicaSet", "name": "r"}]
    assert slim["spec"] == {"nodeName": "n1", "hostNetwork": True}
    assert slim["status"] == {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(rng=random.Random(1), initial=0.5, maximum=4.0)
    delays = [b.next_delay() for _ in range(6)]
    # Jitter keeps each delay within [base/2, base] of 0.5, 1, 2, 4, 4, 4.
    for got, base in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]):
        assert base / 2 <= got <= base
    b.reset()
    assert b.next_delay() <= 0.5


@dataclass
class _ChunkedResponse:
    chunks: list[bytes]

    def stream(self, amt: int | None = None, decode_content: bool = True) -> Iterator[bytes]:
        yield from self.chunks


def test_watch_lines_are_reassembled_across_chunks() -> None:
    events = [b'{"type":"ADDED","object":{}}', b'{"type":"BOOKMARK","object":{}}', b'{"type":"DELETED"}']
    wire = b"\n".join(events) + b"\n"
    chunks = [wire[i:i + 7] for i in range(0, len(wire), 7)]  # splits lines mid-JSON
    assert list(iter_watch_lines(_ChunkedResponse(chunks))) == events  # type: ignore[arg-type]


def test_kube_feed_is_an_identity_feed() -> None:
    # Checked by mypy: the resolver takes either feed through the one Protocol.
    feed: IdentityFeed = KubeFeed(settings=KubeSettings(server="https://127.0.0.1:1"), node_name=NODE)
    assert not feed.wait_synced(0)  # not started: never "synced"
