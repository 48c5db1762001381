"""`netmapper mapper serve`: run the central mapper (gRPC + health) until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

from netmapper.cli.common import CliError

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the mapper gRPC server")
    p.add_argument("--listen", default="0.0.0.0:9090", metavar="ADDR", help="address to serve on (default 0.0.0.0:9090)")
    p.add_argument("--db", default=os.environ.get("NETMAPPER_DB") or None, metavar="PATH|URL",
                   help="SQLite file that keeps edges across restarts, or postgresql://... shared by several mapper "
                        "replicas (default: $NETMAPPER_DB, else memory only)")
    p.add_argument("--metrics-listen", default=None, metavar="ADDR",
                   help="serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9091)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mapper.server import serve  # the mapper only: nothing of the sniffer is imported here

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = serve(args.listen, db=args.db, metrics_listen=args.metrics_listen)
    except OSError as exc:  # cannot bind, cannot reach PostgreSQL: one line, not a traceback
        raise CliError(str(exc)) from exc
    log.info("mapper serving on %s", server.address)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0
