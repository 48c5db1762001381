"""Resolved connects -> netmapper.v1 Edge messages, aggregated per (client, server, port, protocol).

The sniffer sends one Edge per key per batch; while a batch waits for the mapper's acknowledgement
(or the mapper is down) new connects keep merging here, so memory grows with distinct edges, not with
connects (bounded by max_edges; what does not fit is counted and reported as lost).

Refresh: an edge is sent as soon as it is new; after that a known edge is sent again at most every
`refresh` seconds, carrying every connect counted since its last send. So the mapper's load grows with
new edges, not with connects (`sniffer run --refresh`). Known keys are remembered up to `max_known`
(the least recently sent are forgotten first: such an edge is then simply sent as new).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from netmapper_api.convert import endpoint_into
from netmapper_api.endpoints import Endpoint, EndpointKind, ServiceRef, Workload
from netmapper_api.keys import EndpointId, endpoint_id
from netmapper_api.limits import MAX_REPORT_BYTES, MAX_REPORT_EDGES
from netmapper_api.v1 import edge_pb2, mapper_pb2
from sniffer.resolver import ResolvedConnect

log = logging.getLogger(__name__)

SERIALIZE_EDGES = 1000  # edges built as messages at a time before they are serialized

# The mapper's EdgeKey (client identity, server identity, port, protocol) plus the Service a call went
# through: the mapper keeps every Service of an edge, while one pending edge carries one, so calls
# through different Services stay apart here. One flat tuple, and a workload's identity is its Workload
# (equal exactly when endpoint_id is; the index holds one per pod already): with 10k edges, nested key
# tuples and the identity tuples cost ~2 MiB.
_Identity = Workload | EndpointId
_PendingKey = tuple[_Identity, _Identity, int, int, ServiceRef | None]


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
    refresh: float = 0.0  # seconds between two sends of a known edge; 0: whenever it has new connects
    max_known: int = 200_000
    overflow: int = 0  # connects dropped because max_edges distinct edges were already pending
    _pending: dict[_PendingKey, _Pending] = field(default_factory=dict)
    # key -> (the same key, when last sent), oldest first. The key is kept to be reused by the next
    # pending entry of the edge: otherwise every known edge's key exists twice (~270 B each).
    _known: dict[_PendingKey, tuple[_PendingKey, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def known(self) -> int:
        """Edges sent at least once and remembered (they wait for their refresh)."""
        return len(self._known)

    def add(self, connects: Iterable[ResolvedConnect], protocol: edge_pb2.Protocol.ValueType = edge_pb2.PROTOCOL_TCP) -> None:
        for c in connects:
            key: _PendingKey = (_identity(c.client), _identity(c.server), c.port, protocol, c.server.service)
            p = self._pending.get(key)
            if p is None:
                if len(self._pending) >= self.max_edges:
                    self.overflow += c.count
                    continue
                known = self._known.get(key)
                if known is not None:
                    key = known[0]
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

    def take(self, now: float | None = None) -> list[edge_pb2.Edge]:
        """The edges to send now: new ones, and known ones whose refresh is due at `now`. Without `now`
        (shutdown, tests) everything pending. The rest stays pending and keeps counting."""
        holder = mapper_pb2.ReportEdgesRequest()  # built in place: no standalone message per edge
        for _, p in self._choose(now):
            _fill(holder.edges.add(), p)
        return list(holder.edges)

    def _choose(self, now: float | None) -> list[tuple[_PendingKey, _Pending]]:
        chosen: list[tuple[_PendingKey, _Pending]]
        if now is None or not self.refresh:
            chosen, self._pending = list(self._pending.items()), {}
        else:
            due = now - self.refresh
            chosen = [(k, p) for k, p in self._pending.items() if self._known.get(k, (k, due))[1] <= due]
            for k, _ in chosen:
                del self._pending[k]
        if self.refresh:
            stamp = time.time() if now is None else now
            for k, _ in chosen:
                self._known.pop(k, None)  # re-insert: the dict's order is the order of last send
                self._known[k] = (k, stamp)
            while len(self._known) > self.max_known:
                del self._known[next(iter(self._known))]
        return chosen

    def take_serialized(self, now: float | None = None, *, columns: bool = False) -> list[tuple[int, bytes]]:
        """take(), serialized as the `edges` field of ReportEdgesRequests, or with `columns` as their
        `columns` field (EdgeColumns: for a mapper that reads them), the encodings of repeated fields and
        of an embedded message concatenate: chunks of at most MAX_REPORT_EDGES edges and about
        MAX_REPORT_BYTES, each (how many edges, bytes).

        Built SERIALIZE_EDGES edges at a time: as messages a batch of 10k edges weighs ~7 MiB of
        protobuf arena (and as many again when copied into requests), serialized under 2 MiB; whole,
        it set the sniffer's steady-state memory."""
        chosen = self._choose(now)
        chunks: list[tuple[int, bytes]] = []
        parts: list[bytes] = []
        count = size = 0
        budget = MAX_REPORT_BYTES - 64 * 1024  # room for the envelope and the lost events
        add = _add_column if columns else _add_edge
        for start in range(0, len(chosen), SERIALIZE_EDGES):
            holder = mapper_pb2.ReportEdgesRequest()
            for _, p in chosen[start:start + SERIALIZE_EDGES]:
                n = add(holder, p) + 8
                if count and (count >= MAX_REPORT_EDGES or size + n > budget):
                    # Full: what came before this edge is one chunk; the edge starts the next.
                    _drop_last(holder, columns)
                    parts.append(holder.SerializeToString())
                    chunks.append((count, b"".join(parts)))
                    holder, parts, count, size = mapper_pb2.ReportEdgesRequest(), [], 0, 0
                    add(holder, p)
                count += 1
                size += n
            parts.append(holder.SerializeToString())
        if count:
            chunks.append((count, b"".join(parts)))
        return chunks


def _identity(ep: Endpoint) -> _Identity:
    if ep.kind is EndpointKind.WORKLOAD and ep.workload is not None:
        return ep.workload
    return endpoint_id(ep)


def _fill(edge: edge_pb2.Edge, p: _Pending) -> None:
    _fill_key(edge, p)
    edge.count = p.count
    edge.first_seen.FromNanoseconds(int(p.first_seen * 1e9))
    edge.last_seen.FromNanoseconds(int(p.last_seen * 1e9))


def _fill_key(edge: edge_pb2.Edge, p: _Pending) -> None:
    """The fields of an EdgeColumns key: endpoints, port, protocol."""
    edge.port, edge.protocol = p.port, p.protocol
    endpoint_into(edge.client, p.client)
    endpoint_into(edge.server, p.server)
    del edge.server.dns_names[:]
    edge.server.dns_names.extend(sorted(p.dns_names or ()))


def _add_edge(holder: mapper_pb2.ReportEdgesRequest, p: _Pending) -> int:
    """Append p to holder.edges; its encoded size."""
    edge = holder.edges.add()
    _fill(edge, p)
    return edge.ByteSize()


def _add_column(holder: mapper_pb2.ReportEdgesRequest, p: _Pending) -> int:
    """Append p to holder.columns; about its encoded size (the key and three numbers)."""
    cols = holder.columns
    key = cols.keys.add()
    _fill_key(key, p)
    cols.first_seen_ns.append(int(p.first_seen * 1e9))
    cols.last_seen_ns.append(int(p.last_seen * 1e9))
    cols.counts.append(p.count)
    return key.ByteSize() + 24


def _drop_last(holder: mapper_pb2.ReportEdgesRequest, columns: bool) -> None:
    if columns:
        cols = holder.columns
        del cols.keys[-1], cols.first_seen_ns[-1], cols.last_seen_ns[-1], cols.counts[-1]
    else:
        del holder.edges[-1]
