"""Prometheus metrics of the mapper (`mapper serve --metrics-listen`), on a registry of their own.

What an operator asks of a mapper: is it receiving (edges received, merged, rejected by reason), is the
store keeping up (edges stored, commit latency), who is reporting (streams open, each node's last
report and how old its newest observation was on arrival), and what was lost where (lost observations by
source as sniffers report them, watchers that fell behind).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from netmapper_api.v1 import edge_pb2

# Rejection reasons as the store words them -> a small, fixed set of label values.
_REASONS: Final[tuple[tuple[str, str], ...]] = (
    ("no node", "no_node"),
    ("timestamp", "timestamps"),
    ("port", "port"),
    ("protocol", "protocol"),
    ("count", "count"),
    ("internal", "internal"),
)


def rejection_reason(error: str) -> str:
    """The label value for a store's rejection message (unknown wording -> "invalid_endpoint")."""
    low = error.lower()
    for needle, label in _REASONS:
        if needle in low:
            return label
    return "invalid_endpoint"


def lost_source_label(source: int) -> str:
    try:
        return edge_pb2.LostSource.Name(edge_pb2.LostSource.ValueType(source)).removeprefix("LOST_SOURCE_").lower()
    except ValueError:
        return f"source_{source}"


class MapperMetrics:
    """The mapper's metrics. serve() on an address exposes them at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.edges_received = Counter("netmapper_mapper_edges_received", "Edges received in ReportEdges batches",
                                      registry=r)
        self.edges_merged = Counter("netmapper_mapper_edges_merged", "Edges merged into the store", registry=r)
        self.edges_rejected = Counter("netmapper_mapper_edges_rejected", "Edges refused at ingest, by reason",
                                      ["reason"], registry=r)
        self.batches_duplicate = Counter("netmapper_mapper_batches_duplicate",
                                         "Batches resent after a lost acknowledgement and not merged again", registry=r)
        self.edges_stored = Gauge("netmapper_mapper_edges_stored", "Edges in the store", registry=r)
        self.streams_open = Gauge("netmapper_mapper_report_streams_open", "ReportEdges streams open", registry=r)
        self.watchers_open = Gauge("netmapper_mapper_watchers_open", "WatchEdges streams open", registry=r)
        self.node_last_report = Gauge("netmapper_mapper_node_last_report_timestamp_seconds",
                                      "When each node's sniffer last reported a batch", ["node"], registry=r)
        self.node_lag = Gauge("netmapper_mapper_node_report_lag_seconds",
                              "Age of the newest observation in each node's last batch when it arrived", ["node"],
                              registry=r)
        self.lost = Counter("netmapper_mapper_lost_observations",
                            "Observations lost, by source (as sniffers report them; watcher_lagged: changes a slow "
                            "WatchEdges client missed)", ["source"], registry=r)
        self.commit_seconds = Histogram("netmapper_mapper_store_commit_seconds",
                                        "Time from merging a batch to its durability (group commit; PostgreSQL: COMMIT)",
                                        buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5),
                                        registry=r)

    def track_auth_refusals(self, refused: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Calls refused by authentication or authorization, by status and method (read at each scrape
        from the interceptor's own count, so auth.py knows nothing of Prometheus)."""
        self.registry.register(_AuthRefusals(refused))

    def track_store_size(self, size: Callable[[], int]) -> None:
        def read() -> float:
            try:
                return float(size())
            except OSError:  # the store's database is away: no value rather than a failed scrape
                return float("nan")

        self.edges_stored.set_function(read)

    def batch(self, node: str, received: int, accepted: int, rejected: int, error: str, newest_ns: int) -> None:
        """One ReportEdges batch was merged (its commit latency is observed when it is durable)."""
        self.edges_received.inc(received)
        self.edges_merged.inc(accepted)
        if rejected:
            self.edges_rejected.labels(rejection_reason(error)).inc(rejected)
        if node:
            now = time.time()
            self.node_last_report.labels(node).set(now)
            if newest_ns:
                self.node_lag.labels(node).set(max(0.0, now - newest_ns / 1e9))

    def lost_events(self, lost: list[edge_pb2.LostEvents]) -> None:
        for ev in lost:
            if ev.count:
                self.lost.labels(lost_source_label(ev.source)).inc(ev.count)

    def serve(self, listen: str) -> tuple[str, int, Callable[[], None]]:
        """Serve /metrics on "host:port" (port 0 picks one); returns (host, port, stop)."""
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        try:
            server, thread = start_http_server(int(port), addr=host, registry=self.registry)
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot serve metrics on {listen}: {exc}") from exc

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return host, int(server.server_address[1]), stop


class _AuthRefusals(Collector):
    def __init__(self, refused: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._refused = refused

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("netmapper_mapper_auth_refused",
                                     "Calls refused for their credential or role, by status code and method",
                                     labels=["code", "method"])
        for (code, method), n in sorted(self._refused().items()):
            family.add_metric([code, method], n)
        yield family
