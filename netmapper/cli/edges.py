"""`netmapper edges`: print the mapper's current edge list as a table or JSON."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict

from netmapper.cli.common import add_filter_flags, add_mapper_flag, client_credentials
from netmapper.client import filters_from, list_edges
from netmapper.edge_table import render_table
from netmapper_api.v1 import edge_pb2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("edges", help="list who calls whom")
    add_mapper_flag(p)
    add_filter_flags(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    resp = list_edges(args.mapper, filters_from(args.namespaces), creds=client_credentials(args))
    if args.format == "json":
        print(json.dumps([MessageToDict(e) for e in resp.edges], indent=2))
    else:
        print(render_table(resp.edges))
        for lost in resp.lost:
            print(f"warning: {lost.count} observations lost ({edge_pb2.LostSource.Name(lost.source)})",
                  file=sys.stderr)
    return 0
