"""`netmapper edges --distinct-by-label KEY`: the listing's counterpart of export's distinct-by-label. Pure.

Edges whose clients have the same name and the same value of pod label KEY, and whose servers have the
same name, port and protocol, are one row: the copies of one application in several namespaces read as
one. The row shows the first edge (listing order) with the summed count and the widest time span.
"""
from __future__ import annotations

from collections.abc import Iterable

from netmapper_api import keys
from netmapper_api.keys import InvalidEdge
from netmapper_api.v1 import edge_pb2

NO_VALUE = "no_value"


def distinct_edges(edges: Iterable[edge_pb2.Edge], key: str) -> list[edge_pb2.Edge]:
    rows: dict[tuple[object, ...], edge_pb2.Edge] = {}
    for e in edges:
        try:
            client = keys.endpoint_identity(e.client, "client")
            server = keys.endpoint_identity(e.server, "server")
        except InvalidEdge:
            continue
        group = (client[0], keys.name_of(client), e.client.labels.get(key, NO_VALUE),
                 server[0], keys.name_of(server), e.port, e.protocol)
        row = rows.get(group)
        if row is None:
            rows[group] = row = edge_pb2.Edge()
            row.CopyFrom(e)
            continue
        row.count += e.count
        if e.first_seen.ToNanoseconds() < row.first_seen.ToNanoseconds():
            row.first_seen.CopyFrom(e.first_seen)
        if e.last_seen.ToNanoseconds() > row.last_seen.ToNanoseconds():
            row.last_seen.CopyFrom(e.last_seen)
        nodes = sorted(set(row.reporting_nodes) | set(e.reporting_nodes))
        del row.reporting_nodes[:]
        row.reporting_nodes.extend(nodes)
    return list(rows.values())
