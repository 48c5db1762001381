"""PodInfo: what the resolver needs of a pod, extracted once when the pod changes. Pure."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netmapper_api.endpoints import Workload


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    ips: tuple[str, ...]
    host_network: bool
    node_name: str
    labels: Mapping[str, str]
    workload: Workload


def pod_info(obj: Mapping[str, Any], workload: Workload) -> PodInfo:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or []] + [status.get("podIP")]
    return PodInfo(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid") or ""),
        ips=tuple(dict.fromkeys(ip for ip in ips if ip)),
        host_network=bool(spec.get("hostNetwork")),
        node_name=str(spec.get("nodeName") or ""),
        labels=dict(meta.get("labels") or {}),
        workload=workload,
    )
