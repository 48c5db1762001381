"""Prometheus metrics of the sniffer (`sniffer run --metrics-listen`), read from its parts at scrape time.

Nothing on the hot path: the collector reads the counters the agent, probe, DNS watcher, reporter and
cluster index keep anyway, when Prometheus asks. What an operator asks of a node agent: how long a drain
cycle takes, how full the in-kernel map got (a full map loses connects), how many DNS replies were parsed
and why others were refused, how big the identity index and the edge state are, and whether the mapper
acknowledges.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from sniffer.agent import Agent
from sniffer.dns_watch import DnsWatcher


@dataclass(eq=False)  # hashable by identity: a registry keys its collectors
class SnifferCollector(Collector):
    """Reads the running sniffer's parts; `map_fill` returns (entries drained last, map size) or None."""

    agent: Agent
    index_counts: Callable[[], dict[str, int]]
    map_fill: Callable[[], tuple[int, int] | None] = lambda: None
    dns: DnsWatcher | None = None
    dns_names: Callable[[], int] | None = None  # names held for clients

    def collect(self) -> Iterator[Metric]:
        a = self.agent.stats
        yield SummaryMetricFamily("netmapper_sniffer_drain_seconds", "Duration of drain cycles (drain, resolve, hand over)",
                                  count_value=a.cycles, sum_value=a.drain_seconds_total)
        yield GaugeMetricFamily("netmapper_sniffer_drain_last_seconds", "Duration of the last drain cycle",
                                value=a.drain_seconds_last)
        yield CounterMetricFamily("netmapper_sniffer_connects", "Connects observed in the kernel", value=a.connects)
        yield CounterMetricFamily("netmapper_sniffer_drain_errors", "Drain cycles that failed", value=a.errors)
        yield CounterMetricFamily("netmapper_sniffer_edges_sent", "Edges handed to the reporter", value=a.edges_sent)
        fill = self.map_fill()
        if fill is not None:
            entries, size = fill
            yield GaugeMetricFamily("netmapper_sniffer_map_entries", "Entries in the connect map at the last drain",
                                    value=entries)
            yield GaugeMetricFamily("netmapper_sniffer_map_fill_ratio",
                                    "Fill of the connect map at the last drain (1 = full: connects are lost)",
                                    value=entries / size if size else 0.0)
        acc = self.agent.accumulator
        yield GaugeMetricFamily("netmapper_sniffer_edges_pending", "Edges waiting to be sent (new or refresh not due)",
                                value=len(acc))
        yield GaugeMetricFamily("netmapper_sniffer_edges_known", "Edges sent before, refreshed at most every --refresh",
                                value=acc.known)
        r = self.agent.reporter.stats
        yield CounterMetricFamily("netmapper_sniffer_batches_acked", "Batches the mapper acknowledged",
                                  value=r.batches_acked)
        yield CounterMetricFamily("netmapper_sniffer_send_failures", "Failed sends to the mapper (batch kept)",
                                  value=r.send_failures)
        index = GaugeMetricFamily("netmapper_sniffer_index_objects", "Objects in the identity index by kind",
                                  labels=["kind"])
        for kind, n in sorted(self.index_counts().items()):
            index.add_metric([kind], n)
        yield index
        if self.dns is not None:
            d = self.dns.stats
            yield CounterMetricFamily("netmapper_sniffer_dns_replies", "DNS replies seen (duplicates included)",
                                      value=d.replies)
            yield CounterMetricFamily("netmapper_sniffer_dns_replies_parsed", "DNS replies parsed",
                                      value=d.replies - d.duplicates - d.parse_errors)
            rejected = CounterMetricFamily("netmapper_sniffer_dns_replies_rejected", "DNS replies not used, by reason",
                                           labels=["reason"])
            rejected.add_metric(["unparsable"], d.parse_errors)
            rejected.add_metric(["untrusted_server"], d.untrusted)
            rejected.add_metric(["duplicate"], d.duplicates)
            yield rejected
        if self.dns_names is not None:
            yield GaugeMetricFamily("netmapper_sniffer_dns_cache_entries", "Names held for clients",
                                    value=self.dns_names())


def serve_metrics(listen: str, collector: Collector) -> tuple[int, Callable[[], None]]:
    """Serve the collector at http://listen/metrics; returns (bound port, stop)."""
    registry = CollectorRegistry()
    registry.register(collector)
    host, _, port = listen.rpartition(":")
    try:
        server, thread = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=registry)
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot serve metrics on {listen}: {exc}") from exc

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return int(server.server_address[1]), stop
