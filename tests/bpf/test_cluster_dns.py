"""Cluster DNS as the common installations present it, with real DNS packets in real namespaces.

A client pod queries five DNS servers, each a real dnslib server in its own namespace (or the
client's own), and the real DNS probe captures the replies; the sniffer's DnsWatcher decides with the
index which to trust:

  helm       CoreDNS from its Helm chart: Service kube-system/coredns, k8s-app=coredns   -> trusted
  openshift  openshift-dns/dns-default and its pod                                         -> trusted
  nodelocal  NodeLocal DNSCache: a hostNetwork node-local-dns pod answering on 169.254.20.10 -> trusted
  impostor   a Service labelled k8s-app=kube-dns in an application namespace              -> not trusted
  self       the client answering its own queries (a resolver on its own address)        -> not trusted
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from netmapper.demo.netns import Host, NetLab
from sniffer.cluster import ClusterIndex
from sniffer.cluster_dns import NODE_LOCAL_DNS_DEFAULT_IP
from sniffer.dns_names import DnsNameTable
from sniffer.dns_probe import DnsProbe
from sniffer.dns_watch import DnsWatcher
from sniffer.resolver import Resolver

from .conftest import TIMEOUT

pytestmark = pytest.mark.bpf

# server label -> (name it answers, address it gives)
ANSWERS = {
    "helm": ("helm.example.com", "192.0.2.11"),
    "openshift": ("openshift.example.com", "192.0.2.12"),
    "nodelocal": ("nodelocal.example.com", "192.0.2.13"),
    "impostor": ("impostor.example.com", "192.0.2.14"),
    "self": ("self.example.com", "192.0.2.15"),
}
TRUSTED = {"helm", "openshift", "nodelocal"}

SERVER = textwrap.dedent("""
    import sys, time
    from dnslib import QTYPE, RR, A
    from dnslib.server import BaseResolver, DNSLogger, DNSServer
    name, addr = sys.argv[2], sys.argv[3]
    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            reply.add_answer(RR(name, QTYPE.A, rdata=A(addr), ttl=300))
            return reply
    DNSServer(Resolver(), address=sys.argv[1], port=53,
              logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data")).start_thread()
    print("ready", flush=True)
    time.sleep(120)
""")

CLIENT = textwrap.dedent("""
    import json, sys
    from dnslib import DNSRecord
    out = []
    for server, name in json.loads(sys.argv[1]):
        r = DNSRecord.parse(DNSRecord.question(name, "A").send(server, 53, timeout=5))
        out.append(sorted(str(rr.rdata) for rr in r.rr))
    print(json.dumps(out))
""")


@dataclass(frozen=True)
class Cluster:
    client: Host
    servers: dict[str, str]  # label -> address the client queries
    index: ClusterIndex


def pod(name: str, namespace: str, ip: str, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "labels": labels},
            "spec": {"nodeName": "n1", **spec}, "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def service(name: str, namespace: str, cluster_ip: str, selector: dict[str, str],
            labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"clusterIP": cluster_ip, "selector": selector, "ports": [{"port": 53, "protocol": "UDP"}]}}


@pytest.fixture(scope="module")
def cluster(bpf_ready: None) -> Iterator[Cluster]:
    n = os.getpid() % 250
    with NetLab(prefix=f"nmk{os.getpid() % 100000}", subnet4=f"10.253.{n}.0/24", subnet6=f"fd00:253:{n:x}::/64") as lab:
        client = lab.add_host("c")
        helm, openshift, impostor = lab.add_host("h"), lab.add_host("o"), lab.add_host("i")
        # NodeLocal DNSCache answers on a link-local address the node holds; here a namespace of its own.
        nodelocal = lab.add_host("n", ipv4=NODE_LOCAL_DNS_DEFAULT_IP)
        node_ip = f"10.253.{n}.200"  # the node-local-dns pod's own IP is the node's (hostNetwork)
        servers = {"helm": helm.ipv4, "openshift": openshift.ipv4, "nodelocal": NODE_LOCAL_DNS_DEFAULT_IP,
                   "impostor": impostor.ipv4, "self": client.ipv4}
        hosts = {"helm": helm, "openshift": openshift, "nodelocal": nodelocal, "impostor": impostor, "self": client}
        index = ClusterIndex()
        index.load([
            pod("web-0", "shop", client.ipv4, {"app": "web"}),
            pod("coredns-5d78c9869d-abcde", "kube-system", helm.ipv4, {"k8s-app": "coredns"}),
            service("coredns", "kube-system", f"10.96.{n}.10", {"k8s-app": "coredns"},
                    {"k8s-app": "coredns", "app.kubernetes.io/name": "coredns"}),
            pod("dns-default-x7k2p", "openshift-dns", openshift.ipv4, {"dns.operator.openshift.io/daemonset-dns": "default"}),
            service("dns-default", "openshift-dns", f"172.30.{n}.10", {"dns.operator.openshift.io/daemonset-dns": "default"},
                    {"dns.operator.openshift.io/owning-dns": "default"}),
            pod("node-local-dns-q8wz4", "kube-system", node_ip, {"k8s-app": "node-local-dns"}, hostNetwork=True,
                containers=[{"name": "node-cache", "image": "registry.k8s.io/dns/k8s-dns-node-cache:1.23.1",
                             "args": ["-localip", f"{NODE_LOCAL_DNS_DEFAULT_IP},10.96.{n}.10", "-conf",
                                      "/etc/Corefile", "-upstreamsvc", "kube-dns-upstream"]}]),
            pod("fake-dns-0", "shop", impostor.ipv4, {"k8s-app": "kube-dns"}),
            service("kube-dns", "shop", f"10.96.{n}.11", {"k8s-app": "kube-dns"}, {"k8s-app": "kube-dns"}),
        ], at=0.0)
        procs = []
        try:
            for label, host in hosts.items():
                name, addr = ANSWERS[label]
                proc = host.popen(sys.executable, "-c", SERVER, servers[label], name, addr, stdout=subprocess.PIPE)
                procs.append(proc)
                assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
            yield Cluster(client=client, servers=servers, index=index)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait(TIMEOUT)


def test_recognised_installations_name_calls_and_others_do_not(cluster: Cluster) -> None:
    names = DnsNameTable()
    resolver = Resolver(cluster.index, cluster_cidrs=["10.0.0.0/8", "172.16.0.0/12", "169.254.0.0/16"])
    with DnsProbe() as probe:
        watcher = DnsWatcher(source=probe, client_of=resolver.client, names=names,
                             trusted_servers=cluster.index.dns_server_ips)
        queries = [[cluster.servers[label], ANSWERS[label][0]] for label in ANSWERS]
        out = subprocess.run(cluster.client.exec(sys.executable, "-c", CLIENT, json.dumps(queries)),
                             capture_output=True, text=True, check=True, timeout=TIMEOUT).stdout
        # Every server answered the client for real.
        assert json.loads(out) == [[ANSWERS[label][1]] for label in ANSWERS]
        for _ in range(50):  # bounded: the replies are in the ring buffer already
            watcher.poll_once(timeout_ms=100)
            if watcher.stats.recorded >= len(TRUSTED) and watcher.stats.untrusted >= len(ANSWERS) - len(TRUSTED):
                break

    client = resolver.client(cluster.client.ipv4, 0, time.time())
    assert client.workload is not None and client.pod == "web-0"
    named = {label for label, (name, addr) in ANSWERS.items() if names.names(client, addr, time.time()) == (name,)}
    assert named == TRUSTED
    trusted = cluster.index.dns_server_ips()
    assert NODE_LOCAL_DNS_DEFAULT_IP in trusted and cluster.servers["impostor"] not in trusted
    assert f"10.253.{os.getpid() % 250}.200" not in trusted  # never the node's own address
