"""Which Services and pods count as the cluster DNS (sniffer/cluster_dns.py), object by object."""
from __future__ import annotations

from typing import Any

import pytest

from sniffer.cluster_dns import NODE_LOCAL_DNS_DEFAULT_IP, is_cluster_dns_service, node_local_dns_ips


def svc(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"namespace": namespace, "name": name, "labels": labels}}


@pytest.mark.parametrize(("service", "expected"), [
    (svc("kube-system", "kube-dns", {"k8s-app": "kube-dns"}), True),  # kubeadm, EKS, GKE
    (svc("kube-system", "coredns", {"k8s-app": "coredns"}), True),  # CoreDNS Helm chart
    (svc("kube-system", "dns", {"app.kubernetes.io/name": "coredns"}), True),  # chart with k8s-app overridden
    (svc("openshift-dns", "dns-default", {"dns.operator.openshift.io/owning-dns": "default"}), True),
    (svc("shop", "kube-dns", {"k8s-app": "kube-dns"}), False),  # the right label in an application namespace
    (svc("shop", "dns-default", {}), False),
    (svc("kube-system", "metrics-server", {"k8s-app": "metrics-server"}), False),
])
def test_cluster_dns_services(service: dict[str, Any], expected: bool) -> None:
    assert is_cluster_dns_service(service) is expected


def node_local(args: list[str] | None, *, host_network: bool = True, namespace: str = "kube-system") -> dict[str, Any]:
    spec: dict[str, Any] = {"hostNetwork": host_network}
    if args is not None:
        spec["containers"] = [{"name": "node-cache", "args": args}]
    return {"kind": "Pod", "metadata": {"namespace": namespace, "name": "node-local-dns-x",
                                        "labels": {"k8s-app": "node-local-dns"}}, "spec": spec}


def test_node_local_dns_addresses_come_from_its_localip_flag() -> None:
    assert node_local_dns_ips(node_local(["-localip", "169.254.25.10,10.96.0.10", "-conf", "/etc/Corefile"])) == {
        "169.254.25.10", "10.96.0.10"}
    assert node_local_dns_ips(node_local(["--localip=fd00::a"])) == {"fd00::a"}


def test_node_local_dns_without_visible_args_uses_the_documented_default() -> None:
    # The live feed keeps pods of other nodes slimmed, without their containers.
    assert node_local_dns_ips(node_local(None)) == {NODE_LOCAL_DNS_DEFAULT_IP}


def test_node_local_dns_imitations_are_not_trusted() -> None:
    assert node_local_dns_ips(node_local(["-localip", "10.1.2.3"], host_network=False)) == set()
    assert node_local_dns_ips(node_local(["-localip", "10.1.2.3"], namespace="shop")) == set()
    plain = {"kind": "Pod", "metadata": {"namespace": "kube-system", "name": "x"}, "spec": {"hostNetwork": True}}
    assert node_local_dns_ips(plain) == set()
