"""`netmapper visualize`: draw the observed calls (coloured by coverage with --intents) to SVG, PNG or DOT."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import graphviz

from netmapper.cli.common import CliError, add_filter_flags, add_mapper_flag
from netmapper.client import filters_from, list_edges
from netmapper.cli.diff import add_intents_source_flags, load_declared
from netmapper.graph import OUTPUT_FORMATS, build_graph, render_graph


def add_parser(sub: Any) -> None:
    p = sub.add_parser("visualize", help="draw who calls whom (SVG, PNG or DOT); with intents, in colour by coverage")
    add_mapper_flag(p)
    add_filter_flags(p)
    add_intents_source_flags(p, required=False)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.svg|.png|.dot",
                   help="output file; its suffix chooses the format")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fmt = args.output.suffix.lstrip(".").lower()
    if fmt not in OUTPUT_FORMATS:
        raise CliError(f"-o {args.output}: the file name must end in .svg, .png or .dot")
    if args.kubeconfig is not None and not args.from_cluster:
        raise CliError("--kubeconfig goes with --from-cluster")
    declared = load_declared(args).intents if (args.intents or args.from_cluster) else None
    edges = list_edges(args.mapper, filters_from(args.namespaces)).edges
    graph = build_graph(edges, declared, namespaces=args.namespaces)
    try:
        data = render_graph(graph, fmt)
    except graphviz.ExecutableNotFound as e:
        raise CliError("Graphviz `dot` is not installed (Debian: apt-get install graphviz)") from e
    except graphviz.CalledProcessError as e:
        raise CliError(f"Graphviz failed: {e}") from e
    try:
        if args.output.parent != Path(""):
            args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(data)
    except OSError as e:
        raise CliError(f"-o {args.output}: {e}") from e
    print(f"wrote {args.output} ({len(edges)} calls)", file=sys.stderr)
    return 0
