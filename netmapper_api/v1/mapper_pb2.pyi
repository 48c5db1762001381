from netmapper_api.v1 import edge_pb2 as _edge_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportEdgesRequest(_message.Message):
    __slots__ = ("node", "sequence", "edges", "lost")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    node: str
    sequence: int
    edges: _containers.RepeatedCompositeFieldContainer[_edge_pb2.Edge]
    lost: _containers.RepeatedCompositeFieldContainer[_edge_pb2.LostEvents]
    def __init__(self, node: _Optional[str] = ..., sequence: _Optional[int] = ..., edges: _Optional[_Iterable[_Union[_edge_pb2.Edge, _Mapping]]] = ..., lost: _Optional[_Iterable[_Union[_edge_pb2.LostEvents, _Mapping]]] = ...) -> None: ...

class ReportEdgesResponse(_message.Message):
    __slots__ = ("sequence", "accepted", "rejected", "error")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    accepted: int
    rejected: int
    error: str
    def __init__(self, sequence: _Optional[int] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ListEdgesRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[_edge_pb2.EdgeFilter]
    def __init__(self, filters: _Optional[_Iterable[_Union[_edge_pb2.EdgeFilter, _Mapping]]] = ...) -> None: ...

class ListEdgesResponse(_message.Message):
    __slots__ = ("edges", "lost")
    EDGES_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedCompositeFieldContainer[_edge_pb2.Edge]
    lost: _containers.RepeatedCompositeFieldContainer[_edge_pb2.LostEvents]
    def __init__(self, edges: _Optional[_Iterable[_Union[_edge_pb2.Edge, _Mapping]]] = ..., lost: _Optional[_Iterable[_Union[_edge_pb2.LostEvents, _Mapping]]] = ...) -> None: ...

class ResetEdgesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetEdgesResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...
