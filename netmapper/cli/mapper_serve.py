"""`netmapper mapper serve`: run the central mapper (gRPC + health) until SIGTERM/SIGINT.

With `--intents PATH` (or `--intents-from-cluster`) and `--webhook URL`, every newly observed call that the
declared intents do not cover is posted to the webhook (netmapper.shadow.signals).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import threading
from functools import partial
from pathlib import Path
from typing import Any

from netmapper.cli.common import CliError

log = logging.getLogger(__name__)

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds in "90s", "15m", "24h", "7d", "1h30m" (Go/kubectl style); a bare number is seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90s, 15m, 24h, 7d)") from None
        value = sum(float(n) * _UNITS[u] for n, u in parts)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the mapper gRPC server")
    p.add_argument("--listen", default="0.0.0.0:9090", metavar="ADDR", help="address to serve on (default 0.0.0.0:9090)")
    p.add_argument("--db", default=os.environ.get("NETMAPPER_DB") or None, metavar="PATH|URL",
                   help="SQLite file that keeps edges across restarts, or postgresql://... shared by several mapper "
                        "replicas (default: $NETMAPPER_DB, else memory only)")
    p.add_argument("--metrics-listen", default=None, metavar="ADDR",
                   help="serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9092)")
    p.add_argument("--health-listen", default=None, metavar="ADDR",
                   help="also serve the gRPC health service alone, in plaintext, here (kubelet probes of a TLS mapper)")
    tls = p.add_argument_group("TLS and authentication (files are re-read when they change)")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="server certificate (PEM); serves TLS")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="key of the server certificate")
    tls.add_argument("--client-ca", type=Path, metavar="FILE",
                     help="require client certificates signed by this CA (mutual TLS; O = roles, CN node:NAME binds)")
    tls.add_argument("--token-file", type=Path, metavar="FILE",
                     help="bearer tokens, one per line: TOKEN,NAME,ROLES[,NODE] (roles: report read admin)")
    b = p.add_argument_group("bounds")
    b.add_argument("--edge-ttl", type=duration, metavar="DURATION",
                   help="forget edges not seen for this long (e.g. 7d); default: keep")
    b.add_argument("--max-edges", type=_positive_int, default=None, metavar="N",
                   help="keep at most N edges, evicting the stalest (counted as lost); default 2000000")
    b.add_argument("--max-streams", type=_positive_int, default=64, metavar="N",
                   help="concurrent sniffer report streams (default 64)")
    b.add_argument("--stream-idle-timeout", type=duration, default=600.0, metavar="DURATION",
                   help="end a report stream silent this long (default 10m)")
    b.add_argument("--max-message-bytes", type=_positive_int, default=None, metavar="N",
                   help="largest request accepted (default 4 MiB)")
    b.add_argument("--max-report-age", type=duration, default=7 * 86400.0, metavar="DURATION",
                   help="refuse observations older than this (default 7d)")
    b.add_argument("--max-clock-skew", type=duration, default=300.0, metavar="DURATION",
                   help="refuse observations further ahead of the mapper's clock (default 5m)")
    p.add_argument("--checkpoint-interval", type=duration, default=10.0, metavar="DURATION",
                   help="write changed edges to --db this often; acknowledged batches are journaled at once (default 10s)")
    p.add_argument("--fsync", action="store_true",
                   help="fsync every commit: acknowledged batches survive power loss, not only a killed mapper")
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
    # the mapper only: nothing of the sniffer is imported here
    from mapper.auth import AuthConfigError, ReloadingTls, ReloadingTokens
    from mapper.server import serve
    from mapper.store import DEFAULT_MAX_EDGES
    from mapper.validation import IngestLimits

    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together")
    if args.client_ca is not None and args.tls_cert is None:
        raise CliError("--client-ca needs --tls-cert and --tls-key")
    if args.token_file is not None and args.tls_cert is None:
        raise CliError("--token-file needs TLS (--tls-cert and --tls-key): tokens must not travel in clear text")
    try:
        tls = ReloadingTls(args.tls_cert, args.tls_key, args.client_ca) if args.tls_cert else None
        tokens = ReloadingTokens(args.token_file) if args.token_file else None
    except (OSError, UnicodeDecodeError, AuthConfigError) as e:
        raise CliError(str(e)) from e
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    limits = IngestLimits(max_skew_s=args.max_clock_skew, max_age_s=args.max_report_age)
    extra: dict[str, Any] = {}
    if args.max_message_bytes:
        extra["max_message_bytes"] = args.max_message_bytes
    signaller = _signaller(args)
    try:
        server = serve(args.listen, db=args.db, tls=tls, tokens=tokens, limits=limits,
                       max_edges=args.max_edges or DEFAULT_MAX_EDGES, edge_ttl=args.edge_ttl,
                       max_streams=args.max_streams, idle_timeout=args.stream_idle_timeout, fsync=args.fsync,
                       health_listen=args.health_listen, flush_interval=args.checkpoint_interval,
                       metrics_listen=args.metrics_listen,
                       observer=signaller, **extra)
    except BaseException as e:
        if signaller is not None:
            signaller.stop(flush_timeout=0)
        if isinstance(e, OSError):
            raise CliError(str(e)) from e
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
