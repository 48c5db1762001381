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
    __slots__ = ("filters", "page_size", "page_token")
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[_edge_pb2.EdgeFilter]
    page_size: int
    page_token: str
    def __init__(self, filters: _Optional[_Iterable[_Union[_edge_pb2.EdgeFilter, _Mapping]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEdgesResponse(_message.Message):
    __slots__ = ("edges", "lost", "next_page_token", "resume_token")
    EDGES_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedCompositeFieldContainer[_edge_pb2.Edge]
    lost: _containers.RepeatedCompositeFieldContainer[_edge_pb2.LostEvents]
    next_page_token: str
    resume_token: str
    def __init__(self, edges: _Optional[_Iterable[_Union[_edge_pb2.Edge, _Mapping]]] = ..., lost: _Optional[_Iterable[_Union[_edge_pb2.LostEvents, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., resume_token: _Optional[str] = ...) -> None: ...

class WatchEdgesRequest(_message.Message):
    __slots__ = ("filters", "resume_token")
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[_edge_pb2.EdgeFilter]
    resume_token: str
    def __init__(self, filters: _Optional[_Iterable[_Union[_edge_pb2.EdgeFilter, _Mapping]]] = ..., resume_token: _Optional[str] = ...) -> None: ...

class WatchSynced(_message.Message):
    __slots__ = ("edges",)
    EDGES_FIELD_NUMBER: _ClassVar[int]
    edges: int
    def __init__(self, edges: _Optional[int] = ...) -> None: ...

class WatchForgotten(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class WatchEdgesResponse(_message.Message):
    __slots__ = ("edge", "synced", "lost", "forgotten", "resume_token")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    FORGOTTEN_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    edge: _edge_pb2.Edge
    synced: WatchSynced
    lost: _edge_pb2.LostEvents
    forgotten: WatchForgotten
    resume_token: str
    def __init__(self, edge: _Optional[_Union[_edge_pb2.Edge, _Mapping]] = ..., synced: _Optional[_Union[WatchSynced, _Mapping]] = ..., lost: _Optional[_Union[_edge_pb2.LostEvents, _Mapping]] = ..., forgotten: _Optional[_Union[WatchForgotten, _Mapping]] = ..., resume_token: _Optional[str] = ...) -> None: ...

class ResetEdgesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetEdgesResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...
