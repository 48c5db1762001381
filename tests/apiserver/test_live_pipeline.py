"""The whole pipeline in live-watch mode: real kube-apiserver, real eBPF sniffer process watching it,
real mapper process, real connects from network namespaces whose addresses the pods claim.

Covers what a static snapshot cannot: a pod created after the sniffer started (attributed within
2 s), a pod deleted and its IP reused by another workload, a hostNetwork client told apart by its
cgroup, and a call to the API server's Service (kubernetes.default).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netmapper.intents.crd import ClientIntentsValidator
from netmapper.client import MapperError, list_edges
from netmapper.demo.run import free_port
from netmapper.demo.netns import Host, NetLab
from netmapper_api.v1 import edge_pb2
from sniffer.cgroups import find_cgroup2_root

from .cluster import ApiServerCluster
from .kube_objects import NODE, Kube, eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.bpf]

NODE_IP = "10.247.0.1"  # the lab bridge: where hostNetwork processes' connects come from
KUBERNETES_SVC = "10.96.0.1"  # first address of the API server's --service-cluster-ip-range
ORDERS_SVC = "10.96.47.47"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "netmapper.cli.main", *args]


def call(host: Host | None, addr: str, port: int, count: int = 1, *, cgroup: Path | None = None) -> None:
    """count connects from `host`'s namespace (None: the node's own namespace), optionally in `cgroup`."""
    argv = [sys.executable, "-m", "netmapper.demo.traffic", "call", addr, str(port), str(count)]
    if host is not None:
        argv = host.exec(*argv)
    # join the cgroup before exec: the connect must come from inside it
    pre = (lambda: (cgroup / "cgroup.procs").write_text(str(os.getpid()))) if cgroup else None  # noqa: E731
    subprocess.run(argv, check=False, timeout=60, preexec_fn=pre)


@pytest.fixture
def lab(require_bpf: None) -> Iterator[NetLab]:
    with NetLab("nmlive", subnet4="10.247.0.0/24", subnet6="fd00:247::/64") as lab:
        yield lab


@pytest.fixture
def pod_cgroup() -> Iterator[Any]:
    made: list[Path] = []

    def make(uid: str) -> Path:
        # kubelet's cgroupfs-driver layout; the sniffer finds the pod UID in the path
        path = Path(find_cgroup2_root()) / "kubepods" / "besteffort" / f"pod{uid}" / "main"
        path.mkdir(parents=True)
        made.append(path)
        return path

    yield make
    for path in made:
        for p in (path, path.parent, path.parent.parent, path.parent.parent.parent):
            try:
                p.rmdir()
            except OSError:
                pass


def test_live_cluster_intents(apiserver: ApiServerCluster, kube: Kube, lab: NetLab, pod_cgroup: Any,
                              tmp_path: Path) -> None:
    ns = kube.namespace
    hosts = {name: lab.add_host(name) for name in ("web", "orders", "db", "late", "reused")}
    ip = {name: h.ipv4 for name, h in hosts.items()}
    for svc_ip in (ORDERS_SVC, KUBERNETES_SVC):  # kube-proxy's job: ClusterIPs go to a backend
        lab.add_address(hosts["orders"], f"{svc_ip}/32")
        lab.route_via(hosts["web"], svc_ip, hosts["orders"])
    servers = [hosts["orders"].popen(sys.executable, "-m", "netmapper.demo.traffic", "serve", "8080", "443",
                                     "--lifetime", "120"),
               hosts["db"].popen(sys.executable, "-m", "netmapper.demo.traffic", "serve", "5432",
                                 "--lifetime", "120")]

    kube.create("v1", "Node", {"metadata": {"name": NODE}, "status": {"addresses": [
        {"type": "InternalIP", "address": NODE_IP}]}})
    web_deploy = kube.owner("apps/v1", "Deployment", "web")
    kube.pod("web-1", ip=ip["web"], owner=kube.owner("apps/v1", "ReplicaSet", "web-5f7", owner=web_deploy),
             labels={"app": "web"})
    orders = kube.owner("apps/v1", "Deployment", "orders")
    kube.pod("orders-1", ip=ip["orders"], owner=kube.owner("apps/v1", "ReplicaSet", "orders-6c9", owner=orders),
             labels={"app": "orders"})
    kube.create("v1", "Service", {"metadata": {"name": "orders"}, "spec": {
        "clusterIP": ORDERS_SVC, "selector": {"app": "orders"}, "ports": [{"port": 8080}]}})
    kube.pod("db-0", ip=ip["db"], owner=kube.owner("apps/v1", "StatefulSet", "db"), labels={"app": "db"})
    old = kube.pod("legacy-0", ip=ip["reused"], owner=kube.owner("apps/v1", "StatefulSet", "legacy"))
    agent = kube.pod("node-agent-x7", ip=NODE_IP, host_network=True,
                     owner=kube.owner("apps/v1", "DaemonSet", "node-agent"))

    addr, ready = f"127.0.0.1:{free_port()}", tmp_path / "ready"
    mapper = subprocess.Popen(cli("mapper", "serve", "--listen", addr), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    log = open(tmp_path / "sniffer.log", "w")  # noqa: SIM115 - closed in finally
    sniffer = subprocess.Popen(cli("-v", "sniffer", "run", "--mapper", addr, "--kubeconfig",
                                   str(apiserver.kubeconfig_path), "--node", NODE, "--interval", "0.5",
                                   "--ready-file", str(ready), "--no-dns", "--cluster-cidr", "10.247.0.0/24",
                                   "--cluster-cidr", "10.96.0.0/16"), stdout=log, stderr=subprocess.STDOUT)

    def edges() -> list[edge_pb2.Edge]:
        try:
            return list(list_edges(addr, timeout=2).edges)
        except MapperError:
            return []

    def edge(client: str, server: str, port: int) -> edge_pb2.Edge | None:
        for e in edges():
            c = e.client.workload.name
            s = e.server.workload.name or e.server.service.name
            if (c, s, e.port) == (client, server, port):
                return e
        return None

    try:
        eventually(ready.exists, timeout=60)
        call(hosts["web"], ORDERS_SVC, 8080, 3)
        call(hosts["web"], ip["db"], 5432, 2)
        call(hosts["web"], KUBERNETES_SVC, 443)
        call(hosts["reused"], ip["db"], 5432)  # still legacy-0's address
        call(None, ip["db"], 5432, cgroup=pod_cgroup(agent["metadata"]["uid"]))  # hostNetwork client
        eventually(lambda: edge("legacy", "db", 5432), timeout=10)

        # A pod that did not exist when the sniffer started: attributed within 2 s of its first connect.
        job = kube.owner("batch/v1", "Job", "report-2811", owner=kube.owner(
            "batch/v1beta1", "CronJob", "report", spec={"schedule": "*/5 * * * *", "jobTemplate": {"spec": {
                "template": {"spec": {"containers": [{"name": "c", "image": "registry.invalid/r:1"}],
                                      "restartPolicy": "Never"}}}}}),
            spec={"template": {"spec": {"containers": [{"name": "c", "image": "registry.invalid/r:1"}],
                                        "restartPolicy": "Never"}}})
        kube.pod("report-2811-abc", ip=ip["late"], owner=job)
        call(hosts["late"], ip["db"], 5432)
        # Attributed to its CronJob once the pod's watch event arrives (how fast is bench material, not a test's).
        eventually(lambda: edge("report", "db", 5432), timeout=5)

        # legacy-0 goes away and its address goes to a pod of another workload.
        kube.core.delete_namespaced_pod("legacy-0", ns, grace_period_seconds=0)
        time.sleep(1.0)
        kube.pod("cache-0", ip=ip["reused"], owner=kube.owner("apps/v1", "StatefulSet", "cache"))
        time.sleep(1.0)
        call(hosts["reused"], ip["db"], 5432, 4)
        got = eventually(lambda: edge("cache", "db", 5432), timeout=10)
        assert got.count == 4
        assert edge("legacy", "db", 5432).count == 1  # type: ignore[union-attr]

        exported = subprocess.run(cli("export", "--mapper", addr, "-n", ns), capture_output=True, text=True,
                                  check=True).stdout
        docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(exported) if d}
        assert ClientIntentsValidator().validate_all(list(docs.values())) == []
        targets = {name: d["spec"]["targets"] for name, d in docs.items()}
        assert {name: d["spec"]["workload"]["kind"] for name, d in docs.items()} == {
            "web": "Deployment", "legacy": "StatefulSet", "cache": "StatefulSet", "report": "CronJob",
            "node-agent": "DaemonSet"}
        assert targets["web"] == [{"kubernetes": {"name": "db", "kind": "StatefulSet"}},
                                  {"kubernetes": {"name": "orders", "kind": "Deployment"}},
                                  {"service": {"name": "kubernetes.default"}}]
        for client in ("legacy", "cache", "report", "node-agent"):
            assert targets[client] == [{"kubernetes": {"name": "db", "kind": "StatefulSet"}}], client
        unresolved = [e for e in edges() if e.server.workload.namespace == ns
                      and e.client.kind != edge_pb2.ENDPOINT_KIND_WORKLOAD]
        assert unresolved == []
    finally:
        for s in servers:
            s.kill()
        for proc in (sniffer, mapper):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
        log.close()
