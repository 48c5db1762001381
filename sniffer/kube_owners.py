"""Owner objects of kinds nobody watches (custom controllers), fetched on demand by one GET each
(the resource found through discovery), cached, and given up quietly on Forbidden or NotFound."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import urllib3

from sniffer.kube_discovery import Discovery, RawObj
from sniffer.kube_http import ACCEPT_JSON, ACCEPT_META, KubeApiError

log = logging.getLogger(__name__)

# (path, accept, timeout in seconds) -> a response whose body is still unread
GetObject = Callable[[str, str, float], urllib3.BaseHTTPResponse]

_QUIET: frozenset[int] = frozenset({403, 404})  # RBAC does not allow it, or it is gone: stop the walk here
_TRANSIENT_TTL = 5.0  # seconds a failed lookup (server down, timeout) is remembered


@dataclass
class _CachedOwner:
    obj: RawObj | None
    expires: float


class _NotServed(Exception):
    """The groupVersion or the kind is not served by this API server."""


class OwnerFetcher:
    """Reads single owner objects of any kind; misses and hits are cached for `cache_ttl` seconds."""

    def __init__(self, get: GetObject, discovery: Discovery, *, metadata_only: bool = True,
                 cache_ttl: float = 300.0, timeout: float = 3.0, cache_max: int = 4096) -> None:
        self._get = get
        self._discovery = discovery
        self.metadata_only = metadata_only
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self.cache_max = cache_max
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str, str], _CachedOwner] = {}

    def lookup(self, api_version: str, kind: str, namespace: str, name: str) -> RawObj | None:
        """Fetch an owner object of any kind (metadata only when `metadata_only`).

        Returns None (and logs at debug) when it is Forbidden, NotFound or the kind is not served:
        the resolver then stops its owner walk at this reference, which still names the workload.
        Results, misses included, are cached for cache_ttl: the feed asks again for every pod of a
        namespace whenever an owner there changes.
        """
        key = (api_version, kind, namespace, name)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit.expires > now:
                return hit.obj
        obj: RawObj | None = None
        ttl = self.cache_ttl
        try:
            obj = self._fetch(api_version, kind, namespace, name)
        except _NotServed as e:
            log.debug("owner %s %s %s/%s not readable: %s", api_version, kind, namespace, name, e)
        except KubeApiError as e:
            log.debug("owner lookup %s %s %s/%s failed: %s", api_version, kind, namespace, name, e)
            if e.status not in _QUIET:
                ttl = min(ttl, _TRANSIENT_TTL)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            # Transient (server down, timeout): do not remember the miss for long.
            log.debug("owner lookup %s %s %s/%s failed: %s", api_version, kind, namespace, name, e)
            ttl = min(ttl, _TRANSIENT_TTL)
        with self._lock:
            if len(self._cache) >= self.cache_max:
                # Dicts keep insertion order: drop the oldest entry.
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = _CachedOwner(obj=obj, expires=now + ttl)
        return obj

    def _resource(self, api_version: str, kind: str) -> RawObj:
        """The discovery entry of the kind (not a subresource); asks the server again once on a miss,
        in case the kind was installed (a CRD) since discovery was cached."""
        for fresh in (False, True):
            for r in self._discovery.resources(api_version, fresh=fresh) or []:
                if r.get("kind") == kind and "/" not in str(r.get("name") or "/"):
                    return r
        raise _NotServed(f"{kind} not served in {api_version}")

    def _fetch(self, api_version: str, kind: str, namespace: str, name: str) -> RawObj:
        resource = self._resource(api_version, kind)
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        plural = quote(str(resource["name"]), safe="")
        if resource.get("namespaced"):
            path = f"{base}/namespaces/{quote(namespace, safe='')}/{plural}/{quote(name, safe='')}"
        else:
            path = f"{base}/{plural}/{quote(name, safe='')}"
        # Short timeout: a stream thread waits for it before its next event.
        resp = self._get(path, ACCEPT_META if self.metadata_only else ACCEPT_JSON, self.timeout)
        if not 200 <= resp.status < 300:
            raise KubeApiError.from_response(resp)
        obj = json.loads(resp.read())
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: not a JSON object")
        # A metadata-only answer says PartialObjectMetadata: name the real kind, as the watched owners do.
        obj["kind"], obj["apiVersion"] = kind, api_version
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        return obj
