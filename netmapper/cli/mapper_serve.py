"""`netmapper mapper serve`: run the central mapper (gRPC + health) until SIGTERM/SIGINT.

With `--intents PATH` (or `--intents-from-cluster`) and `--webhook URL`, every newly observed call that the
declared intents do not cover is posted to the webhook (netmapper.shadow.signals).
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from functools import partial
from pathlib import Path
from typing import Any

from netmapper.cli.common import CliError

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the mapper gRPC server")
    p.add_argument("--listen", default="0.0.0.0:9090", metavar="ADDR", help="address to serve on (default 0.0.0.0:9090)")
    p.add_argument("--db", default=None, metavar="PATH", help="SQLite file that keeps edges across restarts")
    g = p.add_argument_group("signals (a webhook per newly observed call the intents do not cover)")
    source = g.add_mutually_exclusive_group()
    source.add_argument("--intents", action="append", type=Path, metavar="PATH",
                        help="declared ClientIntents: file or directory (recursive); repeatable")
    source.add_argument("--intents-from-cluster", action="store_true",
                        help="declared ClientIntents from the cluster (--kubeconfig or in-cluster)")
    g.add_argument("--kubeconfig", type=Path, default=None, metavar="FILE", help="with --intents-from-cluster")
    g.add_argument("--webhook", default=None, metavar="URL", help="POST a JSON message (Slack-compatible text) here")
    g.add_argument("--webhook-rate", type=float, default=1.0, metavar="PER_S",
                   help="at most this many messages per second (default 1, bursts of 10)")
    g.add_argument("--intents-reload", type=float, default=30.0, metavar="SECONDS",
                   help="re-read the intents this often (default 30)")
    p.set_defaults(run=run)


def _signaller(args: argparse.Namespace) -> Any:
    from netmapper.shadow.load import kube_api_client, load_cluster, load_paths
    from netmapper.shadow.signals import UncoveredCallSignaller

    has_source = bool(args.intents) or args.intents_from_cluster
    if args.webhook is None:
        if has_source:
            raise CliError("--intents/--intents-from-cluster need --webhook URL (what to tell about uncovered calls)")
        return None
    if not has_source:
        raise CliError("--webhook needs --intents PATH or --intents-from-cluster")
    try:
        if args.intents_from_cluster:
            load = partial(load_cluster, kube_api_client(args.kubeconfig))
        else:
            load = partial(load_paths, args.intents)
        return UncoveredCallSignaller(args.webhook, load, rate=args.webhook_rate,
                                      reload_interval=args.intents_reload).start()
    except Exception as e:  # config, HTTP, TLS, file errors: one line, no traceback
        raise CliError(f"signals: cannot start: {type(e).__name__}: {e}") from e


def run(args: argparse.Namespace) -> int:
    from mapper.server import serve  # the mapper only: nothing of the sniffer is imported here

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signaller = _signaller(args)
    try:
        server = serve(args.listen, db=args.db, observer=signaller)
    except BaseException:
        if signaller is not None:
            signaller.stop(flush_timeout=0)
        raise
    log.info("mapper serving on %s%s", server.address, f", signals to {args.webhook}" if signaller else "")
    try:
        stop.wait()
    finally:
        server.stop()
        if signaller is not None:
            stats = signaller.stop()
            log.info("signals: %d uncovered calls, %d delivered, %d failed, %d dropped",
                     stats.uncovered, stats.delivered, stats.failed, stats.dropped)
    return 0
