"""Helpers shared by the client subcommands: talking to the mapper and turning errors into messages."""
from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import grpc

from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc

DEFAULT_MAPPER = "127.0.0.1:9090"


class CliError(Exception):
    """A failure to report to the user as one line, exit status 1."""


def add_mapper_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mapper", default=DEFAULT_MAPPER, metavar="ADDR",
                        help=f"mapper gRPC address (default {DEFAULT_MAPPER})")


def add_filter_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", "--namespaces", dest="namespaces", action="append", default=[],
                        metavar="NS", help="only edges whose client or server is in NS (repeatable)")


@contextmanager
def mapper_stub(addr: str) -> Iterator[mapper_pb2_grpc.MapperStub]:
    """A stub on a fresh channel; gRPC failures become one-line CliErrors naming the mapper."""
    with grpc.insecure_channel(addr, options=client_channel_options()) as channel:
        try:
            yield mapper_pb2_grpc.MapperStub(channel)
        except grpc.RpcError as e:
            raise CliError(f"mapper at {addr}: {e.code().name}: {e.details()}") from e  # type: ignore[attr-defined]


def list_edges(addr: str, filters: Sequence[edge_pb2.EdgeFilter] = (), timeout: float = 30.0) -> mapper_pb2.ListEdgesResponse:
    with mapper_stub(addr) as stub:
        return stub.ListEdges(mapper_pb2.ListEdgesRequest(filters=filters), timeout=timeout)


def filters_from(namespaces: Sequence[str], server: str | None = None) -> list[edge_pb2.EdgeFilter]:
    if not namespaces and not server:
        return []
    return [edge_pb2.EdgeFilter(namespaces=list(namespaces), server=server or "")]
