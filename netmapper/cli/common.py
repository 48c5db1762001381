"""Flags shared by the client subcommands and the error they report as one line."""
from __future__ import annotations

import argparse

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
