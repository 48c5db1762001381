"""Which DNS replies may attach names to IPs.

By default only replies whose source address is one of the cluster's DNS servers are trusted: the
kube-dns Service ClusterIPs, the CoreDNS pod IPs and a node-local DNS address if configured. Both the
Service IPs and the pod IPs are needed: a pod that queries the ClusterIP sees the reply coming from the
ClusterIP again (conntrack reverses the DNAT before the packet reaches the pod's socket), while
node-local caches and hostNetwork clients may talk to CoreDNS pods directly.

Without this a pod could answer its own queries, or send spoofed replies to other pods, and change the
names attached to their edges. Rejected replies are counted and logged at most once per
`log_interval_s`, with the number suppressed since the previous line; they never raise.

Pure code, no I/O besides logging.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from netmapper_api.addresses import IPAddress, normalize_ip

log = logging.getLogger(__name__)


@dataclass
class DnsTrustPolicy:
    """Accepts replies from trusted DNS server addresses only (unless trust_all, for non-cluster use)."""

    trusted_servers: frozenset[IPAddress] = frozenset()
    trust_all: bool = False  # accept every reply (a plain host without cluster DNS); off by default
    log_interval_s: float = 60.0  # at most one "rejected" log line per interval
    clock: Callable[[], float] = time.monotonic  # for the log rate limit only
    accepted: int = 0
    rejected: int = 0
    _suppressed: int = field(default=0, repr=False)
    _last_log: float | None = field(default=None, repr=False)

    @classmethod
    def from_addresses(cls, servers: Iterable[IPAddress | str], **kw: object) -> DnsTrustPolicy:
        return cls(trusted_servers=frozenset(normalize_ip(s) for s in servers), **kw)  # type: ignore[arg-type]

    def set_trusted(self, servers: Iterable[IPAddress | str]) -> None:
        """Replace the trusted set (the cluster's DNS Service/pods changed)."""
        self.trusted_servers = frozenset(normalize_ip(s) for s in servers)

    def is_trusted(self, server: IPAddress) -> bool:
        return self.trust_all or normalize_ip(server) in self.trusted_servers

    def check(self, server: IPAddress, client: IPAddress | None = None, *, detail: str = "") -> bool:
        """Count and (rate-limited) log the decision for a reply from `server` to `client`."""
        if self.is_trusted(server):
            self.accepted += 1
            return True
        self.rejected += 1
        now = self.clock()
        if self._last_log is not None and now - self._last_log < self.log_interval_s:
            self._suppressed += 1
            return False
        more = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
        log.warning("ignoring DNS reply from untrusted server %s to %s%s%s; %d rejected in total",
                    server, client if client is not None else "?", f" [{detail}]" if detail else "",
                    more, self.rejected)
        self._last_log, self._suppressed = now, 0
        return False

