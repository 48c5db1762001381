"""One list+watch stream of one kind (or one slice of it, by field selector) into the ClusterIndex.

The stream discovers which API version the server serves for its kind, lists it (paginated, a
consistent snapshot), hands the list to its sink as a full replace, then watches from the list's
resourceVersion with bookmarks. A 410 Gone (the server no longer has history back to our
resourceVersion) triggers a relist; any other failure reconnects with exponential backoff and jitter
from the last resourceVersion seen. One thread per stream.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, TypedDict

import urllib3

from sniffer.backoff import Backoff
from sniffer.kube_discovery import RawObj, ServedResource, WantedKind
from sniffer.kube_http import ACCEPT_JSON, ACCEPT_META, ACCEPT_META_LIST, KubeApiError
from sniffer.kube_records import Record, record_of
from sniffer.kube_shape import kubectl_shape, object_resource_version
from sniffer.kube_slices import IndexSink
from sniffer.watch_lines import iter_watch_lines

log = logging.getLogger(__name__)

class WatchEvent(TypedDict):
    """One line of a watch stream."""

    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: RawObj


STABLE_WATCH_S: Final = 30.0  # a watch that lived this long resets the reconnect backoff

class _Gone(Exception):
    """410: our resourceVersion (or continue token) is older than the server's history."""


class _Stopped(Exception):
    """The feed is stopping; unwinds a stream thread from wherever it is."""


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


class StreamHost(Protocol):
    """What a stream needs of the feed that runs it (KubeFeed)."""

    rng: random.Random
    backoff_initial: float
    backoff_max: float
    page_size: int
    watch_timeout: float
    request_timeout: float
    stopping: threading.Event

    def clock(self) -> float: ...

    def discover(self, wanted: WantedKind) -> ServedResource | None: ...

    def forget_discovery(self) -> None: ...

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None, *,
                accept: str = ..., read_timeout: float | None = None) -> urllib3.BaseHTTPResponse: ...

    def resolve_owners(self) -> None:
        """Fetch owners the index asked for (kinds nobody watches), outside the index's lock."""


@dataclass
class Stream:
    """List+watch of one kind (optionally one slice of it, by field selector) into the index."""

    name: str
    wanted: WantedKind
    feed: StreamHost
    sink: IndexSink  # where objects go: the whole kind, or this stream's slice of it (kube_slices)
    field_selector: str | None = None
    shape: Callable[[RawObj], RawObj] | None = None
    served: ServedResource | None = None
    resource_version: str = ""
    synced: threading.Event = field(default_factory=threading.Event)
    stats: StreamStats = field(default_factory=StreamStats)
    _resp: urllib3.BaseHTTPResponse | None = None
    _thread: threading.Thread | None = None
    _watching_since: float = 0.0  # monotonic time the current watch was accepted, 0 when none

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"kube-feed-{self.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; True when it has stopped (or never started)."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

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

    def _get(self, params: list[tuple[str, str]], *, accept: str, read_timeout: float) -> urllib3.BaseHTTPResponse:
        assert self.served is not None
        if self.field_selector:
            params = [*params, ("fieldSelector", self.field_selector)]
        resp = self.feed.request("GET", self.served.collection_path, params, accept=accept,
                                 read_timeout=read_timeout)
        self._resp = resp
        if self.feed.stopping.is_set():
            # stop() may have run interrupt() just before this response existed: nobody else will
            # unblock it, so do not start reading.
            resp.close()
            raise _Stopped()
        if resp.status == 410:
            resp.read()
            raise _Gone()
        if not 200 <= resp.status < 300:
            raise KubeApiError.from_response(resp)  # reads the body: the server's message
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
        items: list[Record] = []
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
            # Records page by page: a 10k-pod list never holds every pod's JSON at once (see ClusterIndex.replace).
            for o in page.get("items") or []:
                rec = record_of(self._shape(o))
                if rec is not None:
                    items.append(rec)
            meta = page.get("metadata") or {}
            del page
            cont = meta.get("continue") or ""
            if not cont:
                self.resource_version = str(meta.get("resourceVersion") or "")
                break
            if feed.stopping.is_set():
                return
        self.sink.replace(items, feed.clock())
        feed.resolve_owners()
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
            for line in iter_watch_lines(resp):
                event: WatchEvent = json.loads(line)
                self._handle(event)
                if feed.stopping.is_set():
                    return
        finally:
            resp.release_conn()

    def _handle(self, event: WatchEvent) -> None:
        etype, obj = event.get("type"), event.get("object") or {}
        if etype == "ERROR":
            # A Status object. 1.20's watch cache reports "too old resource version" this way.
            code = obj.get("code")
            if code == 410:
                raise _Gone()
            raise KubeApiError(int(code or 0), str(obj.get("message") or obj))
        if etype == "BOOKMARK":
            self.stats.bookmarks += 1
            self.resource_version = object_resource_version(obj) or self.resource_version
            return
        if etype not in ("ADDED", "MODIFIED", "DELETED"):
            log.debug("%s: ignoring watch event type %r", self.name, etype)
            return
        rv = object_resource_version(obj)
        self.sink.apply(etype, self._shape(obj), self.feed.clock())
        self.feed.resolve_owners()
        self.stats.events += 1
        if rv:
            self.resource_version = rv
