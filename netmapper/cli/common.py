"""Helpers shared by the client subcommands: talking to the mapper and turning errors into messages."""
from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import grpc

from mapper.server import client_channel_options
from netmapper.channel import ClientCredentials, CredentialError, add_credential_flags, credentials_from_args, open_channel
from netmapper.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc

DEFAULT_MAPPER = "127.0.0.1:9090"


class CliError(Exception):
    """A failure to report to the user as one line, exit status 1."""


def add_mapper_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mapper", default=DEFAULT_MAPPER, metavar="ADDR",
                        help=f"mapper gRPC address (default {DEFAULT_MAPPER})")
    add_credential_flags(parser)


def client_credentials(args: argparse.Namespace) -> ClientCredentials:
    """The credential flags (and NETMAPPER_TOKEN) of a client subcommand; bad ones are a CliError."""
    try:
        return credentials_from_args(args)
    except CredentialError as e:
        raise CliError(str(e)) from e


def add_filter_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", "--namespaces", dest="namespaces", action="append", default=[],
                        metavar="NS", help="only edges whose client or server is in NS (repeatable)")


@contextmanager
def mapper_stub(addr: str, creds: ClientCredentials | None = None) -> Iterator[mapper_pb2_grpc.MapperStub]:
    """A stub on a fresh channel; gRPC failures become one-line CliErrors naming the mapper."""
    try:
        channel = open_channel(addr, creds, client_channel_options())
    except CredentialError as e:
        raise CliError(str(e)) from e
    with channel:
        try:
            yield mapper_pb2_grpc.MapperStub(channel)
        except grpc.RpcError as e:
            details = " ".join(str(e.details()).split())  # type: ignore[attr-defined]
            raise CliError(f"mapper at {addr}: {e.code().name}: {details}") from e  # type: ignore[attr-defined]


def list_edges(addr: str, filters: Sequence[edge_pb2.EdgeFilter] = (), timeout: float = 30.0,
               creds: ClientCredentials | None = None) -> mapper_pb2.ListEdgesResponse:
    with mapper_stub(addr, creds) as stub:
        return stub.ListEdges(mapper_pb2.ListEdgesRequest(filters=filters), timeout=timeout)


def filters_from(namespaces: Sequence[str], server: str | None = None) -> list[edge_pb2.EdgeFilter]:
    if not namespaces and not server:
        return []
    return [edge_pb2.EdgeFilter(namespaces=list(namespaces), server=server or "")]
