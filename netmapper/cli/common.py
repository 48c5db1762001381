"""Flags shared by the client subcommands and the error they report as one line."""
from __future__ import annotations

import argparse

DEFAULT_MAPPER = "127.0.0.1:9090"


class CliError(Exception):
    """A failure to report to the user as one line, exit status 1."""


def add_mapper_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mapper", default=DEFAULT_MAPPER, metavar="ADDR",
                        help=f"mapper gRPC address (default {DEFAULT_MAPPER})")


def add_filter_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", "--namespaces", dest="namespaces", action="append", default=[],
                        metavar="NS", help="only edges whose client or server is in NS (repeatable)")
