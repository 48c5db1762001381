"""EdgeRecord: the mutable merge state of one edge, and the merge of what one report says about it.

The merge is idempotent and commutative: replaying any report changes nothing, and reports in any
order give the same record (the store's fast path and restarts rely on both).
"""
from __future__ import annotations

from typing import Final

from netmapper_api import keys
from netmapper_api.keys import EdgeKey, EndpointAttrs

# An edge can be reported by every node that runs a pod of its client; bounded like the other unions.
MAX_REPORTING_NODES: Final[int] = 256
# Attributes remembered per record side as merged: covers a client with replicas on this many nodes.
_SEEN_MAX: Final[int] = 16


class EdgeRecord:
    """Mutable merge state of one edge. A slot class, not a frozen dataclass: it is updated in place
    for every observation, and allocating a new object per observation would halve ingest speed."""

    __slots__ = (
        "key", "first", "last", "count", "nodes", "client", "server",
        "client_seen", "server_seen", "head", "tail", "wire", "row_id", "alive", "sort_key", "version",
        "saved_head", "saved_tail", "dirty",
    )

    def __init__(self, key: EdgeKey, client: EndpointAttrs, server: EndpointAttrs, first: int, last: int) -> None:
        self.key = key
        self.sort_key = keys.sort_key(key)
        self.first = first  # ns since the epoch
        self.last = last
        self.count = 0
        self.nodes: tuple[str, ...] = ()
        self.client = client
        self.server = server
        # Attributes merged lately (newest first, interned objects): merging one again changes nothing.
        self.client_seen: tuple[EndpointAttrs, ...] = ()
        self.server_seen: tuple[EndpointAttrs, ...] = ()
        # Serialization caches: head = fields 1-4 (endpoints, port, protocol), tail = field 8 (nodes),
        # wire = the whole Edge. None means stale.
        self.head: bytes | None = None
        self.tail: bytes | None = None
        self.wire: bytes | None = None
        self.row_id = 0  # sqlite row, 0 without a file
        # The head and tail objects in the row last written whole: while head and tail are still these
        # very objects, only first/last/count changed and a checkpoint updates just those.
        self.saved_head: bytes | None = None
        self.saved_tail: bytes | None = None
        self.alive = True  # False once reset/expired: sorting and a retried flush skip it
        self.version = 0  # the store's change counter at this record's last change (WatchEdges resume)
        self.dirty = False  # changed since the last checkpoint (then it is in the store's dirty list)


def _smallest(cur: str, new: str) -> str:
    """The smaller non-empty value: an order-independent choice of one example."""
    return new if new and (not cur or new < cur) else cur


def merge_side(rec: EdgeRecord, client_side: bool, attrs: EndpointAttrs) -> None:
    """Merge one report's attributes into a record side and remember them as merged."""
    if client_side:
        merged = merge_attrs(rec.client, attrs)
        if merged is not rec.client:
            rec.client = merged
            rec.head = None
        rec.client_seen = (attrs, *rec.client_seen[: _SEEN_MAX - 1])
    else:
        merged = merge_attrs(rec.server, attrs)
        if merged is not rec.server:
            rec.server = merged
            rec.head = None
        rec.server_seen = (attrs, *rec.server_seen[: _SEEN_MAX - 1])


def merge_attrs(cur: EndpointAttrs, new: EndpointAttrs) -> EndpointAttrs:
    """Idempotent, commutative merge: replaying any report changes nothing (the fast path relies on it)."""
    pod, labels = keys.merge_example(cur.pod, cur.labels, new.pod, new.labels)
    ip = _smallest(cur.ip, new.ip)
    services = keys.bounded_union(cur.services, new.services, keys.MAX_SERVICES)
    dns = keys.bounded_union(cur.dns_names, new.dns_names, keys.MAX_DNS_NAMES)
    if pod == cur.pod and labels is cur.labels and ip == cur.ip and services is cur.services and dns is cur.dns_names:
        return cur
    return EndpointAttrs(pod=pod, ip=ip, services=services, dns_names=dns, labels=labels)


def record_sort_key(rec: EdgeRecord) -> str:
    return rec.sort_key
