"""Entry point of the `netmapper` console script."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from netmapper.cli import demo, diff, edges, export, mapper_serve, reset, sniffer_run, visualize
from netmapper.cli.common import CliError
from netmapper.client import MapperError

log = logging.getLogger("netmapper")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netmapper", description="eBPF network mapper for Kubernetes")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mapper = sub.add_parser("mapper", help="the central mapper").add_subparsers(dest="mapper_cmd", required=True)
    mapper_serve.add_parser(mapper)
    sniffer = sub.add_parser("sniffer", help="the node agent").add_subparsers(dest="sniffer_cmd", required=True)
    sniffer_run.add_parser(sniffer)
    for module in (edges, export, diff, visualize, reset, demo):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * args.verbose if args.command not in ("mapper", "sniffer", "demo") else (
        logging.DEBUG if args.verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except (CliError, MapperError) as e:
        print(f"netmapper {args.command}: {one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI never prints a traceback; -vv logs it
        log.debug("netmapper %s failed", args.command, exc_info=True)
        print(f"netmapper {args.command}: {one_line(e)}", file=sys.stderr)
        return 1


def one_line(e: BaseException) -> str:
    """The error as one line: what failed and why, without the traceback."""
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
