"""Edge identity: which reported edges are "the same edge", and what else a report says. Pure, no I/O.

An edge is keyed by (client identity, server identity, port, protocol). An endpoint's identity is what
a ClientIntents document would name: the workload for pods, the Service for Services with nothing
behind them, the node name for node traffic and the address for everything else. Everything else a
report carries (pod, address of a workload, the Service a call went through, DNS names) describes the
edge but does not split it: those attributes are merged (see EndpointAttrs).

Identities are plain tuples rather than dataclasses because the store hashes and compares them for
every observation; plain tuples are the cheapest hashable, orderable value in CPython.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeVar

from netmapper_api.addresses import normalize_ip_text
from netmapper_api.endpoints import Endpoint, EndpointKind
from netmapper_api.v1 import edge_pb2

WORKLOAD: Final[int] = edge_pb2.ENDPOINT_KIND_WORKLOAD
SERVICE: Final[int] = edge_pb2.ENDPOINT_KIND_SERVICE
NODE: Final[int] = edge_pb2.ENDPOINT_KIND_NODE
INTERNET: Final[int] = edge_pb2.ENDPOINT_KIND_INTERNET
UNRESOLVED: Final[int] = edge_pb2.ENDPOINT_KIND_UNRESOLVED

TCP: Final[int] = edge_pb2.PROTOCOL_TCP
UDP: Final[int] = edge_pb2.PROTOCOL_UDP
VALID_PROTOCOLS: Final[frozenset[int]] = frozenset({TCP, UDP})

# Bounds on the merged attribute lists: a workload reached under many names or through many Services
# must not grow one edge without limit. The smallest names are kept, so the result does not depend on
# the order in which reports arrived.
MAX_DNS_NAMES: Final[int] = 16
MAX_SERVICES: Final[int] = 8

EndpointId = tuple[int, str, str, str]
"""Identity of one side of an edge. Layout by kind (unused slots are ""):

- WORKLOAD   (1, namespace, kind, name)
- SERVICE    (2, namespace, name, "")
- NODE       (3, node, "", "")   or (3, "", ip, "") when no node name was reported
- INTERNET   (4, ip, "", "")     ip normalised (compressed IPv6, no zero padding)
- UNRESOLVED (5, ip, "", "")

The kind comes first so that sorting groups workloads, then Services, nodes and addresses.
"""

EdgeKey = tuple[EndpointId, EndpointId, int, int]
"""(client identity, server identity, port, protocol): the unit the mapper merges on."""

ServiceName = tuple[str, str]
"""(namespace, name) of a Service."""


class InvalidEdge(ValueError):
    """A reported edge that cannot be merged; str() is the reason sent back to the sniffer."""


@dataclass(frozen=True, slots=True, eq=False)
class EndpointAttrs:
    """What one report says about an endpoint beyond its identity.

    pod and ip describe the instance seen in that report (the store keeps one example, the smallest:
    pods churn, the workload stays). services and dns_names are sorted, bounded sets that the store
    unions.

    Compared by identity (eq=False): the store interns one object per distinct serialized endpoint
    and asks "merged this one already?" for every observation; identity keeps that test in C.
    """

    pod: str
    ip: str
    services: tuple[ServiceName, ...]
    dns_names: tuple[str, ...]
    # labels: the example pod's labels as sorted (key, value) pairs; they follow the pod choice.
    labels: tuple[tuple[str, str], ...] = ()


EMPTY_ATTRS: Final[EndpointAttrs] = EndpointAttrs(pod="", ip="", services=(), dns_names=())

T = TypeVar("T", str, ServiceName)


def bounded_union(current: tuple[T, ...], new: Iterable[T], limit: int) -> tuple[T, ...]:
    """Sorted union of current and new, cut to the `limit` smallest (order-independent)."""
    merged = set(current)
    merged.update(new)
    if len(merged) == len(current):
        return current  # nothing new: keep the same object so callers can detect "unchanged" by identity
    return tuple(sorted(merged)[:limit])


def _address(text: str) -> str:
    """Canonical text for an address (addresses.normalize_ip) so that "::0001", "::1" are one identity
    and so are "::ffff:10.0.0.1" and "10.0.0.1"; InvalidEdge when it is no address."""
    try:
        return normalize_ip_text(text)
    except ValueError:
        raise InvalidEdge(f"invalid IP address {text!r}") from None


def normalize_dns_name(name: str) -> str:
    """DNS names compare case-insensitively and with or without the root dot."""
    return name.strip().rstrip(".").lower()


def endpoint_id(ep: Endpoint) -> EndpointId:
    """Identity of a resolved endpoint (the sniffer's record): the same identity the mapper gives the
    Endpoint message the sniffer sends for it."""
    if ep.kind is EndpointKind.WORKLOAD and ep.workload is not None:
        w = ep.workload
        return (WORKLOAD, w.namespace, w.kind, w.name)
    if ep.kind is EndpointKind.SERVICE and ep.service is not None:
        return (SERVICE, ep.service.namespace, ep.service.name, "")
    if ep.kind is EndpointKind.NODE and ep.node:
        return (NODE, ep.node, "", "")
    if ep.kind is EndpointKind.NODE:
        return (NODE, "", _address(ep.ip), "")
    return (int(ep.kind), _address(ep.ip), "", "")


def endpoint_identity(ep: edge_pb2.Endpoint, side: str) -> EndpointId:
    """Identity of an endpoint; raises InvalidEdge naming the side ("client"/"server") when unusable."""
    return _check_text(_identity(ep, side), side)


def _identity(ep: edge_pb2.Endpoint, side: str) -> EndpointId:
    kind = ep.kind
    if kind == WORKLOAD:
        w = ep.workload
        if not w.name or not w.namespace:
            raise InvalidEdge(f"{side}: workload endpoint needs workload.name and workload.namespace")
        return (WORKLOAD, w.namespace, w.kind, w.name)
    if kind == SERVICE:
        s = ep.service
        if not s.name or not s.namespace:
            raise InvalidEdge(f"{side}: service endpoint needs service.name and service.namespace")
        return (SERVICE, s.namespace, s.name, "")
    if kind == NODE:
        if ep.node:
            return (NODE, ep.node, "", "")
        if ep.ip:
            return (NODE, "", _address(ep.ip), "")
        raise InvalidEdge(f"{side}: node endpoint needs node or ip")
    if kind == INTERNET or kind == UNRESOLVED:
        if not ep.ip:
            raise InvalidEdge(f"{side}: {edge_pb2.EndpointKind.Name(kind)} endpoint needs ip")
        return (kind, _address(ep.ip), "", "")
    raise InvalidEdge(f"{side}: unknown endpoint kind {kind}")


def _check_text(identity: EndpointId, side: str) -> EndpointId:
    # NUL is the separator of sort_key; no Kubernetes name or address contains it.
    if "\0" in identity[1] or "\0" in identity[2] or "\0" in identity[3]:
        raise InvalidEdge(f"{side}: NUL character in a name")
    return identity


def endpoint_attrs(ep: edge_pb2.Endpoint) -> EndpointAttrs:
    """The non-identity attributes of one report of an endpoint, normalised."""
    services: tuple[ServiceName, ...] = ()
    if ep.HasField("service") and ep.service.name:
        services = ((ep.service.namespace, ep.service.name),)
    names = ep.dns_names
    dns = tuple(sorted({normalize_dns_name(n) for n in names} - {""})[:MAX_DNS_NAMES]) if names else ()
    labels = tuple(sorted(ep.labels.items())) if ep.labels else ()
    return EndpointAttrs(pod=ep.pod, ip=ep.ip, services=services, dns_names=dns, labels=labels)


def merge_example(cur_pod: str, cur_labels: tuple[tuple[str, str], ...], new_pod: str,
                  new_labels: tuple[tuple[str, str], ...]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The example pod of a merged endpoint and its labels: the smallest non-empty (pod, labels) pair, so
    the choice does not depend on the order of reports (labels travel with the pod they belong to)."""
    if new_pod == cur_pod and new_labels == cur_labels:
        return cur_pod, cur_labels  # the common case (the same pod again): no tuples to build
    # Empty values rank last, so any pod beats none and any labels beat none for the same pod.
    if (new_pod == "", new_pod, new_labels == (), new_labels) < (cur_pod == "", cur_pod, cur_labels == (), cur_labels):
        return new_pod, new_labels
    return cur_pod, cur_labels


def check_port_protocol(port: int, protocol: int) -> None:
    if not 0 < port <= 65535:
        raise InvalidEdge(f"port {port} out of range 1..65535")
    if protocol not in VALID_PROTOCOLS:
        raise InvalidEdge(f"unknown protocol {protocol}")


def edge_key(edge: edge_pb2.Edge) -> EdgeKey:
    """The merge key of a reported edge; raises InvalidEdge with the reason when it has none."""
    if not edge.HasField("client"):
        raise InvalidEdge("edge has no client")
    if not edge.HasField("server"):
        raise InvalidEdge("edge has no server")
    check_port_protocol(edge.port, edge.protocol)
    return (
        endpoint_identity(edge.client, "client"),
        endpoint_identity(edge.server, "server"),
        edge.port,
        edge.protocol,
    )


def sort_key(key: EdgeKey) -> str:
    """A string that sorts like the key tuple (client, server, port, protocol).

    Sorting 100k records by nested tuples takes ~0.5 s in CPython; by one string, ~0.03 s. The
    fields are joined with NUL, which sorts below every other character and never occurs in a
    validated identity, so string order equals tuple order (kinds and protocol are single digits,
    the port is zero-padded).
    """
    (c0, c1, c2, c3), (s0, s1, s2, s3), port, protocol = key
    return f"{c0}\0{c1}\0{c2}\0{c3}\0{s0}\0{s1}\0{s2}\0{s3}\0{port:05d}\0{protocol}"


def namespace_of(identity: EndpointId) -> str:
    """Kubernetes namespace of an identity, "" for nodes and addresses."""
    return identity[1] if identity[0] in (WORKLOAD, SERVICE) else ""


def name_of(identity: EndpointId) -> str:
    """The short name a user types for an identity: workload/Service/node name, else the address."""
    kind = identity[0]
    if kind == WORKLOAD:
        return identity[3]
    if kind == SERVICE:
        return identity[2]
    if kind == NODE:
        return identity[1] or identity[2]
    return identity[1]


def endpoint_message(identity: EndpointId, attrs: EndpointAttrs) -> edge_pb2.Endpoint:
    """Build the proto Endpoint for an identity and its merged attributes (the inverse of the above).

    The proto has room for one Service: a workload reached through several Services shows the first
    in sort order (the store keeps the rest).
    """
    kind = identity[0]
    ep = edge_pb2.Endpoint(kind=kind, pod=attrs.pod, ip=attrs.ip, dns_names=attrs.dns_names)  # type: ignore[arg-type]
    if attrs.labels:
        ep.labels.update(attrs.labels)
    if kind == WORKLOAD:
        ep.workload.namespace, ep.workload.kind, ep.workload.name = identity[1], identity[2], identity[3]
        if attrs.services:
            ep.service.namespace, ep.service.name = attrs.services[0]
    elif kind == SERVICE:
        ep.service.namespace, ep.service.name = identity[1], identity[2]
    elif kind == NODE:
        ep.node = identity[1]
        ep.ip = identity[2] or attrs.ip
    else:
        ep.ip = identity[1]
    return ep
