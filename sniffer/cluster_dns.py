"""Which objects are the cluster's DNS, as the common installations present it. Pure functions.

Replies are trusted (may attach names to IPs) only when they come from these addresses:

  kubeadm, kops, EKS, GKE, AKS   Service labelled k8s-app=kube-dns in kube-system: its ClusterIPs and
                                 the pods it selects
  CoreDNS Helm chart             Service labelled k8s-app=coredns (the chart's default; the chart also
                                 sets app.kubernetes.io/name=coredns) in kube-system: the same
  OpenShift                      Service openshift-dns/dns-default: the same
  NodeLocal DNSCache             pods labelled k8s-app=node-local-dns in kube-system running with
                                 hostNetwork: the addresses they listen on (`-localip`, by default
                                 169.254.20.10; the kube-dns ClusterIP they may also bind is trusted
                                 already). Never their pod IP, which is the node's.

Only kube-system (and openshift-dns) count: those namespaces are the cluster operator's, whereas a
Service with the right label in an application namespace could otherwise make any pod a trusted DNS
server. Anything else is named with `--dns-server IP`. A pod answering its own queries (a resolver in
the pod, replies from its own or a loopback address) is never trusted.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = Mapping[str, Any]

KUBE_SYSTEM = "kube-system"
DNS_APP_LABELS = frozenset({"kube-dns", "coredns"})  # k8s-app values of cluster DNS Services
HELM_NAME_LABEL = ("app.kubernetes.io/name", "coredns")
OPENSHIFT_DNS_SERVICE = ("openshift-dns", "dns-default")
NODE_LOCAL_DNS_APP = "node-local-dns"
NODE_LOCAL_DNS_DEFAULT_IP = "169.254.20.10"


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _labels(obj: Obj) -> Mapping[str, Any]:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def is_cluster_dns_service(service: Obj) -> bool:
    """Whether a Service is the cluster DNS of one of the installations in the module docstring."""
    meta = _meta(service)
    namespace, name = meta.get("namespace"), meta.get("name")
    if (namespace, name) == OPENSHIFT_DNS_SERVICE:
        return True
    if namespace != KUBE_SYSTEM:
        return False
    labels = _labels(service)
    return labels.get("k8s-app") in DNS_APP_LABELS or labels.get(HELM_NAME_LABEL[0]) == HELM_NAME_LABEL[1]


def node_local_dns_ips(pod: Obj) -> set[str]:
    """The addresses a NodeLocal DNSCache pod answers on; empty for any other pod."""
    if _meta(pod).get("namespace") != KUBE_SYSTEM or _labels(pod).get("k8s-app") != NODE_LOCAL_DNS_APP:
        return set()
    spec = pod.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    if spec.get("hostNetwork") is not True:
        return set()  # the real one binds a node address; a pod-network imitation proves nothing
    found: set[str] = set()
    for container in spec.get("containers") or []:
        if isinstance(container, Mapping):
            found |= _localips([*(container.get("command") or []), *(container.get("args") or [])])
    # A pod slimmed to its identity (another node's, in the live feed) has no container args.
    return found or {NODE_LOCAL_DNS_DEFAULT_IP}


def _localips(argv: list[Any]) -> set[str]:
    """Addresses of `-localip A,B` / `-localip=A,B` (node-cache's flag)."""
    out: set[str] = set()
    words = [str(w) for w in argv]
    for i, word in enumerate(words):
        value = None
        if word in ("-localip", "--localip") and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith(("-localip=", "--localip=")):
            value = word.split("=", 1)[1]
        if value:
            out |= {a.strip() for a in value.split(",") if a.strip()}
    return out
