"""Live Kubernetes feed: list, then watch, the objects the resolver needs into a ClusterIndex.

One thread per watched stream. Each stream discovers which API version the server serves for its
kind, lists it (paginated, a consistent snapshot), hands the list to the index as a full replace,
then watches from the list's resourceVersion with bookmarks. A 410 Gone (the server no longer has
history back to our resourceVersion) triggers a relist; any other failure reconnects with
exponential backoff and jitter from the last resourceVersion seen.

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
Owner kinds nobody watches (custom controllers) are fetched on demand with the dynamic client
(`lookup_owner`), cached, and give up quietly on Forbidden or NotFound.
"""
from __future__ import annotations

import copy
import json
import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypedDict

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    DynamicApiError,
    ForbiddenError,
    NotFoundError,
    ResourceNotFoundError,
    ResourceNotUniqueError,
)

from sniffer.cluster import WORKLOAD_NAME_ANNOTATION, ClusterIndex

log = logging.getLogger(__name__)

RawObj = dict[str, Any]
Clock = Callable[[], float]

# Accept header values. Metadata-only lists/watches are served since Kubernetes 1.15; the plain JSON
# fallback after the comma keeps us working (with bigger objects) against anything older.
ACCEPT_JSON: Final = "application/json"
ACCEPT_META_LIST: Final = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
ACCEPT_META: Final = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


class WatchEvent(TypedDict):
    """One line of a watch stream."""

    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: RawObj


@dataclass(frozen=True, slots=True)
class WantedKind:
    """A kind the feed watches, with the versions it understands in order of preference."""

    kind: str
    group: str  # "" for the core group
    versions: tuple[str, ...]
    plural: str
    metadata_only: bool = False


@dataclass(frozen=True, slots=True)
class ServedResource:
    """The version of a kind this server actually serves (found through discovery)."""

    kind: str
    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def collection_path(self) -> str:
        """All-namespaces collection URL path, e.g. /apis/apps/v1/replicasets."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/{self.plural}"


def wanted_kinds(*, owners_metadata_only: bool = True) -> tuple[WantedKind, ...]:
    """What the resolver needs. EndpointSlice and CronJob moved to v1 in 1.21; older servers
    (1.20, the test server) serve only v1beta1, so both are listed and discovery picks."""
    m = owners_metadata_only
    return (
        WantedKind("Pod", "", ("v1",), "pods"),
        WantedKind("Service", "", ("v1",), "services"),
        WantedKind("Node", "", ("v1",), "nodes"),
        WantedKind("EndpointSlice", "discovery.k8s.io", ("v1", "v1beta1"), "endpointslices"),
        WantedKind("ReplicaSet", "apps", ("v1",), "replicasets", metadata_only=m),
        WantedKind("Deployment", "apps", ("v1",), "deployments", metadata_only=m),
        WantedKind("StatefulSet", "apps", ("v1",), "statefulsets", metadata_only=m),
        WantedKind("DaemonSet", "apps", ("v1",), "daemonsets", metadata_only=m),
        WantedKind("Job", "batch", ("v1",), "jobs", metadata_only=m),
        WantedKind("CronJob", "batch", ("v1", "v1beta1"), "cronjobs", metadata_only=m),
    )


# ---- shaping: what is kept of each object --------------------------------------------------------

def kubectl_shape(obj: RawObj, served: ServedResource) -> RawObj:
    """Lists omit kind/apiVersion per item and metadata-only responses say PartialObjectMetadata:
    set the real ones. managedFields go, as in `kubectl get -o yaml`."""
    obj["kind"] = served.kind
    obj["apiVersion"] = served.api_version
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def slim_pod(obj: RawObj) -> RawObj:
    """A pod of another node: only what identifies it and its addresses."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    keep_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp",
                                      "deletionTimestamp", "labels", "ownerReferences") if k in meta}
    override = (meta.get("annotations") or {}).get(WORKLOAD_NAME_ANNOTATION)
    if override is not None:
        keep_meta["annotations"] = {WORKLOAD_NAME_ANNOTATION: override}
    out: RawObj = {"apiVersion": obj.get("apiVersion", "v1"), "kind": "Pod", "metadata": keep_meta,
                   "spec": {k: spec[k] for k in ("nodeName", "hostNetwork") if k in spec},
                   "status": {k: status[k] for k in ("phase", "hostIP", "podIP", "podIPs") if k in status}}
    return out


def slim_node(obj: RawObj) -> RawObj:
    status = obj.get("status")
    if isinstance(status, dict):
        status.pop("images", None)
    return obj


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name", "")))


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv else None


# ---- small pieces ---------------------------------------------------------------------------------

STABLE_WATCH_S: Final = 30.0  # a watch that lived this long resets the reconnect backoff

class _Gone(Exception):
    """410: our resourceVersion (or continue token) is older than the server's history."""


class _Stopped(Exception):
    """The feed is stopping; unwinds a stream thread from wherever it is."""


@dataclass
class Backoff:
    """Exponential backoff with jitter; reset after a stream works again."""

    rng: random.Random
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    _next: float = 0.0

    def next_delay(self) -> float:
        base = self._next or self.initial
        self._next = min(self.maximum, base * self.factor)
        # Jitter spreads the reconnects of every node in the cluster after an API server restart.
        return base * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._next = 0.0


@dataclass
class StreamStats:
    """Counters of one watched stream (read by tests and health reporting)."""

    lists: int = 0
    relists_gone: int = 0  # relists forced by 410 Gone
    watches: int = 0  # watch requests opened
    events: int = 0  # ADDED/MODIFIED/DELETED applied
    bookmarks: int = 0
    errors: int = 0
    objects: int = 0  # objects in the last list
    last_error: str = ""
    served: str = ""  # apiVersion in use, "" until discovered


def iter_watch_lines(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Split a chunked watch response into lines as chunks arrive (one JSON event per line)."""
    buf = bytearray()
    for chunk in resp.stream(amt=None, decode_content=True):
        buf.extend(chunk)
        while (nl := buf.find(b"\n")) != -1:
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            if line.strip():
                yield line
    if buf.strip():
        yield bytes(buf)


@dataclass
class _CachedOwner:
    obj: RawObj | None
    expires: float


# ---- one list+watch stream ------------------------------------------------------------------------

@dataclass
class _Stream:
    """List+watch of one kind (optionally one slice of it, by field selector) into the index."""

    name: str
    wanted: WantedKind
    feed: KubeFeed
    field_selector: str | None = None
    shape: Callable[[RawObj], RawObj] | None = None
    # When several streams share a kind (pods of this node / of other nodes), each may only delete
    # objects in its own slice: `scope` says which stored objects belong to this stream. A pod bound
    # to this node leaves the other-nodes watch with a DELETED (carrying its old, unscheduled
    # content) while it enters ours with an ADDED, in either order; the scope check on the stored
    # object keeps the late DELETED from removing what the local stream already holds.
    scope: Callable[[Mapping[str, Any]], bool] | None = None
    # Shared by the streams of one kind so that "check the stored object, then apply" is atomic.
    scope_lock: threading.Lock | None = None
    served: ServedResource | None = None
    resource_version: str = ""
    synced: threading.Event = field(default_factory=threading.Event)
    stats: StreamStats = field(default_factory=StreamStats)
    _owned: set[tuple[str, str]] = field(default_factory=set)  # keys this stream put in (scoped only)
    _resp: urllib3.BaseHTTPResponse | None = None
    _thread: threading.Thread | None = None
    _watching_since: float = 0.0  # monotonic time the current watch was accepted, 0 when none

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"kube-feed-{self.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def interrupt(self) -> None:
        """Unblock a read in progress (called from stop())."""
        resp = self._resp
        if resp is not None:
            try:
                # shutdown() unblocks a recv() in another thread; close() alone may not.
                resp.shutdown()
            except (OSError, RuntimeError, ValueError) as e:
                # Already released to the pool (between requests) or no socket: nothing blocks.
                log.debug("%s: interrupt: %s", self.name, e)
                resp.close()

    # -- loop --

    def _run(self) -> None:
        feed = self.feed
        backoff = Backoff(rng=feed.rng, initial=feed.backoff_initial, maximum=feed.backoff_max)
        need_list = True
        while not feed.stopping.is_set():
            try:
                if self.served is None:
                    self.served = feed.discover(self.wanted)
                    if self.served is None:
                        log.warning("%s: no served version of %s among %s; not watching it",
                                    self.name, self.wanted.kind, self.wanted.versions)
                        self.synced.set()  # nothing to wait for
                        return
                    self.stats.served = self.served.api_version
                if need_list:
                    self._list()
                    need_list = False
                    backoff.reset()
                self._watch()
                # A clean end (the server's timeoutSeconds): reconnect at once from where we are.
            except _Stopped:
                break
            except _Gone:
                self.stats.relists_gone += 1
                log.info("%s: resourceVersion %s expired (410 Gone); relisting", self.name, self.resource_version)
                need_list = True
            except Exception as e:  # noqa: BLE001 - the feed must survive anything the network does
                if feed.stopping.is_set():
                    break
                self.stats.errors += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"[:500]
                status = getattr(e, "status", None)
                if status in (401, 403):
                    # RBAC is missing for this kind: the resolver works without it, but say so loudly.
                    log.warning("%s: not allowed to list/watch %s (HTTP %s); retrying with backoff",
                                self.name, self.wanted.kind, status)
                    self.synced.set()
                elif status == 404:
                    # The version went away (an upgrade removed a beta API): discover again.
                    feed.forget_discovery()
                    self.served = None
                    need_list = True
                else:
                    log.warning("%s: %s; reconnecting", self.name, self.stats.last_error)
                if self._watching_since and time.monotonic() - self._watching_since > STABLE_WATCH_S:
                    backoff.reset()  # it worked for a while: this is a fresh failure, not a flapping one
                feed.stopping.wait(backoff.next_delay())
            finally:
                self._resp = None
                self._watching_since = 0.0

    def _get(self, params: list[tuple[str, str]], *, accept: str, read_timeout: float) -> client.rest.RESTResponse:
        assert self.served is not None
        if self.field_selector:
            params = [*params, ("fieldSelector", self.field_selector)]
        resp = self.feed.request("GET", self.served.collection_path, params, accept=accept,
                                 read_timeout=read_timeout)
        self._resp = resp.response
        if self.feed.stopping.is_set():
            # stop() may have run interrupt() just before this response existed: nobody else will
            # unblock it, so do not start reading.
            resp.response.close()
            raise _Stopped()
        if resp.status == 410:
            resp.read()
            raise _Gone()
        if not 200 <= resp.status < 300:
            resp.read()  # the exception takes its message from the body
            raise ApiException(http_resp=resp)
        return resp

    def _shape(self, obj: RawObj) -> RawObj:
        assert self.served is not None
        obj = kubectl_shape(obj, self.served)
        return self.shape(obj) if self.shape is not None else obj

    def _list(self) -> None:
        """Paginated consistent list, then a full replace of this stream's slice of the index."""
        feed = self.feed
        accept = ACCEPT_META_LIST if self.wanted.metadata_only else ACCEPT_JSON
        t0 = time.monotonic()
        items: list[RawObj] = []
        cont = ""
        while True:
            params = [("limit", str(feed.page_size))]
            if cont:
                params.append(("continue", cont))
            try:
                resp = self._get(params, accept=accept, read_timeout=feed.request_timeout)
            except _Gone:
                if not cont:
                    raise
                # The continue token outlived etcd's compaction window: start the list over.
                log.info("%s: list continue token expired; restarting the list", self.name)
                items, cont = [], ""
                continue
            page = json.loads(resp.read())
            # Shape page by page so a 10k-pod list never holds every full pod at once.
            items.extend(self._shape(o) for o in page.get("items") or [])
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                self.resource_version = str(meta.get("resourceVersion") or "")
                break
            if feed.stopping.is_set():
                return
        at = feed.clock()
        index = feed.index
        if self.scope is None or self.scope_lock is None:
            index.replace(self.wanted.kind, items, at)
        else:
            fresh = {_key(o) for o in items}
            with self.scope_lock:
                for ns, name in self._owned - fresh:
                    stored = index.object(self.wanted.kind, ns, name)
                    if stored is not None and self.scope(stored):
                        index.apply("DELETED", stored, at)
                for o in items:
                    index.apply("MODIFIED" if _key(o) in self._owned else "ADDED", o, at)
            self._owned = fresh
        self.stats.lists += 1
        self.stats.objects = len(items)
        log.debug("%s: listed %d %s at rv %s in %.2fs", self.name, len(items), self.wanted.kind,
                  self.resource_version, time.monotonic() - t0)
        self.synced.set()

    def _watch(self) -> None:
        feed = self.feed
        # Randomised like client-go so that all watches of a cluster do not expire together.
        timeout_s = int(feed.watch_timeout * feed.rng.uniform(1.0, 2.0))
        params = [("watch", "true"), ("resourceVersion", self.resource_version),
                  ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(timeout_s))]
        accept = ACCEPT_META if self.wanted.metadata_only else ACCEPT_JSON
        resp = self._get(params, accept=accept, read_timeout=timeout_s + feed.request_timeout)
        self.stats.watches += 1
        self._watching_since = time.monotonic()
        try:
            for line in iter_watch_lines(resp.response):
                event: WatchEvent = json.loads(line)
                self._handle(event)
                if feed.stopping.is_set():
                    return
        finally:
            resp.response.release_conn()

    def _handle(self, event: WatchEvent) -> None:
        etype, obj = event.get("type"), event.get("object") or {}
        if etype == "ERROR":
            # A Status object. 1.20's watch cache reports "too old resource version" this way.
            code = obj.get("code")
            if code == 410:
                raise _Gone()
            raise ApiException(status=int(code or 0), reason=str(obj.get("message") or obj))
        if etype == "BOOKMARK":
            self.stats.bookmarks += 1
            self.resource_version = _resource_version(obj) or self.resource_version
            return
        if etype not in ("ADDED", "MODIFIED", "DELETED"):
            log.debug("%s: ignoring watch event type %r", self.name, etype)
            return
        rv = _resource_version(obj)
        shaped = self._shape(obj)
        index = self.feed.index
        if self.scope is None or self.scope_lock is None:
            index.apply(etype, shaped, self.feed.clock())
        else:
            key = _key(shaped)
            with self.scope_lock:
                if etype == "DELETED":
                    self._owned.discard(key)
                    stored = index.object(self.wanted.kind, *key)
                    if stored is not None and self.scope(stored):
                        index.apply(etype, shaped, self.feed.clock())
                    else:
                        # Already gone, or it left our field selector for another stream's.
                        log.debug("%s: %s/%s not ours any more; not deleting", self.name, *key)
                else:
                    self._owned.add(key)
                    index.apply(etype, shaped, self.feed.clock())
        self.stats.events += 1
        if rv:
            self.resource_version = rv


# ---- the feed -----------------------------------------------------------------------------------

def configuration_from_kubeconfig(path: Path, context: str | None = None) -> client.Configuration:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), context=context, client_configuration=cfg,
                            persist_config=False)
    return cfg


def configuration_in_cluster() -> client.Configuration:
    """The pod's service account (token file re-read as kubelet rotates it)."""
    cfg = client.Configuration()
    config.load_incluster_config(client_configuration=cfg)
    return cfg


@dataclass
class KubeFeed:
    """IdentityFeed over a live Kubernetes API (see module docstring).

    Use `KubeFeed.from_kubeconfig(path)` or `KubeFeed.in_cluster()`, or pass a Configuration.
    `node_name` (the sniffer's node) splits pods into a full watch of this node and a slim watch of
    the rest; without it every pod is kept whole.
    """

    configuration: client.Configuration
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
    _api: client.ApiClient | None = None
    _streams: list[_Stream] = field(default_factory=list)
    _discovery_lock: threading.Lock = field(default_factory=threading.Lock)
    _discovery: dict[str, list[RawObj] | None] = field(default_factory=dict)  # groupVersion -> resources
    _owner_lock: threading.Lock = field(default_factory=threading.Lock)
    _owner_cache: dict[tuple[str, str, str, str], _CachedOwner] = field(default_factory=dict)
    _dynamic: DynamicClient | None = None
    _dynamic_dir: Path | None = None
    _started_at: float = 0.0
    _synced_logged: bool = False

    @classmethod
    def from_kubeconfig(cls, path: Path, *, context: str | None = None, **kw: Any) -> KubeFeed:
        return cls(configuration=configuration_from_kubeconfig(path, context), **kw)

    @classmethod
    def in_cluster(cls, **kw: Any) -> KubeFeed:
        return cls(configuration=configuration_in_cluster(), **kw)

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
        if index.owner_lookup is None:
            # The live feed is what can read owner kinds nobody watches.
            index.owner_lookup = self.lookup_owner
        self._streams = self._make_streams()
        cfg = copy.deepcopy(self.configuration)
        # One long-lived connection per watch plus lists and owner lookups; the default pool
        # (5 x CPUs) would otherwise discard and reopen connections.
        cfg.connection_pool_maxsize = max(cfg.connection_pool_maxsize or 0, len(self._streams) + 4)
        self._api = client.ApiClient(cfg)
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
            s.join(5.0)
            if s._thread is not None and s._thread.is_alive():
                log.warning("%s: thread did not stop within 5s", s.name)
        if self._api is not None:
            self._api.close()
        if self._dynamic_dir is not None:
            shutil.rmtree(self._dynamic_dir, ignore_errors=True)
            self._dynamic_dir = None

    def stats(self) -> dict[str, StreamStats]:
        """A copy of every stream's counters, by stream name."""
        return {s.name: replace(s.stats) for s in self._streams}

    # ---- streams ------------------------------------------------------------------------------

    def _make_streams(self) -> list[_Stream]:
        streams: list[_Stream] = []
        node = self.node_name
        for w in wanted_kinds(owners_metadata_only=self.owners_metadata_only):
            if w.kind == "Pod" and node:
                pods_lock = threading.Lock()
                streams.append(_Stream(
                    name="pods-local", wanted=w, feed=self, field_selector=f"spec.nodeName={node}",
                    scope=lambda o: _node_of(o) == node, scope_lock=pods_lock))
                streams.append(_Stream(
                    name="pods-remote", wanted=w, feed=self, field_selector=f"spec.nodeName!={node}",
                    shape=slim_pod, scope=lambda o: _node_of(o) != node, scope_lock=pods_lock))
            elif w.kind == "Node":
                streams.append(_Stream(name="nodes", wanted=w, feed=self, shape=slim_node))
            else:
                streams.append(_Stream(name=w.plural, wanted=w, feed=self))
        return streams

    # ---- HTTP ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None, *,
                accept: str = ACCEPT_JSON, read_timeout: float | None = None) -> client.rest.RESTResponse:
        """A raw request through the client's auth and TLS; the body is left unread (streams)."""
        api = self._api
        if api is None:
            raise RuntimeError("KubeFeed.start() has not been called")
        _, url, headers, _, _ = api.param_serialize(
            method, path, query_params=params or [], header_params={"Accept": accept},
            auth_settings=["BearerToken"])
        return api.call_api(method, url, header_params=headers,
                            _request_timeout=(self.request_timeout, read_timeout or self.request_timeout))

    def _group_version(self, group_version: str) -> list[RawObj] | None:
        """The resources a groupVersion serves, or None if it is not served (cached)."""
        with self._discovery_lock:
            if group_version in self._discovery:
                return self._discovery[group_version]
        path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        resp = self.request("GET", path)
        body = resp.read()
        if resp.status == 404:
            found: list[RawObj] | None = None
        elif 200 <= resp.status < 300:
            found = list(json.loads(body).get("resources") or [])
        else:
            raise ApiException(http_resp=resp)
        with self._discovery_lock:
            self._discovery[group_version] = found
        return found

    def forget_discovery(self) -> None:
        with self._discovery_lock:
            self._discovery.clear()

    def discover(self, wanted: WantedKind) -> ServedResource | None:
        """First version in `wanted.versions` that serves list+watch of the kind, else None."""
        for version in wanted.versions:
            gv = f"{wanted.group}/{version}" if wanted.group else version
            for r in self._group_version(gv) or []:
                if r.get("name") == wanted.plural and {"list", "watch"} <= set(r.get("verbs") or []):
                    return ServedResource(kind=wanted.kind, group=wanted.group, version=version,
                                          plural=wanted.plural)
        return None

    # ---- owners nobody watches ----------------------------------------------------------------

    def lookup_owner(self, api_version: str, kind: str, namespace: str, name: str) -> RawObj | None:
        """Fetch an owner object of any kind through the dynamic client.

        Returns None (and logs at debug) when it is Forbidden, NotFound or the kind is not served:
        the resolver then stops its owner walk at this reference, which still names the workload.
        Results, misses included, are cached for owner_cache_ttl: the index may ask again for every
        pod of a namespace whenever an owner changes, and it asks while holding its lock.
        """
        key = (api_version, kind, namespace, name)
        now = time.monotonic()
        with self._owner_lock:
            hit = self._owner_cache.get(key)
            if hit is not None and hit.expires > now:
                return hit.obj
        obj: RawObj | None = None
        ttl = self.owner_cache_ttl
        try:
            resource = self._dynamic_client().resources.get(api_version=api_version, kind=kind)
            # Short timeout: the index calls this while holding its lock.
            got = resource.get(name=name, namespace=namespace if resource.namespaced else None,
                               _request_timeout=(self.owner_lookup_timeout, self.owner_lookup_timeout))
            obj = got.to_dict()
            if obj is not None:
                obj.setdefault("kind", kind)
                obj.setdefault("apiVersion", api_version)
                (obj.get("metadata") or {}).pop("managedFields", None)
        except (ForbiddenError, NotFoundError, ResourceNotFoundError, ResourceNotUniqueError) as e:
            log.debug("owner %s %s %s/%s not readable: %s", api_version, kind, namespace, name,
                      type(e).__name__)
        except (DynamicApiError, ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            # Transient (server down, timeout): do not remember the miss for long.
            log.debug("owner lookup %s %s %s/%s failed: %s", api_version, kind, namespace, name, e)
            ttl = min(ttl, 5.0)
        with self._owner_lock:
            if len(self._owner_cache) >= self.owner_cache_max:
                # Dicts keep insertion order: drop the oldest entry.
                self._owner_cache.pop(next(iter(self._owner_cache)))
            self._owner_cache[key] = _CachedOwner(obj=obj, expires=now + ttl)
        return obj

    def _dynamic_client(self) -> DynamicClient:
        with self._owner_lock:
            if self._dynamic is None:
                if self._api is None:
                    raise RuntimeError("KubeFeed.start() has not been called")
                # The dynamic client caches discovery in a file; keep it private to this feed
                # instead of the shared default in /tmp.
                self._dynamic_dir = Path(tempfile.mkdtemp(prefix="netmapper-discovery-"))
                self._dynamic = DynamicClient(self._api, cache_file=str(self._dynamic_dir / "discovery.json"))
            return self._dynamic


def _node_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("nodeName") or "")
