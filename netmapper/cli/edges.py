"""`netmapper edges`: print the mapper's current edge list as a table or JSON; `--watch` follows changes."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict

from netmapper.cli.common import (CliError, add_filter_flags, add_label_flags, add_mapper_flag, add_query_flags,
                                  client_credentials, edge_filter)
from netmapper.client import list_edges, watch_edges
from netmapper.edge_distinct import distinct_edges
from netmapper.edge_table import HEADER, render_table, row
from netmapper_api.v1 import edge_pb2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("edges", help="list who calls whom")
    add_mapper_flag(p)
    add_filter_flags(p)
    add_query_flags(p)
    add_label_flags(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("-w", "--watch", action="store_true",
                   help="print the current edges, then each edge as it is created or changes (Ctrl-C ends); "
                        "JSON is one object per line")
    p.set_defaults(run=run)


def watch(args: argparse.Namespace) -> int:
    """Follow WatchEdges: one line per edge event; what the mapper says about gaps goes to stderr."""
    if args.format == "table":
        print("  ".join(HEADER), flush=True)
    for event in watch_edges(args.mapper, edge_filter(args, namespaces=args.namespaces),
                             creds=client_credentials(args)):
        kind = event.WhichOneof("event")
        if kind == "edge":
            if args.format == "json":
                print(json.dumps(MessageToDict(event.edge)), flush=True)
            else:
                print("  ".join(row(event.edge)), flush=True)
        elif kind == "synced":
            print(f"netmapper edges: {event.synced.edges} edges so far; watching", file=sys.stderr, flush=True)
        elif kind == "lost":
            print(f"netmapper edges: warning: fell behind, {event.lost.count} changes not shown one by one; "
                  "the edges changed meanwhile follow", file=sys.stderr, flush=True)
        elif kind == "forgotten":
            print(f"netmapper edges: edges were forgotten ({event.forgotten.reason}); the current set follows",
                  file=sys.stderr, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.watch:
        if args.distinct_by_label:
            raise CliError("--distinct-by-label needs the whole list; it cannot be combined with --watch")
        return watch(args)
    resp = list_edges(args.mapper, edge_filter(args, namespaces=args.namespaces), creds=client_credentials(args))
    edges = list(resp.edges)
    if args.distinct_by_label:
        edges = distinct_edges(edges, args.distinct_by_label)
    if args.format == "json":
        print(json.dumps([MessageToDict(e) for e in edges], indent=2))
    else:
        print(render_table(edges))
        for lost in resp.lost:
            print(f"warning: {lost.count} observations lost ({edge_pb2.LostSource.Name(lost.source)})",
                  file=sys.stderr)
    return 0
