"""ListEdges/WatchEdges filters: which merged edges a query asks for. Pure, no I/O.

Every store (SQLite EdgeStore, PgEdgeStore) keeps its edges as rows with an identity key and merged
attributes (the Row protocol); this module says which rows a list of EdgeFilters selects (edge.proto:
fields in one filter AND, filters OR, an unset field matches all).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from netmapper_api import keys
from netmapper_api.keys import EdgeKey, EndpointAttrs, EndpointId
from netmapper_api.v1 import edge_pb2

NS_PER_S: Final[int] = 1_000_000_000


class Row(Protocol):
    """What a filter reads of a stored edge."""

    @property
    def key(self) -> EdgeKey: ...
    @property
    def sort_key(self) -> str: ...
    @property
    def client(self) -> EndpointAttrs: ...
    @property
    def server(self) -> EndpointAttrs: ...
    @property
    def last(self) -> int: ...  # last seen, ns since the epoch


class InvalidQuery(ValueError):
    """A filter or page token the mapper cannot use; str() is the reason (INVALID_ARGUMENT)."""


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


LabelTest = tuple[str, str | None]
"""(key, value) a label must have; value None means "present with any value"."""


def parse_label(text: str) -> LabelTest:
    """"key=value" or "key"; raises InvalidQuery for an empty key."""
    key, sep, value = text.strip().partition("=")
    key = key.strip()
    if not key:
        raise InvalidQuery(f"label selector {text!r} has no key (use key=value or key)")
    return (key, value.strip() if sep else None)


def _has_label(labels: tuple[tuple[str, str], ...], test: LabelTest) -> bool:
    key, value = test
    return any(k == key and (value is None or v == value) for k, v in labels)


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """One EdgeFilter, parsed once per query."""

    namespaces: frozenset[str]
    client_namespaces: frozenset[str]
    server_namespaces: frozenset[str]
    client: str
    server: str
    seen_since: int  # ns; 0 = unset
    labels: tuple[LabelTest, ...]
    exclude_labels: tuple[LabelTest, ...]

    def matches(self, row: Row) -> bool:
        client_id, server_id = row.key[0], row.key[1]
        if self.namespaces and not (
            keys.namespace_of(client_id) in self.namespaces or keys.namespace_of(server_id) in self.namespaces
        ):
            return False
        if self.client_namespaces and keys.namespace_of(client_id) not in self.client_namespaces:
            return False
        if self.server_namespaces and keys.namespace_of(server_id) not in self.server_namespaces:
            return False
        if self.seen_since and row.last < self.seen_since:
            return False
        if self.client and not _matches_name(client_id, row.client, self.client):
            return False
        if self.server and not _matches_name(server_id, row.server, self.server):
            return False
        if self.labels:
            cl, sl = row.client.labels, row.server.labels
            if not (all(_has_label(cl, t) for t in self.labels) or all(_has_label(sl, t) for t in self.labels)):
                return False
        if self.exclude_labels:
            cl, sl = row.client.labels, row.server.labels
            if any(_has_label(cl, t) or _has_label(sl, t) for t in self.exclude_labels):
                return False
        return True


def compile_filters(filters: Sequence[edge_pb2.EdgeFilter]) -> list[CompiledFilter]:
    """Parse filters once; raises InvalidQuery naming the bad selector."""
    out = []
    for f in filters:
        since = f.seen_since.seconds * NS_PER_S + f.seen_since.nanos if f.HasField("seen_since") else 0
        out.append(CompiledFilter(
            namespaces=frozenset(f.namespaces),
            client_namespaces=frozenset(f.client_namespaces),
            server_namespaces=frozenset(f.server_namespaces),
            client=f.client.strip(),
            server=f.server.strip(),
            seen_since=since,
            labels=tuple(parse_label(t) for t in f.labels),
            exclude_labels=tuple(parse_label(t) for t in f.exclude_labels),
        ))
    return out


def selects(compiled: Sequence[CompiledFilter], row: Row) -> bool:
    """True when no filters are given or any of them matches."""
    return not compiled or any(f.matches(row) for f in compiled)
