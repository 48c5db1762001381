"""Domain records -> netmapper.v1 messages, as the sniffer reports them."""
from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from netmapper_api.endpoints import Endpoint
from netmapper_api.loss import LossSource
from netmapper_api.v1 import edge_pb2


def timestamp(seconds: float) -> Timestamp:
    """Wall-clock seconds as a Timestamp (nanosecond resolution)."""
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def endpoint_to_proto(ep: Endpoint) -> edge_pb2.Endpoint:
    msg = edge_pb2.Endpoint()
    endpoint_into(msg, ep)
    return msg


def endpoint_into(msg: edge_pb2.Endpoint, ep: Endpoint) -> None:
    """Fill an (empty) Endpoint message in place, e.g. a field of an Edge inside a request: a
    standalone message per endpoint, copied in afterwards, costs its own arena (~0.5 KB each)."""
    msg.kind, msg.ip = ep.kind.value, ep.ip
    msg.dns_names.extend(sorted(ep.dns_names))
    if ep.workload is not None:
        msg.workload.name, msg.workload.kind, msg.workload.namespace = (
            ep.workload.name, ep.workload.kind, ep.workload.namespace)
    if ep.service is not None:
        msg.service.name, msg.service.namespace = ep.service.name, ep.service.namespace
    if ep.pod:
        msg.pod = ep.pod
    if ep.node:
        msg.node = ep.node
    if ep.labels:
        msg.labels.update(ep.labels)


def lost_events_to_proto(source: LossSource, count: int, first: float, last: float) -> edge_pb2.LostEvents:
    """`count` observations lost at `source` between `first` and `last` (wall-clock seconds)."""
    return edge_pb2.LostEvents(source=source.value, count=count, first=timestamp(first), last=timestamp(last))
