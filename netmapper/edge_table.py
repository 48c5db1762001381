"""Edges as a table a person reads: one line per edge, endpoints as ns/name (Kind) or addresses."""
from __future__ import annotations

from collections.abc import Sequence

from netmapper_api.v1 import edge_pb2


def endpoint_label(ep: edge_pb2.Endpoint) -> str:
    """How a person reads an endpoint: ns/name (Kind) [via svc] or the IP with its names."""
    names = f" ({', '.join(ep.dns_names)})" if ep.dns_names else ""
    if ep.kind == edge_pb2.ENDPOINT_KIND_WORKLOAD:
        via = f" via svc/{ep.service.name}" if ep.service.name else ""
        return f"{ep.workload.namespace}/{ep.workload.name} ({ep.workload.kind}){via}{names}"
    if ep.kind == edge_pb2.ENDPOINT_KIND_SERVICE:
        return f"{ep.service.namespace}/svc/{ep.service.name}{names}"
    if ep.kind == edge_pb2.ENDPOINT_KIND_NODE:
        return f"node/{ep.node}"
    if ep.kind == edge_pb2.ENDPOINT_KIND_INTERNET:
        return f"internet {ep.ip}{names}"
    return f"unresolved {ep.ip}{names}"


HEADER = ("CLIENT", "SERVER", "PORT", "COUNT", "LAST SEEN", "NODES")


def row(e: edge_pb2.Edge) -> tuple[str, ...]:
    """One edge's cells, in HEADER order."""
    return (endpoint_label(e.client), endpoint_label(e.server),
            f"{edge_pb2.Protocol.Name(e.protocol).removeprefix('PROTOCOL_')}/{e.port}",
            str(e.count), e.last_seen.ToDatetime().strftime("%H:%M:%S"), ",".join(e.reporting_nodes))


def render_table(edges: Sequence[edge_pb2.Edge]) -> str:
    header = HEADER
    rows: list[tuple[str, ...]] = [header]
    for e in edges:
        rows.append(row(e))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if not edges:
        lines.append("(no edges)")
    return "\n".join(lines)
