"""Per-client DNS cache: which names did this client resolve to this IP, recently enough to matter.

client (any hashable identity the caller chooses: a workload identity, a cgroup id, a client IP)
  -> IP -> names, each valid for its TTL plus a grace period.

Why a grace period: a client connects right after its lookup, but it may also keep using the address a
while after the TTL ran out (resolver caches that round TTLs up, JVMs caching for 30 s by default,
happy-eyeballs retries, connection retries after backoff). Dropping the name at the exact TTL would
turn such calls into bare IPs.

Defaults (all keyword arguments of DnsCache):
  grace_s = 120 s          names stay usable this long after their TTL expired
  max_ttl_s = 86400 s      TTLs are clamped to a day, so a bogus 2^31 TTL cannot pin an entry for years
  max_entries = 100_000    (client, IP) pairs kept; least recently used pairs are evicted (counted)
  max_names_per_ip = 16    names per (client, IP); the oldest are dropped first (counted). CDNs put many
                           names behind one IP, but one client rarely resolves more than a few of them.

Names come out most recently recorded first; within one answer the asked name comes first, then its
CNAME chain. The order is deterministic.
IPv4-mapped IPv6 addresses are looked up as their IPv4 address. Pure code, no I/O; `now` is passed in.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from netmapper_api.addresses import IPAddress, normalize_ip
from sniffer.dns_parse import DnsAnswer, DnsAnswerSet


@dataclass(slots=True)
class _NameEntry:
    recorded_at: float
    seq: int  # recording order, breaks ties between names recorded at the same time
    valid_until: float  # TTL expiry + grace


class DnsCache:
    """Bounded per-client IP -> names cache with TTL + grace expiry and LRU eviction."""

    def __init__(self, *, grace_s: float = 120.0, max_ttl_s: float = 86400.0, max_entries: int = 100_000,
                 max_names_per_ip: int = 16) -> None:
        if max_entries < 1 or max_names_per_ip < 1:
            raise ValueError("max_entries and max_names_per_ip must be at least 1")
        self.grace_s = grace_s
        self.max_ttl_s = max_ttl_s
        self.max_entries = max_entries
        self.max_names_per_ip = max_names_per_ip
        self.evictions = 0  # (client, IP) pairs dropped because the cache was full
        self.names_dropped = 0  # names dropped because one (client, IP) had too many
        self._entries: OrderedDict[tuple[Hashable, IPAddress], dict[str, _NameEntry]] = OrderedDict()
        self._clients_by_ip: dict[IPAddress, dict[Hashable, None]] = {}  # for names_for_any
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, client: Hashable, answers: DnsAnswerSet | Iterable[DnsAnswer], now: float) -> int:
        """Remember the answers `client` received at `now`. Returns how many (IP, name) pairs were stored."""
        items = answers.answers if isinstance(answers, DnsAnswerSet) else answers
        stored = 0
        for answer in items:
            ip = normalize_ip(answer.ip)
            key = (client, ip)
            names = self._entries.get(key)
            if names is None:
                names = self._entries[key] = {}
                self._clients_by_ip.setdefault(ip, {})[client] = None
            else:
                self._entries.move_to_end(key)
            valid_until = now + min(max(answer.ttl, 0), self.max_ttl_s) + self.grace_s
            for name in reversed(answer.names):  # the asked name last: it ranks first
                old = names.pop(name, None)  # re-insert: dict order = recording order
                self._seq += 1
                names[name] = _NameEntry(recorded_at=now, seq=self._seq,
                                         valid_until=max(valid_until, old.valid_until if old else 0.0))
                stored += 1
            while len(names) > self.max_names_per_ip:
                del names[next(iter(names))]
                self.names_dropped += 1
            self._evict_if_full()
        return stored

    def _evict_if_full(self) -> None:
        while len(self._entries) > self.max_entries:
            (client, ip), _ = self._entries.popitem(last=False)
            self._forget_client_ip(client, ip)
            self.evictions += 1

    def _forget_client_ip(self, client: Hashable, ip: IPAddress) -> None:
        clients = self._clients_by_ip.get(ip)
        if clients is not None:
            clients.pop(client, None)
            if not clients:
                del self._clients_by_ip[ip]

    def _valid(self, key: tuple[Hashable, IPAddress], now: float) -> list[tuple[str, _NameEntry]]:
        names = self._entries.get(key)
        if not names:
            return []
        live = [(n, e) for n, e in names.items() if e.valid_until >= now]
        if len(live) != len(names):  # drop what expired while we are here
            for n in [n for n, e in names.items() if e.valid_until < now]:
                del names[n]
            if not names:
                del self._entries[key]
                self._forget_client_ip(*key)
        return live

    @staticmethod
    def _ordered(entries: Iterable[tuple[str, _NameEntry]]) -> tuple[str, ...]:
        best: dict[str, tuple[float, int]] = {}
        for name, entry in entries:
            rank = (entry.recorded_at, entry.seq)
            best[name] = max(best.get(name, rank), rank)
        return tuple(sorted(best, key=lambda n: (-best[n][0], -best[n][1], n)))

    def names_for(self, client: Hashable, ip: IPAddress, now: float) -> tuple[str, ...]:
        """Names `client` resolved to `ip` that are still valid at `now` (TTL + grace)."""
        key = (client, normalize_ip(ip))
        live = self._valid(key, now)
        if live:
            self._entries.move_to_end(key)  # used: keep it longer
        return self._ordered(live)

    def names_for_any(self, ip: IPAddress, now: float) -> tuple[str, ...]:
        """Fallback when the client is unknown: names any client resolved to `ip`, still valid at `now`."""
        ip = normalize_ip(ip)
        clients = list(self._clients_by_ip.get(ip, ()))
        live: list[tuple[str, _NameEntry]] = []
        for client in clients:
            live.extend(self._valid((client, ip), now))
        return self._ordered(live)

    def expire(self, now: float) -> int:
        """Remove every name whose TTL + grace has passed. Returns the number of (client, IP) pairs removed."""
        before = len(self._entries)
        for key in list(self._entries):
            self._valid(key, now)
        return before - len(self._entries)
