"""Identities the resolver produces: workloads, services and typed endpoints. Pure data, no I/O."""
from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Workload:
    """Top of a pod's owner chain (or the pod itself when it has no owner)."""

    namespace: str
    kind: str
    name: str


@dataclass(frozen=True, slots=True, order=True)
class ServiceRef:
    namespace: str
    name: str


class EndpointKind(enum.Enum):
    """Mirrors netmapper.v1.EndpointKind."""

    WORKLOAD = 1
    SERVICE = 2
    NODE = 3
    INTERNET = 4
    UNRESOLVED = 5


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of an edge as resolved on the node."""

    kind: EndpointKind
    ip: str
    workload: Workload | None = None
    pod: str | None = None
    service: ServiceRef | None = None
    node: str | None = None
    dns_names: tuple[str, ...] = ()

    def key(self) -> tuple[object, ...]:
        """What makes two endpoints the same party (the sniffer aggregates edges on it)."""
        if self.kind is EndpointKind.WORKLOAD and self.workload is not None:
            return ("w", self.workload, self.service)
        if self.kind is EndpointKind.SERVICE and self.service is not None:
            return ("s", self.service)
        if self.kind is EndpointKind.NODE:
            return ("n", self.node)
        return ("ip", self.ip)
