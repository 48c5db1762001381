"""Owner objects of kinds nobody watches (custom controllers), fetched on demand through the
dynamic client, cached, and given up quietly on Forbidden or NotFound."""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    DynamicApiError,
    ForbiddenError,
    NotFoundError,
    ResourceNotFoundError,
    ResourceNotUniqueError,
)

from sniffer.kube_discovery import RawObj

log = logging.getLogger(__name__)


@dataclass
class _CachedOwner:
    obj: RawObj | None
    expires: float


class OwnerFetcher:
    """Reads single owner objects of any kind; misses and hits are cached for `cache_ttl` seconds."""

    def __init__(self, api: client.ApiClient, *, cache_ttl: float = 300.0, timeout: float = 3.0,
                 cache_max: int = 4096) -> None:
        self._api = api
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self.cache_max = cache_max
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str, str], _CachedOwner] = {}
        self._dynamic: DynamicClient | None = None
        self._dynamic_dir: Path | None = None

    def lookup(self, api_version: str, kind: str, namespace: str, name: str) -> RawObj | None:
        """Fetch an owner object of any kind through the dynamic client.

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
            resource = self._dynamic_client().resources.get(api_version=api_version, kind=kind)
            # Short timeout: a stream thread waits for it before its next event.
            got = resource.get(name=name, namespace=namespace if resource.namespaced else None,
                               _request_timeout=(self.timeout, self.timeout))
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
        with self._lock:
            if len(self._cache) >= self.cache_max:
                # Dicts keep insertion order: drop the oldest entry.
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = _CachedOwner(obj=obj, expires=now + ttl)
        return obj

    def _dynamic_client(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                # The dynamic client caches discovery in a file; keep it private to this feed
                # instead of the shared default in /tmp.
                self._dynamic_dir = Path(tempfile.mkdtemp(prefix="netmapper-discovery-"))
                self._dynamic = DynamicClient(self._api, cache_file=str(self._dynamic_dir / "discovery.json"))
            return self._dynamic

    def close(self) -> None:
        """Remove the dynamic client's discovery cache file."""
        if self._dynamic_dir is not None:
            shutil.rmtree(self._dynamic_dir, ignore_errors=True)
            self._dynamic_dir = None
