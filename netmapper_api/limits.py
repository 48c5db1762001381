"""Message limits and names of the gRPC API that both ends must agree on."""
from __future__ import annotations

from typing import Final

# The fully qualified service name of proto/netmapper_api/v1/mapper.proto (proto package netmapper.v1).
SERVICE_NAME: Final[str] = "netmapper.v1.Mapper"
# ListEdges of 100k edges is ~20 MB and sniffer batches can be large: gRPC's default 4 MB receive
# limit would refuse both. The mapper accepts and sends up to this; its clients need the same option
# to read ListEdges (client_channel_options).
MAX_MESSAGE_BYTES: Final[int] = 256 * 1024 * 1024
# The largest ReportEdges request a sniffer sends: well below what the mapper accepts by default
# (mapper/server.py DEFAULT_MAX_RECEIVE_BYTES, 4 MiB), which bounds the mapper's memory per stream.
MAX_REPORT_BYTES: Final[int] = 2 * 1024 * 1024
# The most edges one ReportEdges request holds (the mapper refuses edges beyond its own, larger, limit).
MAX_REPORT_EDGES: Final[int] = 5000


def client_channel_options() -> list[tuple[str, int]]:
    """Channel options a client of the mapper needs to receive large ListEdges responses."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
