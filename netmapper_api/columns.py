"""ReportEdgesRequest.columns (EdgeColumns) <-> Edge messages: the two forms of a batch's edges.

Sniffers send columns to a mapper that says it reads them (ReportEdgesResponse.columns); everything else
speaks Edge. These two functions are the whole correspondence, so both sides agree on it.
"""
from __future__ import annotations

from collections.abc import Iterable

from netmapper_api.v1 import edge_pb2, mapper_pb2

_NS_PER_S = 1_000_000_000


def add_edge(columns: mapper_pb2.EdgeColumns, edge: edge_pb2.Edge) -> None:
    """Append one Edge to `columns`: its key (client, server, port, protocol) and its numbers."""
    key = columns.keys.add(port=edge.port, protocol=edge.protocol)
    key.client.CopyFrom(edge.client)
    key.server.CopyFrom(edge.server)
    columns.first_seen_ns.append(edge.first_seen.seconds * _NS_PER_S + edge.first_seen.nanos)
    columns.last_seen_ns.append(edge.last_seen.seconds * _NS_PER_S + edge.last_seen.nanos)
    columns.counts.append(edge.count)


def to_columns(edges: Iterable[edge_pb2.Edge]) -> mapper_pb2.EdgeColumns:
    columns = mapper_pb2.EdgeColumns()
    for edge in edges:
        add_edge(columns, edge)
    return columns


def column_edges(cols: mapper_pb2.EdgeColumns) -> list[edge_pb2.Edge]:
    """The edges of `cols` as Edge messages, in order. Raises ValueError when the columns differ in length."""
    n = len(cols.keys)
    if not len(cols.first_seen_ns) == len(cols.last_seen_ns) == len(cols.counts) == n:
        raise ValueError(f"columns differ in length: {n} keys, {len(cols.first_seen_ns)} first_seen_ns, "
                         f"{len(cols.last_seen_ns)} last_seen_ns, {len(cols.counts)} counts")
    out = []
    for key, first, last, count in zip(cols.keys, cols.first_seen_ns, cols.last_seen_ns, cols.counts):
        edge = edge_pb2.Edge(port=key.port, protocol=key.protocol, count=count)
        edge.client.CopyFrom(key.client)
        edge.server.CopyFrom(key.server)
        if first:
            edge.first_seen.FromNanoseconds(first)
        if last:
            edge.last_seen.FromNanoseconds(last)
        out.append(edge)
    return out
