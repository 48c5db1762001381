"""Flags shared by the client subcommands and the error they report as one line."""
from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence

from netmapper_api.v1 import edge_pb2

from netmapper_api.channel import ClientCredentials, CredentialError, add_credential_flags, credentials_from_args

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


def add_label_flags(parser: argparse.ArgumentParser) -> None:
    """Otterize CLI parity: --exclude-labels and --distinct-by-label (edges carry the pods' labels)."""
    parser.add_argument("--exclude-labels", action="append", default=[], metavar="K=V[,K=V]",
                        help="leave out edges whose client or server pod has any of these labels (K alone: any value)")
    parser.add_argument("--label", dest="labels", action="append", default=[], metavar="K[=V]",
                        help="only edges whose client or server pod has every one of these labels (repeatable)")
    parser.add_argument("--distinct-by-label", default=None, metavar="KEY",
                        help="tell clients apart by this pod label instead of by namespace (copies of one app in "
                             "several namespaces collapse into one)")


def add_query_flags(parser: argparse.ArgumentParser) -> None:
    """Filters the mapper applies (ListEdges): each side's namespace, recency."""
    parser.add_argument("--client-namespace", action="append", default=[], metavar="NS",
                        help="only edges whose client is in NS (repeatable)")
    parser.add_argument("--server-namespace", action="append", default=[], metavar="NS",
                        help="only edges whose server is in NS (repeatable)")
    parser.add_argument("--since", default=None, metavar="DURATION",
                        help="only edges seen within DURATION (e.g. 90s, 15m, 2h, 7d)")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in "90", "90s", "15m", "2h", "7d"; raises CliError with the accepted forms."""
    m = _DURATION.match(text)
    if m is None:
        raise CliError(f"invalid duration {text!r}: use a number with s, m, h or d (e.g. 15m)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for arg in values for v in arg.split(",") if v.strip()]


def edge_filter(args: argparse.Namespace, *, namespaces: Sequence[str] = ()) -> list[edge_pb2.EdgeFilter]:
    """The one EdgeFilter the flags describe ([] when none are set)."""
    f = edge_pb2.EdgeFilter(namespaces=list(namespaces),
                            client_namespaces=list(getattr(args, "client_namespace", []) or []),
                            server_namespaces=list(getattr(args, "server_namespace", []) or []),
                            labels=_split(getattr(args, "labels", []) or []),
                            exclude_labels=_split(getattr(args, "exclude_labels", []) or []))
    since = getattr(args, "since", None)
    if since:
        f.seen_since.FromNanoseconds(int((time.time() - parse_duration(since)) * 1e9))
    return [f] if f.ByteSize() else []
