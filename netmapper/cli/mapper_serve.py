"""`netmapper mapper serve`: run the central mapper (gRPC + health) until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the mapper gRPC server")
    p.add_argument("--listen", default="0.0.0.0:9090", metavar="ADDR", help="address to serve on (default 0.0.0.0:9090)")
    p.add_argument("--db", default=None, metavar="PATH", help="SQLite file that keeps edges across restarts")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mapper.server import serve  # the mapper only: nothing of the sniffer is imported here

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve(args.listen, db=args.db)
    log.info("mapper serving on %s", server.address)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0
