"""Where observations were lost: one enum for the sniffer's probes, its agent and the wire."""
from __future__ import annotations

import enum

from netmapper_api.v1 import edge_pb2


class LossSource(enum.IntEnum):
    """Mirrors netmapper.v1.LostSource value for value, so a member is the proto enum number."""

    UNKNOWN = edge_pb2.LOST_SOURCE_UNKNOWN
    KERNEL_MAP_FULL = edge_pb2.LOST_SOURCE_KERNEL_MAP_FULL
    RING_BUFFER = edge_pb2.LOST_SOURCE_RING_BUFFER
    SNIFFER_QUEUE = edge_pb2.LOST_SOURCE_SNIFFER_QUEUE
    WATCHER_LAGGED = edge_pb2.LOST_SOURCE_WATCHER_LAGGED  # the mapper to a slow WatchEdges client
    MAPPER_EVICTED = edge_pb2.LOST_SOURCE_MAPPER_EVICTED
