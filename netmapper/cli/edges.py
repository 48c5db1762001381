"""`netmapper edges`: print the mapper's current edge list as a table or JSON."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict

from netmapper.cli.common import add_filter_flags, add_mapper_flag, client_credentials, filters_from, list_edges
from netmapper.v1 import edge_pb2


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


def endpoint_label(ep: edge_pb2.Endpoint) -> str:
    """How a person reads an endpoint: ns/name (Kind) [via svc] or the IP with its names."""
    names = f" ({', '.join(ep.dns_names)})" if ep.dns_names else ""
    if ep.kind == edge_pb2.ENDPOINT_KIND_WORKLOAD:
        via = f" via svc/{ep.service.name}" if ep.service.name else ""
        return f"{ep.workload.namespace}/{ep.workload.name} ({ep.workload.kind}){via}{names}"
    if ep.kind == edge_pb2.ENDPOINT_KIND_SERVICE:
        return f"{ep.service.namespace}/svc/{ep.service.name}{names}"
    if ep.kind == edge_pb2.ENDPOINT_KIND_NODE:
        return f"node/{ep.node}"
    if ep.kind == edge_pb2.ENDPOINT_KIND_INTERNET:
        return f"internet {ep.ip}{names}"
    return f"unresolved {ep.ip}{names}"


def render_table(edges: Sequence[edge_pb2.Edge]) -> str:
    header = ("CLIENT", "SERVER", "PORT", "COUNT", "LAST SEEN", "NODES")
    rows = [header]
    for e in edges:
        rows.append((endpoint_label(e.client), endpoint_label(e.server),
                     f"{edge_pb2.Protocol.Name(e.protocol).removeprefix('PROTOCOL_')}/{e.port}",
                     str(e.count), e.last_seen.ToDatetime().strftime("%H:%M:%S"),
                     ",".join(e.reporting_nodes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if not edges:
        lines.append("(no edges)")
    return "\n".join(lines)
