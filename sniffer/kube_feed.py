"""Live Kubernetes feed: list, then watch, the objects the resolver needs into a ClusterIndex.

One thread per watched stream (kube_stream.py: discovery, paginated list, watch from the list's
resourceVersion, relist on 410 Gone, backoff and jitter on anything else).

Objects reach the index as plain dicts in API JSON shape (as `kubectl get -o yaml` prints them:
kind/apiVersion set, no managedFields), the same shape the snapshot feed delivers, so the resolver
has one code path. To keep memory flat on big clusters, what is not needed is dropped before it
is stored:
- Pods of this node are kept whole (field selector `spec.nodeName=<node>`); pods of other nodes come
  from a second watch (`spec.nodeName!=<node>`) and keep only identity: names, labels, owners, the
  workload-name annotation, node, hostNetwork and IPs.
- Owner kinds (ReplicaSet, Deployment, ...) are watched metadata-only (PartialObjectMetadata): the
  resolver walks ownerReferences and never needs their pod templates.
- Nodes lose `status.images` (often tens of KB each, never used).
(kube_shape.py; kube_slices.py keeps the two pod streams from deleting each other's pods.)

Owner kinds nobody watches (custom controllers) are fetched on demand, one GET each
(kube_owners.py), by the stream thread that applied the object that needs them, after
the apply: the index asks (missing_owners), the feed fetches outside the index's lock and hands
the objects back (add_owners).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import urllib3

from sniffer.cluster import ClusterIndex
from sniffer.kube_discovery import Discovery, RawObj, ServedResource, WantedKind, wanted_kinds
from sniffer.kube_http import ACCEPT_JSON, KubeHttp, KubeSettings, settings_from_kubeconfig, settings_in_cluster
from sniffer.kube_owners import OwnerFetcher
from sniffer.kube_records import node_of_record
from sniffer.kube_shape import slim_node, slim_pod
from sniffer.kube_slices import ScopedSlice, WholeKind
from sniffer.kube_stream import Stream, StreamStats
from sniffer.owners import MAX_OWNER_DEPTH

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass
class KubeFeed:
    """IdentityFeed over a live Kubernetes API (see module docstring).

    Use `KubeFeed.from_kubeconfig(path)` or `KubeFeed.in_cluster()`, or pass KubeSettings (kube_http.py;
    both constructors raise its KubeConfigError, one line, when the settings cannot be built).
    `node_name` (the sniffer's node) splits pods into a full watch of this node and a slim watch of
    the rest; without it every pod is kept whole.
    """

    settings: KubeSettings
    node_name: str | None = None
    owners_metadata_only: bool = True
    page_size: int = 500
    watch_timeout: float = 300.0  # seconds; each watch asks for 1x-2x this before it is renewed
    request_timeout: float = 30.0  # connect timeout and read timeout of non-watch requests
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    owner_cache_ttl: float = 300.0
    owner_lookup_timeout: float = 3.0
    owner_cache_max: int = 4096
    clock: Clock = time.time  # observation times in the index are wall-clock, like the probes'
    rng: random.Random = field(default_factory=random.Random)
    stopping: threading.Event = field(default_factory=threading.Event)
    _index: ClusterIndex | None = None
    _http: KubeHttp | None = None
    _streams: list[Stream] = field(default_factory=list)
    _discovery: Discovery | None = None
    _owners: OwnerFetcher | None = None
    _started_at: float = 0.0
    _synced_logged: bool = False

    @classmethod
    def from_kubeconfig(cls, path: Path, *, context: str | None = None, **kw: Any) -> KubeFeed:
        return cls(settings=settings_from_kubeconfig(path, context), **kw)

    @classmethod
    def in_cluster(cls, **kw: Any) -> KubeFeed:
        return cls(settings=settings_in_cluster(), **kw)

    # ---- IdentityFeed -------------------------------------------------------------------------

    @property
    def index(self) -> ClusterIndex:
        if self._index is None:
            raise RuntimeError("KubeFeed.start() has not been called")
        return self._index

    def start(self, index: ClusterIndex) -> None:
        """Start one thread per stream; returns at once (see wait_synced)."""
        if self._streams:
            raise RuntimeError("KubeFeed already started")
        self._index = index
        self._streams = self._make_streams(index)
        # One long-lived connection per watch plus lists and owner lookups.
        self._http = KubeHttp(self.settings, maxsize=len(self._streams) + 4)
        self._discovery = Discovery(self.request)
        self._owners = OwnerFetcher(self._get_owner, self._discovery, metadata_only=self.owners_metadata_only,
                                    cache_ttl=self.owner_cache_ttl, timeout=self.owner_lookup_timeout,
                                    cache_max=self.owner_cache_max)
        self._started_at = time.monotonic()
        for s in self._streams:
            s.start()

    def wait_synced(self, timeout: float) -> bool:
        """True once every stream has completed its first list (or found its kind unavailable)."""
        deadline = time.monotonic() + timeout
        for s in self._streams:
            if not s.synced.wait(max(0.0, deadline - time.monotonic())):
                return False
        if self._streams and not self._synced_logged:
            self._synced_logged = True
            log.info("kube feed synced in %.2fs: %s", time.monotonic() - self._started_at, self.index.counts())
        return bool(self._streams)

    def stop(self) -> None:
        self.stopping.set()
        for s in self._streams:
            s.interrupt()
        for s in self._streams:
            if not s.join(5.0):
                log.warning("%s: thread did not stop within 5s", s.name)
        if self._http is not None:
            self._http.close()

    def stats(self) -> dict[str, StreamStats]:
        """A copy of every stream's counters, by stream name."""
        return {s.name: replace(s.stats) for s in self._streams}

    # ---- streams ------------------------------------------------------------------------------

    def _make_streams(self, index: ClusterIndex) -> list[Stream]:
        streams: list[Stream] = []
        node = self.node_name
        for w in wanted_kinds(owners_metadata_only=self.owners_metadata_only):
            if w.kind == "Pod" and node:
                # Pods of this node are kept whole, the others slim: two streams share the kind.
                pods_lock = threading.Lock()
                local = ScopedSlice(index, w.kind, "pods-local", lambda r: node_of_record(r) == node, pods_lock)
                remote = ScopedSlice(index, w.kind, "pods-remote", lambda r: node_of_record(r) != node, pods_lock)
                streams.append(Stream(name="pods-local", wanted=w, feed=self, sink=local,
                                      field_selector=f"spec.nodeName={node}"))
                streams.append(Stream(name="pods-remote", wanted=w, feed=self, sink=remote,
                                      field_selector=f"spec.nodeName!={node}", shape=slim_pod))
            elif w.kind == "Node":
                streams.append(Stream(name="nodes", wanted=w, feed=self, sink=WholeKind(index, w.kind),
                                      shape=slim_node))
            else:
                streams.append(Stream(name=w.plural, wanted=w, feed=self, sink=WholeKind(index, w.kind)))
        return streams

    # ---- owners nobody watches ----------------------------------------------------------------

    def resolve_owners(self) -> None:
        """Fetch the owners the index's owner walks are missing and hand them to it.

        Runs on the stream thread that applied the objects, never under the index's lock. Bounded:
        each round can only reveal the next owner up a chain.
        """
        index = self.index
        for _ in range(MAX_OWNER_DEPTH):
            wanted = index.missing_owners()
            if not wanted:
                return
            index.add_owners({ref: self.lookup_owner(*ref) for ref in wanted})

    def lookup_owner(self, api_version: str, kind: str, namespace: str, name: str) -> RawObj | None:
        """An owner object of any kind (see kube_owners.OwnerFetcher.lookup); None when unreadable."""
        if self._owners is None:
            raise RuntimeError("KubeFeed.start() has not been called")
        return self._owners.lookup(api_version, kind, namespace, name)

    # ---- HTTP and discovery -------------------------------------------------------------------

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None, *,
                accept: str = ACCEPT_JSON, read_timeout: float | None = None) -> urllib3.BaseHTTPResponse:
        """A request with the settings' auth and TLS; the body is left unread (streams)."""
        http = self._http
        if http is None:
            raise RuntimeError("KubeFeed.start() has not been called")
        return http.request(method, path, params, accept=accept,
                            timeout=(self.request_timeout, read_timeout or self.request_timeout))

    def _get_owner(self, path: str, accept: str, timeout: float) -> urllib3.BaseHTTPResponse:
        http = self._http
        if http is None:
            raise RuntimeError("KubeFeed.start() has not been called")
        return http.request("GET", path, accept=accept, timeout=(timeout, timeout))

    def discover(self, wanted: WantedKind) -> ServedResource | None:
        """First version in `wanted.versions` that serves list+watch of the kind, else None."""
        if self._discovery is None:
            raise RuntimeError("KubeFeed.start() has not been called")
        return self._discovery.discover(wanted)

    def forget_discovery(self) -> None:
        if self._discovery is not None:
            self._discovery.forget()
