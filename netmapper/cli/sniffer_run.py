"""`netmapper sniffer run`: the node agent. Needs root (or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN,
CAP_SYS_ADMIN on kernels without CAP_BPF) to load its eBPF programs."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from netmapper.cli.common import CliError
from netmapper_api.channel import CredentialError, add_credential_flags, credentials_from_args
from sniffer.agent import Agent
from sniffer.cgroups import CgroupPodMap
from sniffer.cluster import ClusterIndex
from sniffer.dns_names import DnsNameTable
from sniffer.edges import EdgeAccumulator
from sniffer.feed import IdentityFeed
from sniffer.malloc_tuning import fix_mmap_threshold
from sniffer.reporter import Reporter
from sniffer.resolver import DEFAULT_CLUSTER_CIDRS, Resolver

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="capture connections on this node and report them to the mapper")
    p.add_argument("--mapper", required=True, metavar="ADDR", help="mapper gRPC address")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--snapshot", type=Path, metavar="FILE", help="cluster snapshot (kubectl get ... -A -o yaml)")
    src.add_argument("--kubeconfig", type=Path, metavar="FILE", help="watch the cluster with this kubeconfig")
    p.add_argument("--node", default=os.environ.get("NODE_NAME") or socket.gethostname(),
                   help="this node's name (default $NODE_NAME or the hostname)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between kernel map drains (default 1)")
    p.add_argument("--map-size", type=int, default=65536, help="entries in the in-kernel connect map")
    p.add_argument("--cluster-cidr", action="append", default=None, metavar="CIDR",
                   help="pod/service/node ranges; other addresses are internet (default: private ranges)")
    p.add_argument("--dns-server", action="append", default=[], metavar="IP",
                   help="also trust DNS replies from IP: a DNS the sniffer does not recognise (kube-dns, CoreDNS from "
                        "Helm, OpenShift dns-default and NodeLocal DNSCache are recognised; see README)")
    p.add_argument("--dns-trust-all", action="store_true",
                   help="trust DNS replies from any server (a host without cluster DNS); unsafe in a cluster")
    p.add_argument("--no-dns", action="store_true", help="do not capture DNS replies (no names on edges)")
    p.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="send a known edge again at most this often, with the connects counted meanwhile; new edges "
                        "are sent at once (default 5; 0 sends every edge that had connects each interval)")
    p.add_argument("--metrics-listen", default=None, metavar="ADDR",
                   help="serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9102)")
    p.add_argument("--ready-file", type=Path, help="touched once probes are attached (readiness)")
    add_credential_flags(p)
    p.set_defaults(run=run)


def _feed(args: argparse.Namespace) -> tuple[IdentityFeed, float]:
    """The identity feed and how long to hold unresolved connects for it."""
    if args.snapshot is not None:
        from sniffer.snapshot_feed import SnapshotFeed

        return SnapshotFeed(args.snapshot, node=args.node), 0.0
    from sniffer.kube_feed import KubeFeed
    from sniffer.kube_http import KubeConfigError

    try:
        if args.kubeconfig is not None:
            return KubeFeed.from_kubeconfig(args.kubeconfig, node_name=args.node), 2.0
        return KubeFeed.in_cluster(node_name=args.node), 2.0
    except KubeConfigError as e:
        raise CliError(str(e)) from e


def _map_fill(probe: Any) -> tuple[int, int] | None:
    drain = probe.last_drain
    return None if drain is None else (drain.keys, probe.map_size)


def run(args: argparse.Namespace) -> int:
    # the probes need bcc: imported only by the command that uses them
    from sniffer.connect_probe import ConnectProbe
    from sniffer.dns_probe import DnsProbe
    from sniffer.dns_watch import DnsWatcher

    fix_mmap_threshold()  # before the index and the batches are allocated
    try:
        credentials = credentials_from_args(args)  # bad files fail before anything is attached
    except CredentialError as e:
        raise CliError(str(e)) from e
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    feed, hold = _feed(args)
    index = ClusterIndex()
    feed.start(index)
    if not feed.wait_synced(timeout=60):
        log.warning("identity feed not synced after 60 s; resolving with what it has")
    names = DnsNameTable()  # written by the DNS watcher, read by the resolver
    resolver = Resolver(index, cluster_cidrs=args.cluster_cidr or DEFAULT_CLUSTER_CIDRS,
                        cgroup_pods=CgroupPodMap().pod_uid, dns_names=None if args.no_dns else names.names)
    reporter = Reporter(args.mapper, args.node, credentials=credentials)
    reporter.start()
    try:
        with ConnectProbe(map_size=args.map_size) as probe, ExitStack() as dns:
            loss_sources = []
            watcher = None
            if not args.no_dns:
                watcher = DnsWatcher(source=dns.enter_context(DnsProbe()), client_of=resolver.client, names=names,
                                     trusted_servers=index.dns_server_ips, extra_trusted=tuple(args.dns_server),
                                     trust_all=args.dns_trust_all)
                loss_sources.append(watcher.take_loss)
                thread = threading.Thread(target=watcher.run, args=(stop,), name="dns", daemon=True)
                thread.start()
                dns.callback(thread.join, 2.0)
            agent = Agent(source=probe, resolver=resolver, reporter=reporter, interval=args.interval,
                          hold_unresolved=hold, on_cycle=lambda: index.prune(time.time()),
                          loss_sources=loss_sources, accumulator=EdgeAccumulator(refresh=args.refresh))
            if args.metrics_listen is not None:
                # prometheus_client (and the HTTP server it brings) costs ~4 MiB RSS: only when asked for
                from sniffer.metrics import SnifferCollector, serve_metrics

                collector = SnifferCollector(agent=agent, index_counts=index.counts, dns=watcher,
                                             dns_names=names.__len__, map_fill=lambda: _map_fill(probe))
                try:
                    _, stop_metrics = serve_metrics(args.metrics_listen, collector)
                except OSError as exc:
                    raise CliError(str(exc)) from exc
                dns.callback(stop_metrics)
            if args.ready_file is not None:
                args.ready_file.touch()
            log.info("sniffer on node %s capturing; reporting to %s every %.1fs", args.node, args.mapper, args.interval)
            agent.run(stop)
            if not agent.finish(timeout=5.0):
                log.warning("mapper did not acknowledge the last batch before shutdown")
    finally:
        reporter.stop()
        feed.stop()
    return 0
