"""`netmapper diff`: the mapper's observed calls against declared ClientIntents (shadow-mode check).

Exit status: 0 when every observed call is covered, 1 when some call is not, 2 on error; a CI job can
gate on it. Documents that cannot be read are reported on stderr and skipped.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from netmapper.intents.export import ExportOptions
from netmapper.cli.common import CliError, add_mapper_flag
from netmapper.client import MapperError, list_edges
from netmapper.shadow.diff import diff
from netmapper.shadow.duration import parse_duration
from netmapper.shadow.load import kube_api_client, load_cluster, load_paths
from netmapper.shadow.model import LoadResult
from netmapper.shadow.report import FORMATS, render
from netmapper.shadow.write import write_directory

log = logging.getLogger(__name__)

EXIT_COVERED, EXIT_UNCOVERED, EXIT_ERROR = 0, 1, 2


def add_intents_source_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    """--intents PATH | --from-cluster [--kubeconfig FILE]: shared by diff and visualize."""
    source = p.add_mutually_exclusive_group(required=required)
    source.add_argument("--intents", action="append", type=Path, metavar="PATH",
                        help="ClientIntents file or directory (searched recursively); repeatable")
    source.add_argument("--from-cluster", action="store_true",
                        help="read the ClientIntents objects of the cluster (--kubeconfig or in-cluster)")
    p.add_argument("--kubeconfig", type=Path, default=None, metavar="FILE",
                   help="with --from-cluster: kubeconfig file (default: in-cluster service account)")
    p.add_argument("--default-namespace", default="", metavar="NS",
                   help="namespace of documents that leave metadata.namespace out (as `kubectl -n` would)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("diff", help="which observed calls the declared ClientIntents do not cover, and which "
                                    "declarations are unused (exit 1 when something is uncovered)")
    add_mapper_flag(p)
    add_intents_source_flags(p, required=True)
    p.add_argument("--since", default=None, metavar="DURATION",
                   help="only calls observed in this window (e.g. 24h, 7d); default: ever")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--write", type=Path, default=None, metavar="DIR",
                   help="add each uncovered target to its client's document in DIR (new file per new client)")
    p.add_argument("--prune-unused", action="store_true", help="with --write: remove unused targets")
    p.add_argument("--service-targets", action="store_true",
                   help="name the Service a call went through (service: targets), as export --service-targets")
    p.set_defaults(run=run)


def load_declared(args: argparse.Namespace) -> LoadResult:
    """The declared intents named on the command line; problems are printed as warnings."""
    if args.from_cluster:
        try:
            result = load_cluster(kube_api_client(args.kubeconfig))
        except Exception as e:  # kubernetes raises many types (config, HTTP, TLS): all are "cannot read"
            raise CliError(f"cannot read ClientIntents from the cluster: {_one_line(e)}") from e
    else:
        try:
            result = load_paths(args.intents, default_namespace=args.default_namespace)
        except OSError as e:
            raise CliError(str(e)) from e
    for problem in result.problems:
        print(f"netmapper {args.command}: skipped {problem.describe()}", file=sys.stderr)
    if not result.intents:
        where = "in the cluster" if args.from_cluster else "under " + ", ".join(map(str, args.intents))
        print(f"netmapper {args.command}: warning: no ClientIntents found {where}", file=sys.stderr)
    return result


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (CliError, MapperError) as e:
        print(f"netmapper diff: {e}", file=sys.stderr)
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    if args.prune_unused and args.write is None:
        raise CliError("--prune-unused needs --write DIR")
    if args.kubeconfig is not None and not args.from_cluster:
        raise CliError("--kubeconfig goes with --from-cluster")
    since_ns = 0
    if args.since:
        try:
            since_ns = time.time_ns() - int(parse_duration(args.since) * 1e9)
        except ValueError as e:
            raise CliError(f"--since: {e}") from e
    options = ExportOptions(include_service_targets=args.service_targets)
    declared = load_declared(args)
    edges = list(list_edges(args.mapper).edges)
    result = diff(edges, declared.intents, since_ns=since_ns, options=options)
    sys.stdout.write(render(result, args.format))
    for skipped in result.skipped:
        log.info("not comparable (no ClientIntents can name it): %s", skipped)
    if result.skipped:
        print(f"netmapper diff: {len(result.skipped)} observed calls cannot be named by any ClientIntents "
              "(node or unresolved endpoints); `netmapper export` lists them", file=sys.stderr)
    if result.ignored_targets:
        print(f"netmapper diff: {result.ignored_targets} declared sql/aws/gcp/azure targets are not network "
              "calls and were not compared", file=sys.stderr)
    if args.write is not None:
        try:
            written = write_directory(args.write, edges, prune=args.prune_unused, since_ns=since_ns,
                                      options=options)
        except OSError as e:
            raise CliError(f"--write {args.write}: {e}") from e
        for line in written.not_written:
            print(f"netmapper diff: not written: {line}", file=sys.stderr)
        print(f"netmapper diff: wrote {len(written.added)} missing targets"
              + (f", removed {len(written.pruned)} unused" if args.prune_unused else "")
              + f" ({len(written.files_changed)} files changed, {len(written.files_created)} created)",
              file=sys.stderr)
    return EXIT_UNCOVERED if result.uncovered else EXIT_COVERED
