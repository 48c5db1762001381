"""Dual-stack clients: an AF_INET6 socket (IPV6_V6ONLY off, as Java and others leave it) connecting to
IPv4 addresses, in real network namespaces, captured by the real probe and resolved as the sniffer does.

The kernel reports such a connect as family AF_INET6 with IPv4-mapped addresses (::ffff:a.b.c.d) on
both ends; the resolver must name both sides as the IPv4 pods/Services they are, and the edge must be
the same one an AF_INET socket makes. One target is a pod IP, one a Service ClusterIP that only exists
as a DNAT rule in the client's namespace (as kube-proxy makes it).
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from netmapper_api.endpoints import EndpointKind, ServiceRef, Workload
from sniffer.cluster import ClusterIndex
from sniffer.connect_probe import ConnectProbe
from sniffer.edges import EdgeAccumulator
from sniffer.resolver import Resolver

from .conftest import SERVER_PORT, TIMEOUT, Lab, RunClient, own_netns

pytestmark = pytest.mark.bpf

SERVICE_PORT = 80


def owned_pod(name: str, ip: str, deployment: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """A Deployment -> ReplicaSet -> Pod chain, as a snapshot would hold it."""
    rs = f"{deployment}-6b7c8d"
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": deployment, "namespace": "shop",
                                                                     "uid": f"uid-d-{deployment}"}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
            "name": rs, "namespace": "shop", "uid": f"uid-rs-{deployment}",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment, "controller": True}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": "shop", "uid": f"uid-{name}", "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "controller": True}]},
         "spec": {"nodeName": "n1"}, "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}},
    ]


@pytest.fixture(scope="module")
def cluster_ip(lab: Lab) -> Iterator[str]:
    """A ClusterIP that exists only as a DNAT rule in the client namespace, to the server pod."""
    ip = f"10.252.{os.getpid() % 250}.10"
    rule = ["-t", "nat", "-p", "tcp", "-d", f"{ip}/32", "--dport", str(SERVICE_PORT), "-j", "DNAT",
            "--to-destination", f"{lab.server.ipv4}:{SERVER_PORT}"]
    subprocess.run(lab.client.exec("iptables", "-A", "OUTPUT", *rule), check=True, timeout=TIMEOUT)
    try:
        yield ip
    finally:
        subprocess.run(lab.client.exec("iptables", "-D", "OUTPUT", *rule), check=False, timeout=TIMEOUT)


@pytest.fixture
def resolver(lab: Lab, cluster_ip: str) -> Resolver:
    index = ClusterIndex()
    objs = [
        *owned_pod("client-1", lab.client.ipv4, "client", {"app": "client"}),
        *owned_pod("server-1", lab.server.ipv4, "server", {"app": "server"}),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server", "namespace": "shop", "uid": "uid-svc"},
         "spec": {"selector": {"app": "server"}, "clusterIP": cluster_ip,
                  "ports": [{"port": SERVICE_PORT, "targetPort": SERVER_PORT, "protocol": "TCP"}]}},
    ]
    index.load(objs, at=0.0)
    return Resolver(index, cluster_cidrs=["10.0.0.0/8", "fd00::/8"])


CLIENT = Workload(namespace="shop", kind="Deployment", name="client")
SERVER = Workload(namespace="shop", kind="Deployment", name="server")


def test_dual_stack_socket_to_a_pod_ip(probe: ConnectProbe, lab: Lab, run_client: RunClient, resolver: Resolver) -> None:
    probe.drain()
    run = run_client(f"[::ffff:{lab.server.ipv4}]:{SERVER_PORT}")
    obs, _ = probe.drain()

    assert run.results == ["OK"]
    (o,) = own_netns(obs, run.netns)
    # What the kernel reports: both ends IPv4-mapped.
    assert (o.saddr, o.daddr) == (IPv6Address(f"::ffff:{lab.client.ipv4}"), IPv6Address(f"::ffff:{lab.server.ipv4}"))
    rc = resolver.resolve(o)
    assert (rc.client.kind, rc.client.workload, rc.client.ip) == (EndpointKind.WORKLOAD, CLIENT, lab.client.ipv4)
    assert (rc.server.kind, rc.server.workload, rc.server.ip) == (EndpointKind.WORKLOAD, SERVER, lab.server.ipv4)
    assert rc.port == SERVER_PORT


def test_dual_stack_socket_to_a_cluster_ip_behind_dnat(probe: ConnectProbe, lab: Lab, run_client: RunClient,
                                                       resolver: Resolver, cluster_ip: str) -> None:
    probe.drain()
    run = run_client(f"[::ffff:{cluster_ip}]:{SERVICE_PORT}")
    obs, _ = probe.drain()

    assert run.results == ["OK"]  # the DNAT rule took it to the server pod
    (o,) = own_netns(obs, run.netns)
    assert o.daddr == IPv6Address(f"::ffff:{cluster_ip}")  # the socket's peer: the ClusterIP, before NAT
    rc = resolver.resolve(o)
    assert (rc.client.kind, rc.client.workload) == (EndpointKind.WORKLOAD, CLIENT)
    assert (rc.server.kind, rc.server.workload, rc.server.service) == (
        EndpointKind.WORKLOAD, SERVER, ServiceRef(namespace="shop", name="server"))
    assert rc.server.ip == cluster_ip and rc.port == SERVICE_PORT


def test_dual_stack_and_ipv4_sockets_make_one_edge(probe: ConnectProbe, lab: Lab, run_client: RunClient,
                                                  resolver: Resolver, cluster_ip: str) -> None:
    probe.drain()
    v6 = run_client(f"[::ffff:{cluster_ip}]:{SERVICE_PORT}", f"[::ffff:{lab.server.ipv4}]:{SERVER_PORT}")
    v4 = run_client(f"{cluster_ip}:{SERVICE_PORT}", f"{lab.server.ipv4}:{SERVER_PORT}")
    obs, _ = probe.drain()

    assert v6.results == v4.results == ["OK", "OK"]
    mine = own_netns(obs, v6.netns)
    assert {type(o.daddr) for o in mine} == {IPv4Address, IPv6Address}  # both socket kinds were seen
    acc = EdgeAccumulator()
    acc.add(resolver.resolve(o) for o in mine)
    edges = acc.take()
    # Per target one edge holding both sockets' connects; every address in it IPv4.
    assert sorted((e.port, e.count) for e in edges) == [(SERVICE_PORT, 2), (SERVER_PORT, 2)]
    for e in edges:
        assert "::ffff:" not in str(e)
        assert e.client.ip == lab.client.ipv4
