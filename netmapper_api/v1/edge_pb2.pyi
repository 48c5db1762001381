import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_UNKNOWN: _ClassVar[Protocol]
    PROTOCOL_TCP: _ClassVar[Protocol]
    PROTOCOL_UDP: _ClassVar[Protocol]

class EndpointKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_KIND_UNKNOWN: _ClassVar[EndpointKind]
    ENDPOINT_KIND_WORKLOAD: _ClassVar[EndpointKind]
    ENDPOINT_KIND_SERVICE: _ClassVar[EndpointKind]
    ENDPOINT_KIND_NODE: _ClassVar[EndpointKind]
    ENDPOINT_KIND_INTERNET: _ClassVar[EndpointKind]
    ENDPOINT_KIND_UNRESOLVED: _ClassVar[EndpointKind]

class LostSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOST_SOURCE_UNKNOWN: _ClassVar[LostSource]
    LOST_SOURCE_KERNEL_MAP_FULL: _ClassVar[LostSource]
    LOST_SOURCE_RING_BUFFER: _ClassVar[LostSource]
    LOST_SOURCE_SNIFFER_QUEUE: _ClassVar[LostSource]
PROTOCOL_UNKNOWN: Protocol
PROTOCOL_TCP: Protocol
PROTOCOL_UDP: Protocol
ENDPOINT_KIND_UNKNOWN: EndpointKind
ENDPOINT_KIND_WORKLOAD: EndpointKind
ENDPOINT_KIND_SERVICE: EndpointKind
ENDPOINT_KIND_NODE: EndpointKind
ENDPOINT_KIND_INTERNET: EndpointKind
ENDPOINT_KIND_UNRESOLVED: EndpointKind
LOST_SOURCE_UNKNOWN: LostSource
LOST_SOURCE_KERNEL_MAP_FULL: LostSource
LOST_SOURCE_RING_BUFFER: LostSource
LOST_SOURCE_SNIFFER_QUEUE: LostSource

class Workload(_message.Message):
    __slots__ = ("name", "kind", "namespace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    namespace: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class ServiceRef(_message.Message):
    __slots__ = ("name", "namespace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("kind", "workload", "pod", "service", "ip", "dns_names", "node")
    KIND_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    kind: EndpointKind
    workload: Workload
    pod: str
    service: ServiceRef
    ip: str
    dns_names: _containers.RepeatedScalarFieldContainer[str]
    node: str
    def __init__(self, kind: _Optional[_Union[EndpointKind, str]] = ..., workload: _Optional[_Union[Workload, _Mapping]] = ..., pod: _Optional[str] = ..., service: _Optional[_Union[ServiceRef, _Mapping]] = ..., ip: _Optional[str] = ..., dns_names: _Optional[_Iterable[str]] = ..., node: _Optional[str] = ...) -> None: ...

class Edge(_message.Message):
    __slots__ = ("client", "server", "port", "protocol", "first_seen", "last_seen", "count", "reporting_nodes")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REPORTING_NODES_FIELD_NUMBER: _ClassVar[int]
    client: Endpoint
    server: Endpoint
    port: int
    protocol: Protocol
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    count: int
    reporting_nodes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client: _Optional[_Union[Endpoint, _Mapping]] = ..., server: _Optional[_Union[Endpoint, _Mapping]] = ..., port: _Optional[int] = ..., protocol: _Optional[_Union[Protocol, str]] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ..., reporting_nodes: _Optional[_Iterable[str]] = ...) -> None: ...

class LostEvents(_message.Message):
    __slots__ = ("source", "count", "first", "last")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    source: LostSource
    count: int
    first: _timestamp_pb2.Timestamp
    last: _timestamp_pb2.Timestamp
    def __init__(self, source: _Optional[_Union[LostSource, str]] = ..., count: _Optional[int] = ..., first: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EdgeFilter(_message.Message):
    __slots__ = ("namespaces", "client", "server")
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    client: str
    server: str
    def __init__(self, namespaces: _Optional[_Iterable[str]] = ..., client: _Optional[str] = ..., server: _Optional[str] = ...) -> None: ...
