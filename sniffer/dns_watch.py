"""DNS watcher: captured replies -> per-client names for the resolver, on its own thread.

poll the probe -> drop duplicates -> parse -> keep only replies from trusted DNS servers ->
attribute the reply to the client that received it (same resolver as for connects) -> cache.
The resolver reads the same DnsNameTable when it builds an edge. Runs continuously (not once per
drain interval) so the ring buffer never backs up.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from sniffer.dns_names import DnsNameTable
from sniffer.dns_parse import DnsParseError, ReplyDeduper, parse_dns_packet
from sniffer.dns_trust import DnsTrustPolicy
from netmapper_api.endpoints import Endpoint
from netmapper_api.loss import LossSource
from sniffer.records import DnsPacket, ProbeLoss

log = logging.getLogger(__name__)

ClientOf = Callable[[str, int, float], Endpoint]  # (client ip, cgroup id, time) -> endpoint
TrustedServers = Callable[[], Iterable[str]]


class DnsSource(Protocol):
    def poll(self, timeout_ms: int = 100) -> list[DnsPacket]: ...
    def take_loss(self) -> ProbeLoss | None: ...


@dataclass
class DnsStats:
    replies: int = 0
    duplicates: int = 0
    parse_errors: int = 0
    untrusted: int = 0
    recorded: int = 0


@dataclass
class DnsWatcher:
    source: DnsSource
    client_of: ClientOf
    names: DnsNameTable  # where answers go; the resolver reads it
    trusted_servers: TrustedServers  # re-read every `trust_refresh` s: the cluster's DNS can move
    extra_trusted: tuple[str, ...] = ()  # node-local DNS and other servers the operator names
    trust_all: bool = False
    trust_refresh: float = 5.0
    stats: DnsStats = field(default_factory=DnsStats)
    policy: DnsTrustPolicy = field(init=False)
    _dedup: ReplyDeduper = field(default_factory=ReplyDeduper)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loss: int = 0
    _trust_at: float = -1e9

    def __post_init__(self) -> None:
        self.policy = DnsTrustPolicy(trust_all=self.trust_all)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once(timeout_ms=100)
            except Exception:  # noqa: BLE001 - the daemon keeps running; the cause is logged
                log.exception("dns poll failed")
                stop.wait(1.0)

    def poll_once(self, timeout_ms: int = 100) -> int:
        now = time.monotonic()
        if now - self._trust_at >= self.trust_refresh:
            self.policy.set_trusted([*self.trusted_servers(), *self.extra_trusted])
            self._trust_at = now
        packets = self.source.poll(timeout_ms)
        loss = self.source.take_loss()
        if loss is not None:
            with self._lock:
                self._loss += loss.count
        return self.handle(packets)

    def handle(self, packets: Iterable[DnsPacket]) -> int:
        recorded = 0
        for p in packets:
            self.stats.replies += 1
            if self._dedup.is_duplicate(p, p.seen_at):
                self.stats.duplicates += 1
                continue
            try:
                answers = parse_dns_packet(p)
            except DnsParseError as e:
                self.stats.parse_errors += 1
                log.debug("unparsable DNS reply %s -> %s: %s", p.saddr, p.daddr, e)
                continue
            if not self.policy.check(p.saddr, p.daddr):
                self.stats.untrusted += 1
                continue
            if not answers.answers:
                continue  # NXDOMAIN or no addresses: nothing to name
            client = self.client_of(str(p.daddr), p.cgroup_id, p.seen_at)
            # Intents name what the client asked for; CNAME hops (CDN names) are not its choice.
            asked = [replace(a, aliases=()) for a in answers.answers]
            recorded += self.names.record(client, asked, p.seen_at)
        self.stats.recorded += recorded
        return recorded

    def take_loss(self) -> list[ProbeLoss]:
        with self._lock:
            lost, self._loss = self._loss, 0
        return [ProbeLoss(source=LossSource.RING_BUFFER, count=lost)] if lost else []
