"""The targets of one client workload while they are collected, and their order in a document."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClientTargets:
    """Targets of one client being collected (mutable while building, then rendered to a dict)."""

    workloads: set[tuple[str, str]] = field(default_factory=set)  # (qualified name, kind)
    services: set[str] = field(default_factory=set)  # qualified name
    domains: dict[str, set[int]] = field(default_factory=dict)  # domain -> ports
    ips: dict[str, set[int]] = field(default_factory=dict)  # ip without a known name -> ports

    def __bool__(self) -> bool:
        return bool(self.workloads or self.services or self.domains or self.ips)


def _ip_sort_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


def target_list(t: ClientTargets) -> list[tuple[str, dict[str, Any]]]:
    """(type, body) pairs in output order: workloads and Services by name, then domains, then IP groups."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name, kind in sorted(t.workloads):
        body: dict[str, Any] = {"name": name}
        if kind:
            body["kind"] = kind
        out.append(("kubernetes", body))
    for name in sorted(t.services):
        out.append(("service", {"name": name}))
    for domain in sorted(t.domains):
        out.append(("internet", {"domains": [domain], "ports": sorted(t.domains[domain])}))
    # Addresses with the same ports share a target: as precise as one per address, and shorter.
    groups: dict[tuple[int, ...], list[str]] = {}
    for ip, ports in t.ips.items():
        groups.setdefault(tuple(sorted(ports)), []).append(ip)
    for ports_key, ips in sorted(groups.items(), key=lambda g: min(_ip_sort_key(ip) for ip in g[1])):
        out.append(("internet", {"ips": sorted(ips, key=_ip_sort_key), "ports": list(ports_key)}))
    return out
