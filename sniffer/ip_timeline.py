"""Which pod held an IP address when: pod IPs are reused, so an observation made at time t must
resolve to the pod that held the address at t, and a deleted pod stays resolvable for a grace period.
Not thread-safe: the ClusterIndex calls it under its lock."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sniffer.pods import PodInfo


@dataclass(slots=True)
class _Tenure:
    """A pod holding an IP from `start` until `end` (None: still holds it)."""

    start: float
    end: float | None
    pod: PodInfo
    # The address's tenure claimed before this one: an address's tenures are a chain from its latest,
    # so the common case, one pod per address, costs no list (~80 B per address).
    earlier: _Tenure | None = None


@dataclass
class IpTimeline:
    """IP -> tenures. `slack`: how long before its watch event a pod may already be seen; `grace`: how
    long a deleted pod's address still resolves to it."""

    grace: float
    slack: float
    _latest: dict[str, _Tenure] = field(default_factory=dict)

    def _chain(self, ip: str) -> Iterator[_Tenure]:
        """The address's tenures, latest claimed first."""
        t = self._latest.get(ip)
        while t is not None:
            yield t
            t = t.earlier

    def claim(self, ips: Iterable[str], pod: PodInfo, at: float) -> None:
        for ip in ips:
            self._latest[ip] = _Tenure(start=at, end=None, pod=pod, earlier=self._latest.get(ip))

    def release(self, ips: Iterable[str], uid: str, at: float) -> None:
        """The pod `uid` stopped holding `ips` at `at`."""
        for ip in ips:
            for t in self._chain(ip):
                if t.end is None and t.pod.uid == uid:
                    t.end = at

    def update(self, ips: Iterable[str], pod: PodInfo) -> None:
        """The current tenures of `pod` (same uid) now carry this version of it."""
        for ip in ips:
            for t in self._chain(ip):
                if t.end is None and t.pod.uid == pod.uid:
                    t.pod = pod

    def at(self, ip: str, at: float) -> PodInfo | None:
        """The pod that held `ip` at time `at`.

        Order of preference: the tenure covering `at` (latest start wins); a tenure that began up to
        `slack` seconds after `at` (the watch event can arrive after the first connect); the last
        tenure that ended within `grace` before `at` (late observations of a deleted pod). Among equals,
        the one claimed first (the chain runs latest first, hence >= and <=).
        """
        holding = later = ended = None
        for t in self._chain(ip):
            if t.start <= at and (t.end is None or t.end >= at):
                if holding is None or t.start >= holding.start:
                    holding = t
            elif at < t.start <= at + self.slack:
                if later is None or t.start <= later.start:
                    later = t
            elif t.end is not None and at - self.grace <= t.end < at:
                if ended is None or t.end >= (ended.end or 0.0):
                    ended = t
        best = holding or later or ended
        return None if best is None else best.pod

    def prune(self, now: float) -> int:
        """Forget tenures that ended more than `grace` seconds before `now`; returns how many."""
        removed = 0
        for ip in list(self._latest):
            chain = list(self._chain(ip))
            kept = [t for t in chain if t.end is None or t.end > now - self.grace]
            if len(kept) == len(chain):
                continue
            removed += len(chain) - len(kept)
            earlier = None
            for t in reversed(kept):
                t.earlier, earlier = earlier, t
            if earlier is None:
                del self._latest[ip]
            else:
                self._latest[ip] = earlier
        return removed
