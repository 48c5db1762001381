"""Resolved connects -> netmapper.v1 Edge messages, aggregated per (client, server, port, protocol).

The sniffer sends one Edge per key per batch; while a batch waits for the mapper's acknowledgement
(or the mapper is down) new connects keep merging here, so memory grows with distinct edges, not with
connects (bounded by max_edges; what does not fit is counted and reported as lost).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice

from netmapper_api.convert import endpoint_into
from netmapper_api.endpoints import Endpoint, ServiceRef
from netmapper_api.keys import EdgeKey, endpoint_id
from netmapper_api.v1 import edge_pb2, mapper_pb2
from sniffer.resolver import ResolvedConnect

log = logging.getLogger(__name__)

# The mapper's EdgeKey plus the Service a call went through: the mapper keeps every Service of an
# edge, while one pending edge carries one, so calls through different Services stay apart here.
_PendingKey = tuple[EdgeKey, ServiceRef | None]


@dataclass(slots=True)
class _Pending:
    client: Endpoint
    server: Endpoint
    port: int
    protocol: edge_pb2.Protocol.ValueType
    count: int
    first_seen: float
    last_seen: float
    dns_names: set[str] | None  # None until a connect carries a name (most never do: 10k empty sets)


@dataclass
class EdgeAccumulator:
    """Merges resolved connects by edge key until taken as a batch."""

    max_edges: int = 200_000
    overflow: int = 0  # connects dropped because max_edges distinct edges were already pending
    _pending: dict[_PendingKey, _Pending] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, connects: Iterable[ResolvedConnect], protocol: edge_pb2.Protocol.ValueType = edge_pb2.PROTOCOL_TCP) -> None:
        for c in connects:
            key: _PendingKey = ((endpoint_id(c.client), endpoint_id(c.server), c.port, protocol), c.server.service)
            p = self._pending.get(key)
            if p is None:
                if len(self._pending) >= self.max_edges:
                    self.overflow += c.count
                    continue
                self._pending[key] = _Pending(c.client, c.server, c.port, protocol, c.count,
                                              c.first_seen, c.last_seen, set(c.server.dns_names) or None)
                continue
            p.count += c.count
            p.first_seen = min(p.first_seen, c.first_seen)
            if c.last_seen >= p.last_seen:
                p.last_seen, p.client, p.server = c.last_seen, c.client, c.server
            if c.server.dns_names:
                if p.dns_names is None:
                    p.dns_names = set()
                p.dns_names.update(c.server.dns_names)

    def take(self) -> list[edge_pb2.Edge]:
        """The pending edges as messages (tests, tools); the agent uses take_serialized."""
        count, payload = self.take_serialized()
        return list(mapper_pb2.ReportEdgesRequest.FromString(payload).edges)

    def take_serialized(self, chunk: int = 1000) -> tuple[int, bytes]:
        """Move the pending edges out as the serialized `edges` field of a ReportEdgesRequest (the
        encodings of repeated fields concatenate); returns (how many, bytes).

        Built `chunk` edges at a time: as messages a batch of 10k edges weighs ~7 MiB of protobuf
        arena, serialized under 2 MiB; whole, it set the sniffer's steady-state memory."""
        pending, self._pending = self._pending, {}
        parts: list[bytes] = []
        values = iter(pending.values())
        while batch := list(islice(values, chunk)):
            holder = mapper_pb2.ReportEdgesRequest()
            for p in batch:
                _fill(holder.edges.add(), p)
            parts.append(holder.SerializeToString())
        return len(pending), b"".join(parts)


def _fill(edge: edge_pb2.Edge, p: _Pending) -> None:
    edge.port, edge.protocol, edge.count = p.port, p.protocol, p.count
    endpoint_into(edge.client, p.client)
    endpoint_into(edge.server, p.server)
    del edge.server.dns_names[:]
    edge.server.dns_names.extend(sorted(p.dns_names or ()))
    edge.first_seen.FromNanoseconds(int(p.first_seen * 1e9))
    edge.last_seen.FromNanoseconds(int(p.last_seen * 1e9))
