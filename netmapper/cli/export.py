"""`netmapper export`: the mapper's edges as Otterize ClientIntents (YAML or JSON, file or dir)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from netmapper.intents.crd import ClientIntentsValidator
from netmapper.intents.distinct import client_label_values, distinct_by_label
from netmapper.intents.export import ExportOptions, export_intents
from netmapper.intents.output import render, write_intents
from netmapper.cli.common import (CliError, add_filter_flags, add_label_flags, add_mapper_flag, client_credentials,
                                  edge_filter)
from netmapper.client import list_edges


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export ClientIntents for the observed calls")
    add_mapper_flag(p)
    add_filter_flags(p)
    p.add_argument("--server", default="", metavar="NAME.NS", help="only intents that call this server")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml")
    p.add_argument("--output-version", choices=("v2beta1", "v1alpha3"), default="v2beta1")
    p.add_argument("-o", "--output", default=None, metavar="PATH", help="write here instead of stdout")
    p.add_argument("--output-type", choices=("single-file", "dir"), default="single-file",
                   help="with -o: one file, or one file per client in a directory")
    p.add_argument("--service-targets", action="store_true",
                   help="name the Service a call went through (service: targets) instead of its workload")
    p.add_argument("--exclude-services", nargs="+", default=[], metavar="NAME[.NS]",
                   help="leave these out as clients and as targets")
    add_label_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = ExportOptions(namespaces=tuple(args.namespaces), server=args.server,
                            output_version=args.output_version, include_service_targets=args.service_targets,
                            exclude_services=tuple(args.exclude_services))
    # -n selects clients (Otterize's meaning), so it is applied by the export, not by the mapper's filter.
    edges = list(list_edges(args.mapper, edge_filter(args), creds=client_credentials(args)).edges)
    result = export_intents(edges, options)
    documents = result.documents
    if args.distinct_by_label:
        documents, warnings = distinct_by_label(documents, client_label_values(edges, args.distinct_by_label))
        for warning in warnings:
            print(f"netmapper export: warning: {warning}", file=sys.stderr)
    validator = ClientIntentsValidator()
    for doc in documents:
        errors = validator.errors(doc)
        if errors:  # a bug of ours, never the user's: refuse to hand out YAML the cluster would reject
            raise CliError(f"exported {doc['metadata']['namespace']}/{doc['metadata']['name']} is invalid: {errors}")
    for skipped in result.skipped:
        print(f"netmapper export: not exportable: {skipped.describe()}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(render(documents, args.format))
    else:
        files = write_intents(documents, args.output, output_type=args.output_type, fmt=args.format)
        print(f"wrote {len(documents)} ClientIntents to {', '.join(map(str, files[:3]))}"
              f"{' ...' if len(files) > 3 else ''}", file=sys.stderr)
    return 0
