"""`netmapper mapper serve`: run the central mapper (gRPC + health) until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import logging
import re
import signal
import threading
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
    p.add_argument("--db", default=None, metavar="PATH", help="SQLite file that keeps edges across restarts")
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
    p.set_defaults(run=run)


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
    try:
        server = serve(args.listen, db=args.db, tls=tls, tokens=tokens, limits=limits,
                       max_edges=args.max_edges or DEFAULT_MAX_EDGES, edge_ttl=args.edge_ttl,
                       max_streams=args.max_streams, idle_timeout=args.stream_idle_timeout, fsync=args.fsync,
                       health_listen=args.health_listen, flush_interval=args.checkpoint_interval,
                       **extra)
    except OSError as e:
        raise CliError(str(e)) from e
    log.info("mapper serving on %s", server.address)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0
