"""Where one list+watch stream writes in the ClusterIndex: a whole kind, or one slice of a kind that
several streams share (pods of this node, pods of the other nodes).

A pod bound to this node leaves the other-nodes watch with a DELETED (carrying its old, unscheduled
content) while it enters ours with an ADDED, in either order. Each slice may therefore delete only
objects in its own scope: the scope check on the stored object keeps a late DELETED from removing
what the other stream already holds. The slices of one kind share a lock so that "check the stored
object, then apply" is atomic.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sniffer.cluster import ClusterIndex
from sniffer.kube_discovery import RawObj
from sniffer.kube_records import Record
from sniffer.kube_shape import namespaced_name

log = logging.getLogger(__name__)


class IndexSink(Protocol):
    def replace(self, records: Sequence[Record], at: float) -> None:
        """A complete list, as records: what is missing from it is deleted at `at`."""

    def apply(self, event_type: str, obj: RawObj, at: float) -> None:
        """One watch event (ADDED, MODIFIED, DELETED)."""


@dataclass
class WholeKind:
    """Every object of `kind` comes from one stream."""

    index: ClusterIndex
    kind: str

    def replace(self, records: Sequence[Record], at: float) -> None:
        self.index.replace(self.kind, records, at)

    def apply(self, event_type: str, obj: RawObj, at: float) -> None:
        self.index.apply(event_type, obj, at)


@dataclass
class ScopedSlice:
    """The objects of `kind` for which `scope` holds; other slices of the kind share `lock`."""

    index: ClusterIndex
    kind: str
    name: str  # the stream's name, for logs
    scope: Callable[[Record], bool]  # asked of the record the index keeps
    lock: threading.Lock
    _owned: set[tuple[str, str]] = field(default_factory=set)  # (namespace, name) this slice put in

    def replace(self, records: Sequence[Record], at: float) -> None:
        fresh = {(r.namespace, r.name) for r in records}
        index = self.index
        with self.lock:
            for ns, name in self._owned - fresh:
                stored = index.object(self.kind, ns, name)
                if stored is not None and self.scope(stored):
                    index.delete((self.kind, ns, name), at)
            for r in records:
                index.put(r, at)
            self._owned = fresh

    def apply(self, event_type: str, obj: RawObj, at: float) -> None:
        key = namespaced_name(obj)
        with self.lock:
            if event_type == "DELETED":
                self._owned.discard(key)
                stored = self.index.object(self.kind, *key)
                if stored is not None and self.scope(stored):
                    self.index.delete((self.kind, *key), at)
                else:
                    # Already gone, or it left our field selector for another stream's.
                    log.debug("%s: %s/%s not ours any more; not deleting", self.name, *key)
            else:
                self._owned.add(key)
                self.index.apply(event_type, obj, at)
