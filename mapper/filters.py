"""ListEdges filters: which merged edges a query asks for."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mapper.record import EdgeRecord
from netmapper_api import keys
from netmapper_api.keys import EndpointAttrs, EndpointId
from netmapper_api.v1 import edge_pb2


def _matches_name(identity: EndpointId, attrs: EndpointAttrs, pattern: str) -> bool:
    """"name" or "name.namespace" for workloads and Services (a workload also answers to the Services
    it was reached through); the node name or address for nodes; address or DNS name for the rest."""
    kind = identity[0]
    if kind == keys.WORKLOAD or kind == keys.SERVICE:
        ns = identity[1]
        name = keys.name_of(identity)
        # Names may contain dots, namespaces may not: comparing against both forms avoids splitting.
        if pattern == name or pattern == f"{name}.{ns}":
            return True
        return any(pattern == s_name or pattern == f"{s_name}.{s_ns}" for s_ns, s_name in attrs.services)
    if kind == keys.NODE:
        return pattern in (identity[1], identity[2]) and pattern != ""
    return pattern == identity[1] or keys.normalize_dns_name(pattern) in attrs.dns_names


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """One EdgeFilter ready to test records: fields AND, a list of filters OR (edge.proto)."""

    namespaces: frozenset[str]
    client: str
    server: str

    def matches(self, rec: EdgeRecord) -> bool:
        client_id, server_id = rec.key[0], rec.key[1]
        if self.namespaces and not (
            keys.namespace_of(client_id) in self.namespaces or keys.namespace_of(server_id) in self.namespaces
        ):
            return False
        if self.client and not _matches_name(client_id, rec.client, self.client):
            return False
        if self.server and not _matches_name(server_id, rec.server, self.server):
            return False
        return True


def compile_filters(filters: Sequence[edge_pb2.EdgeFilter]) -> list[CompiledFilter]:
    return [
        CompiledFilter(namespaces=frozenset(f.namespaces), client=f.client.strip(), server=f.server.strip())
        for f in filters
    ]
