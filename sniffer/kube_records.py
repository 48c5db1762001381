"""Compact records of the Kubernetes objects the ClusterIndex keeps: only what the resolver reads,
shaped once when an object enters the index. Pure functions, no I/O.

An object in API JSON shape weighs ~1.6 KB as Python dicts; its record a fifth of that. Strings that
repeat across thousands of objects (kinds, API versions, namespaces, label keys and values, owner
names, node names) are interned, so each record points at one shared copy.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sniffer.cluster_dns import is_cluster_dns_service, node_local_dns_ips
from sniffer.owners import OWNER_KINDS, WORKLOAD_NAME_ANNOTATION, OwnerLink

Obj = Mapping[str, Any]
LabelPairs = tuple[tuple[str, str], ...]  # sorted (key, value) pairs
NO_LABELS: Final[Mapping[str, str]] = {}  # shared by every object without labels; never mutated
NO_IPS: Final[frozenset[str]] = frozenset()


def _s(value: Any) -> str:
    return sys.intern(str(value))


def _labels(raw: Any) -> Mapping[str, str]:
    if not isinstance(raw, Mapping) or not raw:
        return NO_LABELS
    return {_s(k): _s(v) for k, v in raw.items()}


def _label_pairs(raw: Any) -> LabelPairs:
    """Labels as sorted (key, value) pairs: how endpoints carry them, made once per pod instead of
    once per connect, and smaller than a dict."""
    if not isinstance(raw, Mapping) or not raw:
        return ()
    return tuple(sorted((_s(k), _s(v)) for k, v in raw.items()))


@dataclass(frozen=True, slots=True)
class OwnerRecord:
    """An owner (ReplicaSet, Deployment, ... or a custom kind fetched on demand): where its walk goes on."""

    kind: str
    api_version: str
    namespace: str
    name: str
    # The controller owner (OwnerLink) flat: a tuple per record costs 64 B (~1 MiB at 10k pods).
    owner_api_version: str | None  # None: no owner
    owner_kind: str
    owner_name: str

    @property
    def owner(self) -> OwnerLink | None:
        return None if self.owner_api_version is None else (self.owner_api_version, self.owner_kind, self.owner_name)


@dataclass(frozen=True, slots=True)
class PodRecord:
    kind: str
    api_version: str
    namespace: str
    name: str
    uid: str
    labels: LabelPairs
    owner_api_version: str | None  # the controller owner, flat as in OwnerRecord
    owner_kind: str
    owner_name: str
    workload_name: str | None  # the intents.otterize.com/workload-name annotation
    ips: tuple[str, ...]
    host_network: bool
    node: str
    dns_local_ips: frozenset[str]  # addresses it answers DNS on, if it is NodeLocal DNSCache

    @property
    def owner(self) -> OwnerLink | None:
        return None if self.owner_api_version is None else (self.owner_api_version, self.owner_kind, self.owner_name)


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    kind: str
    api_version: str
    namespace: str
    name: str
    selector: Mapping[str, str]
    ips: tuple[str, ...]  # ClusterIPs and load balancer ingress addresses
    cluster_dns: bool  # one of the installations sniffer/cluster_dns.py recognises


@dataclass(frozen=True, slots=True)
class EndpointSliceRecord:
    kind: str
    api_version: str
    namespace: str
    name: str
    service_name: str  # its kubernetes.io/service-name label
    pods: tuple[tuple[str, str], ...]  # (namespace, name) of its endpoints' Pod targets


@dataclass(frozen=True, slots=True)
class NodeRecord:
    kind: str
    api_version: str
    namespace: str
    name: str
    ips: tuple[str, ...]  # InternalIP and ExternalIP addresses


Record = OwnerRecord | PodRecord | ServiceRecord | EndpointSliceRecord | NodeRecord
INDEXED_KINDS: Final[frozenset[str]] = frozenset({"Pod", "Service", "EndpointSlice", "Node", *OWNER_KINDS})


def owner_link(meta: Obj) -> OwnerLink | None:
    """The controller owner reference (else the first one), as (apiVersion, kind, name)."""
    refs = [r for r in meta.get("ownerReferences") or [] if isinstance(r, Mapping)]
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if ref is None:
        return None
    return (_s(ref.get("apiVersion", "")), _s(ref.get("kind", "")), _s(ref.get("name", "")))


def flat_owner(link: OwnerLink | None) -> tuple[str | None, str, str]:
    """An owner link as the records keep it (owner_api_version, owner_kind, owner_name)."""
    return (None, "", "") if link is None else link


def owner_record(obj: Obj) -> OwnerRecord:
    meta = obj.get("metadata") or {}
    api_version, kind, name = flat_owner(owner_link(meta))
    return OwnerRecord(kind=_s(obj.get("kind", "")), api_version=_s(obj.get("apiVersion", "")),
                       namespace=_s(meta.get("namespace") or ""), name=_s(meta.get("name", "")),
                       owner_api_version=api_version, owner_kind=kind, owner_name=name)


def record_of(obj: Obj) -> Record | None:
    """The record of an object in API JSON shape; None for kinds the index does not keep."""
    kind = obj.get("kind")
    if kind not in INDEXED_KINDS:
        return None
    if kind == "Pod":
        return _pod(obj)
    if kind == "Service":
        return _service(obj)
    if kind == "EndpointSlice":
        return _endpoint_slice(obj)
    if kind == "Node":
        return _node(obj)
    return owner_record(obj)


def _common(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    # A workload's name recurs as its Service's, its pods' app label and their owner references.
    return (_s(obj.get("kind", "")), _s(obj.get("apiVersion", "")), _s(meta.get("namespace") or ""),
            _s(meta.get("name", "")))


def _pod(obj: Obj) -> PodRecord:
    kind, api_version, namespace, name = _common(obj)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or []] + [status.get("podIP")]
    override = (meta.get("annotations") or {}).get(WORKLOAD_NAME_ANNOTATION)
    local_dns = node_local_dns_ips(obj)
    owner_api_version, owner_kind, owner_name = flat_owner(owner_link(meta))
    return PodRecord(
        kind=kind, api_version=api_version, namespace=namespace, name=name,
        uid=str(meta.get("uid") or ""),
        labels=_label_pairs(meta.get("labels")),
        owner_api_version=owner_api_version, owner_kind=owner_kind, owner_name=owner_name,
        workload_name=_s(override) if override else None,
        ips=tuple(dict.fromkeys(str(ip) for ip in ips if ip)),
        host_network=bool(spec.get("hostNetwork")),
        node=_s(spec.get("nodeName") or ""),
        dns_local_ips=frozenset(local_dns) if local_dns else NO_IPS,
    )


def _service(obj: Obj) -> ServiceRecord:
    kind, api_version, namespace, name = _common(obj)
    spec = obj.get("spec") or {}
    ips = list(spec.get("clusterIPs") or []) + [spec.get("clusterIP")]
    ips += [i.get("ip") for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
    return ServiceRecord(
        kind=kind, api_version=api_version, namespace=namespace, name=name,
        selector=_labels(spec.get("selector")),
        ips=tuple(dict.fromkeys(str(ip) for ip in ips if ip and ip != "None")),
        cluster_dns=is_cluster_dns_service(obj),
    )


def _endpoint_slice(obj: Obj) -> EndpointSliceRecord:
    kind, api_version, namespace, name = _common(obj)
    labels = (obj.get("metadata") or {}).get("labels") or {}
    pods: list[tuple[str, str]] = []
    for ep in obj.get("endpoints") or []:
        target = ep.get("targetRef") or {}
        if target.get("kind") == "Pod":
            pods.append((_s(target.get("namespace") or namespace), str(target.get("name", ""))))
    return EndpointSliceRecord(kind=kind, api_version=api_version, namespace=namespace, name=name,
                               service_name=_s(labels.get("kubernetes.io/service-name") or ""), pods=tuple(pods))


def _node(obj: Obj) -> NodeRecord:
    kind, api_version, namespace, name = _common(obj)
    addrs = (obj.get("status") or {}).get("addresses") or []
    ips = [a["address"] for a in addrs if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address")]
    return NodeRecord(kind=kind, api_version=api_version, namespace=namespace, name=_s(name),
                      ips=tuple(dict.fromkeys(str(ip) for ip in ips)))


def node_of_record(rec: Record) -> str:
    """The node a pod runs on ("" for other kinds and unscheduled pods)."""
    return rec.node if isinstance(rec, PodRecord) else ""
