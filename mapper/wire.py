"""The hand-written protobuf encoder behind ListEdges: edges assembled from cached serialized parts.

ListEdges of 100k edges must take well under a second; building 100k Edge protos field by field
takes longer than that, so the response is assembled from cached serialized parts plus the few
fields that change on every merge. Field numbers are those of edge.proto (first_seen = 5,
last_seen = 6, count = 7); the output is the canonical serialization, which tests check against
protobuf's own.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, TypeVar

from google.protobuf import timestamp_pb2

from mapper.paging import encode_page_token
from mapper.record import EdgeRecord
from netmapper_api import keys
from netmapper_api.keys import EndpointAttrs, EndpointId
from netmapper_api.v1 import edge_pb2, mapper_pb2

T = TypeVar("T")

NS_PER_S: Final[int] = 1_000_000_000
_SMALL_VARINTS: Final[tuple[bytes, ...]] = tuple(bytes([i]) for i in range(128))


def varint(n: int) -> bytes:
    # Unrolled for the sizes that occur (ports, counts, nanoseconds, epoch seconds): ~30% faster than a loop.
    if n < 0x80:
        return _SMALL_VARINTS[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    if n < 0x10000000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21))
    if n < 0x800000000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80, n >> 28))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def timestamp_field(tag: bytes, ns: int) -> bytes:
    seconds, nanos = divmod(ns, NS_PER_S)
    body = (b"\x08" + varint(seconds) if seconds else b"") + (b"\x10" + varint(nanos) if nanos else b"")
    return tag + varint(len(body)) + body


TAG_FIRST_SEEN: Final[bytes] = b"\x2a"  # field 5, length-delimited
TAG_LAST_SEEN: Final[bytes] = b"\x32"  # field 6, length-delimited
TAG_COUNT: Final[bytes] = b"\x38"  # field 7, varint
TAG_RESPONSE_EDGE: Final[bytes] = b"\x0a"  # ListEdgesResponse.edges, field 1
TAG_CLIENT: Final[bytes] = b"\x0a"  # Edge.client, field 1
TAG_SERVER: Final[bytes] = b"\x12"  # Edge.server, field 2
TAG_PORT: Final[bytes] = b"\x18"  # Edge.port, field 3, varint
TAG_PROTOCOL: Final[bytes] = b"\x20"  # Edge.protocol, field 4, varint


def timestamp(ns: int) -> timestamp_pb2.Timestamp:
    seconds, nanos = divmod(ns, NS_PER_S)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


class EdgeEncoder:
    """Serializes records as netmapper.v1.Edge, caching each distinct endpoint's bytes.

    Many edges share a client, so ListEdges after a large ingest serializes each distinct endpoint
    once. Only a cache; cleared when it outgrows the records it serves. Callers hold the store's lock.
    """

    def __init__(self) -> None:
        self._endpoint_wire: dict[tuple[EndpointId, EndpointAttrs], bytes] = {}
        # Field 8 (reporting nodes) by its tuple: records share a few sets of nodes, and a checkpoint of
        # 100k new edges serialized one Edge per record for it, holding the store's lock for ~1 s.
        self._nodes_wire: dict[tuple[str, ...], bytes] = {}

    def clear(self) -> None:
        self._endpoint_wire.clear()
        self._nodes_wire.clear()

    def tail(self, rec: EdgeRecord) -> bytes:
        """Field 8 of the serialized Edge (the reporting nodes), cached in rec.tail until they change."""
        tail = self._nodes_wire.get(rec.nodes)
        if tail is None:
            if len(self._nodes_wire) > 10_000:
                self._nodes_wire.clear()
            tail = self._nodes_wire[rec.nodes] = edge_pb2.Edge(reporting_nodes=rec.nodes).SerializeToString()
        rec.tail = tail
        return tail

    def endpoint_bytes(self, identity: EndpointId, attrs: EndpointAttrs, records: int) -> bytes:
        cache_key = (identity, attrs)
        wire = self._endpoint_wire.get(cache_key)
        if wire is None:
            if len(self._endpoint_wire) > 2 * records + 10_000:
                self._endpoint_wire.clear()
            wire = self._endpoint_wire[cache_key] = keys.endpoint_message(identity, attrs).SerializeToString()
        return wire

    def head(self, rec: EdgeRecord, records: int) -> bytes:
        """Fields 1-4 of the serialized Edge (endpoints, port, protocol), cached until attributes change."""
        head = rec.head
        if head is None:
            client_id, server_id, port, protocol = rec.key
            cw = self.endpoint_bytes(client_id, rec.client, records)
            sw = self.endpoint_bytes(server_id, rec.server, records)
            head = rec.head = b"%b%b%b%b%b%b%b%b%b%b" % (
                TAG_CLIENT, varint(len(cw)), cw, TAG_SERVER, varint(len(sw)), sw,
                TAG_PORT, varint(port), TAG_PROTOCOL, varint(protocol),
            )
        return head

    def parts(self, rec: EdgeRecord, records: int) -> tuple[bytes, bytes, int, int, int]:
        """(head, tail, first, last, count) of a record: a consistent snapshot to take under the store's
        lock for a checkpoint (the file keeps head + tail as the blob and the numbers in columns)."""
        head = rec.head
        if head is None:
            head = self.head(rec, records)
        tail = rec.tail
        if tail is None:
            tail = self.tail(rec)
        return head, tail, rec.first, rec.last, rec.count

    def edge_bytes(self, rec: EdgeRecord, records: int) -> bytes:
        """The whole serialized Edge of a record (cache it in rec.wire until the record changes)."""
        head = rec.head
        if head is None:
            head = self.head(rec, records)
        tail = rec.tail
        if tail is None:
            tail = self.tail(rec)
        return b"%b%b%b%b%b%b" % (
            head,
            timestamp_field(TAG_FIRST_SEEN, rec.first),
            timestamp_field(TAG_LAST_SEEN, rec.last),
            TAG_COUNT,
            varint(rec.count),
            tail,
        )


def page_of(items: Iterable[T], *, page_size: int, wire_of: Callable[[T], bytes],
            sort_key_of: Callable[[T], str]) -> tuple[list[bytes], str]:
    """The ListEdgesResponse.edges fields of up to page_size items (all of them when 0), in order, and
    the token of the next page ("" when this page is the last). Shared by the SQLite and PostgreSQL stores."""
    parts: list[bytes] = []
    last_key = ""
    for item in items:
        if page_size and len(parts) == page_size:
            return parts, encode_page_token(last_key)
        wire = wire_of(item)
        parts.append(TAG_RESPONSE_EDGE + varint(len(wire)) + wire)
        last_key = sort_key_of(item)
    return parts, ""


def list_response(parts: list[bytes], *, lost: Iterable[edge_pb2.LostEvents], next_page_token: str,
                  resume_token: str) -> bytes:
    """A serialized ListEdgesResponse: the edge fields as they are, then the rest of the message."""
    tail: bytes = mapper_pb2.ListEdgesResponse(lost=lost, next_page_token=next_page_token,
                                               resume_token=resume_token).SerializeToString()
    return b"".join(parts) + tail
