"""A client of the mapper's gRPC API for the CLI and the demo: one call per function, errors as one line."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import grpc

from netmapper_api.channel import ClientCredentials, CredentialError, open_channel
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc


class MapperError(Exception):
    """The mapper could not be reached or refused a call; str() names the mapper and the gRPC status."""


@contextmanager
def mapper_stub(addr: str, creds: ClientCredentials | None = None) -> Iterator[mapper_pb2_grpc.MapperStub]:
    """A stub on a fresh channel (TLS and credentials when `creds` has any); gRPC failures become
    one-line MapperErrors naming the mapper."""
    try:
        channel = open_channel(addr, creds, client_channel_options())
    except CredentialError as e:
        raise MapperError(str(e)) from e
    with channel:
        try:
            yield mapper_pb2_grpc.MapperStub(channel)
        except grpc.RpcError as e:
            details = " ".join(str(e.details()).split())
            raise MapperError(f"mapper at {addr}: {e.code().name}: {details}") from e


def list_edges(addr: str, filters: Sequence[edge_pb2.EdgeFilter] = (), timeout: float = 30.0,
               creds: ClientCredentials | None = None) -> mapper_pb2.ListEdgesResponse:
    with mapper_stub(addr, creds) as stub:
        return stub.ListEdges(mapper_pb2.ListEdgesRequest(filters=filters), timeout=timeout)


def watch_edges(addr: str, filters: Sequence[edge_pb2.EdgeFilter] = (), resume_token: str = "",
                creds: ClientCredentials | None = None) -> Iterator[mapper_pb2.WatchEdgesResponse]:
    """WatchEdges events until the caller stops iterating (or the mapper ends the stream: MapperError)."""
    with mapper_stub(addr, creds) as stub:
        stream = stub.WatchEdges(mapper_pb2.WatchEdgesRequest(filters=filters, resume_token=resume_token))
        try:
            yield from stream
        finally:
            stream.cancel()


def filters_from(namespaces: Sequence[str], server: str | None = None) -> list[edge_pb2.EdgeFilter]:
    if not namespaces and not server:
        return []
    return [edge_pb2.EdgeFilter(namespaces=list(namespaces), server=server or "")]
