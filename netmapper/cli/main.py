"""Entry point of the `netmapper` console script."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Final

from netmapper.cli.common import CliError
from netmapper.client import MapperError

log = logging.getLogger("netmapper")

# Command -> the module (netmapper.cli.<module>) whose add_parser() adds it. Only the module of the
# command being run is imported: the sniffer runs on every node and must not carry the mapper, the
# shadow diff, Graphviz and ruamel.yaml (~4 MiB RSS, bench/sniffer_memory.py).
COMMANDS: Final[dict[str, str]] = {
    "mapper": "mapper_serve", "sniffer": "sniffer_run", "edges": "edges", "export": "export", "diff": "diff",
    "visualize": "visualize", "reset": "reset", "demo": "demo",
}
GROUPS: Final[dict[str, str]] = {"mapper": "the central mapper", "sniffer": "the node agent"}


def command_of(argv: Sequence[str]) -> str | None:
    """The command argv names (the first word not an option: the only global option, -v, takes no value)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The parser of one command (`wanted`), or of all of them (help, typos: the full listing)."""
    parser = argparse.ArgumentParser(prog="netmapper", description="eBPF network mapper for Kubernetes")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, module_name in COMMANDS.items():
        if wanted is not None and command != wanted:
            continue
        module = importlib.import_module(f"netmapper.cli.{module_name}")
        if command in GROUPS:
            group = sub.add_parser(command, help=GROUPS[command])
            module.add_parser(group.add_subparsers(dest=f"{command}_cmd", required=True))
        else:
            module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(command_of(argv)).parse_args(argv)
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
