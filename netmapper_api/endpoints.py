"""Domain records of one side of an edge: workloads, Services and typed endpoints. Pure data, no I/O."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from netmapper_api.v1 import edge_pb2


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


class EndpointKind(enum.IntEnum):
    """Mirrors netmapper.v1.EndpointKind value for value."""

    WORKLOAD = edge_pb2.ENDPOINT_KIND_WORKLOAD
    SERVICE = edge_pb2.ENDPOINT_KIND_SERVICE
    NODE = edge_pb2.ENDPOINT_KIND_NODE
    INTERNET = edge_pb2.ENDPOINT_KIND_INTERNET
    UNRESOLVED = edge_pb2.ENDPOINT_KIND_UNRESOLVED


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
    # labels: the pod's labels as sorted (key, value) pairs, when the endpoint is a known pod.
    labels: tuple[tuple[str, str], ...] = ()
