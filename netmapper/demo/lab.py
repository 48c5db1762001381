"""Build a NetLab from a cluster snapshot: one namespace per Pod with the Pod's own addresses,
and each Service ClusterIP answered by its first backend (routed there from every other pod)."""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from netmapper.demo.netns import Host, NetLab

Obj = Mapping[str, Any]


def pod_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', 'default')}/{meta['name']}"


def _pod_addresses(pod: Obj) -> tuple[str | None, str | None]:
    status = pod.get("status") or {}
    ips = [p["ip"] for p in status.get("podIPs") or []] or [status.get("podIP")]
    v4 = next((ip for ip in ips if ip and ipaddress.ip_address(ip).version == 4), None)
    v6 = next((ip for ip in ips if ip and ipaddress.ip_address(ip).version == 6), None)
    return v4, v6


def build_lab(lab: NetLab, objects: Sequence[Obj]) -> dict[str, Host]:
    """Create the hosts in an started lab; returns pod "namespace/name" -> Host."""
    pods = [o for o in objects if o.get("kind") == "Pod" and not (o.get("spec") or {}).get("hostNetwork")]
    hosts: dict[str, Host] = {}
    for i, pod in enumerate(pods):
        v4, v6 = _pod_addresses(pod)
        hosts[pod_key(pod)] = lab.add_host(f"p{i}", ipv4=v4, ipv6=v6)
    for svc in (o for o in objects if o.get("kind") == "Service"):
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        cluster_ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
        if not selector or not cluster_ips:
            continue
        ns = svc["metadata"].get("namespace", "default")
        backends = [p for p in pods if p["metadata"].get("namespace", "default") == ns
                    and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
        if not backends:
            continue
        backend = hosts[pod_key(backends[0])]
        for ip in cluster_ips:
            lab.add_address(backend, f"{ip}/{32 if ':' not in ip else 128}")
            for key, host in hosts.items():
                if host is not backend:
                    lab.route_via(host, ip, backend)
    return hosts
