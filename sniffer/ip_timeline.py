"""Which pod held an IP address when: pod IPs are reused, so an observation made at time t must
resolve to the pod that held the address at t, and a deleted pod stays resolvable for a grace period.
Not thread-safe: the ClusterIndex calls it under its lock."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sniffer.pods import PodInfo


@dataclass(slots=True)
class _Tenure:
    """A pod holding an IP from `start` until `end` (None: still holds it)."""

    start: float
    end: float | None
    pod: PodInfo


@dataclass
class IpTimeline:
    """IP -> tenures. `slack`: how long before its watch event a pod may already be seen; `grace`: how
    long a deleted pod's address still resolves to it."""

    grace: float
    slack: float
    _tenures: dict[str, list[_Tenure]] = field(default_factory=lambda: defaultdict(list))

    def claim(self, ips: Iterable[str], pod: PodInfo, at: float) -> None:
        for ip in ips:
            self._tenures[ip].append(_Tenure(start=at, end=None, pod=pod))

    def release(self, ips: Iterable[str], uid: str, at: float) -> None:
        """The pod `uid` stopped holding `ips` at `at`."""
        for ip in ips:
            for t in self._tenures.get(ip, []):
                if t.end is None and t.pod.uid == uid:
                    t.end = at

    def update(self, ips: Iterable[str], pod: PodInfo) -> None:
        """The current tenures of `pod` (same uid) now carry this version of it."""
        for ip in ips:
            for t in self._tenures.get(ip, []):
                if t.end is None and t.pod.uid == pod.uid:
                    t.pod = pod

    def at(self, ip: str, at: float) -> PodInfo | None:
        """The pod that held `ip` at time `at`.

        Order of preference: the tenure covering `at` (latest start wins); a tenure that began up to
        `slack` seconds after `at` (the watch event can arrive after the first connect); the last
        tenure that ended within `grace` before `at` (late observations of a deleted pod).
        """
        tenures = self._tenures.get(ip)
        if not tenures:
            return None
        holding = [t for t in tenures if t.start <= at and (t.end is None or t.end >= at)]
        if holding:
            return max(holding, key=lambda t: t.start).pod
        later = [t for t in tenures if at < t.start <= at + self.slack]
        if later:
            return min(later, key=lambda t: t.start).pod
        ended = [t for t in tenures if t.end is not None and at - self.grace <= t.end < at]
        if ended:
            return max(ended, key=lambda t: t.end or 0.0).pod
        return None

    def prune(self, now: float) -> int:
        """Forget tenures that ended more than `grace` seconds before `now`; returns how many."""
        removed = 0
        for ip in list(self._tenures):
            kept = [t for t in self._tenures[ip] if t.end is None or t.end > now - self.grace]
            removed += len(self._tenures[ip]) - len(kept)
            if kept:
                self._tenures[ip] = kept
            else:
                del self._tenures[ip]
        return removed
