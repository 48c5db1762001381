"""The one interface every identity source implements; the resolver never knows which it has."""
from __future__ import annotations

from typing import Protocol

from sniffer.cluster import ClusterIndex


class IdentityFeed(Protocol):
    """Fills a ClusterIndex from somewhere (a snapshot file, a live Kubernetes watch)."""

    def start(self, index: ClusterIndex) -> None:
        """Begin feeding `index` (may return before the first sync; see wait_synced)."""

    def wait_synced(self, timeout: float) -> bool:
        """True once the index holds a complete first view of the source."""

    def stop(self) -> None:
        """Stop feeding; idempotent."""
