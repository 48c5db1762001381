"""Read-only views of a ReportEdgesRequest for the ingest hot path: its header, and its edges with the
endpoints as wire bytes.

The header view (node, sequence, instance, lost events as bytes) is what the server reads of every batch:
the edges are skipped there, in C, and parsed once, by the store, through the edge view.

The view is a second protobuf schema for the same wire format (field numbers and wire types of
edge.proto's Edge, with `client` and `server` declared as bytes). Parsing a batch with it hands the
merge each endpoint's serialized bytes straight from the wire, so the store keys its endpoint cache
by them without building an Endpoint message and serializing it again (two of the largest per-edge
costs). Endpoints are only parsed as messages when their bytes were not seen before.

One difference from a full parse: an endpoint sent as several occurrences of its field (legal
protobuf that no encoder produces; a full parse merges them) is read as its last occurrence. The
store then validates, stores and reports exactly that occurrence, so nothing unchecked gets in.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "netmapper_ingest_view"


class TimeView(Protocol):
    seconds: int
    nanos: int


class EdgeView(Protocol):
    """edge.proto Edge fields 1-7, endpoints as their serialized bytes."""

    client: bytes
    server: bytes
    port: int
    protocol: int
    first_seen: TimeView
    last_seen: TimeView
    count: int

    def SerializeToString(self) -> bytes: ...  # noqa: N802 - protobuf's name


class ColumnsView(Protocol):
    """mapper.proto EdgeColumns, each key as its serialized bytes (a dict key as it comes)."""

    keys: Sequence[bytes]
    first_seen_ns: Sequence[int]
    last_seen_ns: Sequence[int]
    counts: Sequence[int]


class _ReportView(Protocol):
    edges: Sequence[EdgeView]
    columns: ColumnsView

    def HasField(self, name: str) -> bool: ...  # noqa: N802 - protobuf's name


class _EdgeViewClass(Protocol):
    def FromString(self, raw: bytes) -> EdgeView: ...  # noqa: N802 - protobuf's name


class _ReportViewClass(Protocol):
    def FromString(self, raw: bytes) -> _ReportView: ...  # noqa: N802 - protobuf's name


class ReportHeader(Protocol):
    """ReportEdgesRequest fields 1, 2, 4, 5; the edges (field 3) are not parsed."""

    node: str
    sequence: int
    lost: Sequence[bytes]  # serialized LostEvents
    instance: str


class _ReportHeaderClass(Protocol):
    def FromString(self, raw: bytes) -> ReportHeader: ...  # noqa: N802 - protobuf's name


def _build() -> tuple[_ReportViewClass, _ReportHeaderClass, _EdgeViewClass]:
    fd = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}.proto", package=_PACKAGE, syntax="proto3")
    field = descriptor_pb2.FieldDescriptorProto

    def add(msg: descriptor_pb2.DescriptorProto, name: str, number: int, kind: int, type_name: str = "",
            repeated: bool = False) -> None:
        f = msg.field.add(name=name, number=number, type=kind,
                          label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL)
        if type_name:
            f.type_name = f".{_PACKAGE}.{type_name}"

    ts = fd.message_type.add(name="TimeView")  # google.protobuf.Timestamp's wire format
    add(ts, "seconds", 1, field.TYPE_INT64)
    add(ts, "nanos", 2, field.TYPE_INT32)
    edge = fd.message_type.add(name="EdgeView")
    add(edge, "client", 1, field.TYPE_BYTES)
    add(edge, "server", 2, field.TYPE_BYTES)
    add(edge, "port", 3, field.TYPE_UINT32)
    add(edge, "protocol", 4, field.TYPE_INT32)  # an enum on the wire is an int32
    add(edge, "first_seen", 5, field.TYPE_MESSAGE, "TimeView")
    add(edge, "last_seen", 6, field.TYPE_MESSAGE, "TimeView")
    add(edge, "count", 7, field.TYPE_UINT64)
    # Other Edge fields (reporting_nodes) and other request fields are unknown fields here: skipped.
    columns = fd.message_type.add(name="ColumnsView")  # EdgeColumns, its keys as bytes
    add(columns, "keys", 1, field.TYPE_BYTES, repeated=True)
    add(columns, "first_seen_ns", 2, field.TYPE_INT64, repeated=True)
    add(columns, "last_seen_ns", 3, field.TYPE_INT64, repeated=True)
    add(columns, "counts", 4, field.TYPE_UINT64, repeated=True)
    report = fd.message_type.add(name="ReportView")
    add(report, "edges", 3, field.TYPE_MESSAGE, "EdgeView", repeated=True)  # ReportEdgesRequest.edges
    add(report, "columns", 6, field.TYPE_MESSAGE, "ColumnsView")  # ReportEdgesRequest.columns
    header = fd.message_type.add(name="ReportHeader")
    add(header, "node", 1, field.TYPE_STRING)
    add(header, "sequence", 2, field.TYPE_UINT64)
    add(header, "lost", 4, field.TYPE_BYTES, repeated=True)
    add(header, "instance", 5, field.TYPE_STRING)
    pool = descriptor_pool.DescriptorPool()  # private: nothing else sees these names
    pool.Add(fd)

    def cls(name: str) -> object:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))

    return (cast(_ReportViewClass, cls("ReportView")), cast(_ReportHeaderClass, cls("ReportHeader")),
            cast(_EdgeViewClass, cls("EdgeView")))


_REPORT_VIEW, _REPORT_HEADER, _EDGE_VIEW = _build()


def report_header(raw_request: bytes) -> ReportHeader:
    """The header of a serialized ReportEdgesRequest. Raises DecodeError like FromString."""
    return _REPORT_HEADER.FromString(raw_request)


def edge_views(raw_request: bytes) -> Sequence[EdgeView]:
    """The edges of a serialized ReportEdgesRequest as views. Raises DecodeError like FromString."""
    return _REPORT_VIEW.FromString(raw_request).edges


def report_views(raw_request: bytes) -> tuple[Sequence[EdgeView], ColumnsView | None]:
    """The edges and the columns (None when absent) of a serialized ReportEdgesRequest."""
    view = _REPORT_VIEW.FromString(raw_request)
    return view.edges, (view.columns if view.HasField("columns") else None)


def key_view(raw_key: bytes) -> EdgeView:
    """A key of EdgeColumns (a serialized Edge) as a view. Raises DecodeError like FromString."""
    return _EDGE_VIEW.FromString(raw_key)
