"""The names clients resolved, shared by the DNS watcher thread (writes) and the resolver (reads).

Both are handed this table when they are built, so neither is wired to the other after construction.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

from netmapper_api.addresses import normalize_ip
from netmapper_api.endpoints import Endpoint
from netmapper_api.keys import endpoint_id
from sniffer.dns_cache import DnsCache
from sniffer.dns_parse import DnsAnswer


class DnsNameTable:
    """A DnsCache keyed by client identity, behind a lock."""

    def __init__(self, cache: DnsCache | None = None) -> None:
        self._cache = cache if cache is not None else DnsCache()
        self._lock = threading.Lock()

    def record(self, client: Endpoint, answers: Iterable[DnsAnswer], at: float) -> int:
        """Remember what `client` was answered at `at`; returns how many (IP, name) pairs were stored."""
        with self._lock:
            return self._cache.record(endpoint_id(client), answers, at)

    def names(self, client: Endpoint, ip: str, at: float) -> tuple[str, ...]:
        """Names `client` resolved to `ip` that are still valid at `at` (the resolver's DnsNames)."""
        with self._lock:
            return self._cache.names_for(endpoint_id(client), normalize_ip(ip), at)

    def __len__(self) -> int:
        """Names held (for the sniffer's metrics)."""
        with self._lock:
            return len(self._cache)
