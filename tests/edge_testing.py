"""Builders for mapper tests: proto endpoints and edges with readable defaults.

Plain functions (not fixtures) so hypothesis strategies and parametrised tests can call them.
"""
from __future__ import annotations

import time

from netmapper_api.v1 import edge_pb2

# A whole hour a day before the test run: inside the mapper's report window (it refuses times more
# than a week old or ahead of its clock), and fixed for the run so expected timestamps are exact.
T0 = (int(time.time()) // 3600 - 24) * 3600


def iso(seconds: float) -> str:
    """RFC 3339 UTC with a Z, as diff, signals and JSON outputs print times: for expected values from T0."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def workload(name: str, namespace: str = "shop", kind: str = "Deployment", *, pod: str = "", ip: str = "",
             service: tuple[str, str] | None = None, dns: tuple[str, ...] = ()) -> edge_pb2.Endpoint:
    ep = edge_pb2.Endpoint(kind=edge_pb2.ENDPOINT_KIND_WORKLOAD, pod=pod, ip=ip, dns_names=dns)
    ep.workload.name, ep.workload.namespace, ep.workload.kind = name, namespace, kind
    if service is not None:
        ep.service.name, ep.service.namespace = service
    return ep


def service(name: str, namespace: str = "shop", *, ip: str = "10.96.0.10") -> edge_pb2.Endpoint:
    ep = edge_pb2.Endpoint(kind=edge_pb2.ENDPOINT_KIND_SERVICE, ip=ip)
    ep.service.name, ep.service.namespace = name, namespace
    return ep


def internet(ip: str, *dns: str) -> edge_pb2.Endpoint:
    return edge_pb2.Endpoint(kind=edge_pb2.ENDPOINT_KIND_INTERNET, ip=ip, dns_names=dns)


def unresolved(ip: str) -> edge_pb2.Endpoint:
    return edge_pb2.Endpoint(kind=edge_pb2.ENDPOINT_KIND_UNRESOLVED, ip=ip)


def node(name: str, ip: str = "") -> edge_pb2.Endpoint:
    return edge_pb2.Endpoint(kind=edge_pb2.ENDPOINT_KIND_NODE, node=name, ip=ip)


def edge(client: edge_pb2.Endpoint, server: edge_pb2.Endpoint, port: int = 8080, *,
         protocol: int = edge_pb2.PROTOCOL_TCP, first: float = T0, last: float | None = None,
         count: int = 1) -> edge_pb2.Edge:
    e = edge_pb2.Edge(client=client, server=server, port=port, protocol=protocol, count=count)  # type: ignore[arg-type]
    e.first_seen.FromNanoseconds(int(first * 1e9))
    e.last_seen.FromNanoseconds(int((first if last is None else last) * 1e9))
    return e


def summary(e: edge_pb2.Edge) -> tuple[str, str, int]:
    """(client, server, port) in "name.namespace" / address form, for compact assertions."""
    def side(ep: edge_pb2.Endpoint) -> str:
        if ep.kind == edge_pb2.ENDPOINT_KIND_WORKLOAD:
            return f"{ep.workload.name}.{ep.workload.namespace}"
        if ep.kind == edge_pb2.ENDPOINT_KIND_SERVICE:
            return f"svc:{ep.service.name}.{ep.service.namespace}"
        if ep.kind == edge_pb2.ENDPOINT_KIND_NODE:
            return f"node:{ep.node or ep.ip}"
        return ep.ip
    return side(e.client), side(e.server), e.port
