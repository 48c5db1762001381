"""Which kinds the live feed watches, and which version of each this API server serves (discovery)."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3

from sniffer.kube_http import KubeApiError

RawObj = dict[str, Any]
# (method, path) -> a response whose body is still unread
Request = Callable[[str, str], urllib3.BaseHTTPResponse]


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


class Discovery:
    """The resources each groupVersion serves, asked once and cached until forget()."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._lock = threading.Lock()
        self._served: dict[str, list[RawObj] | None] = {}  # groupVersion -> resources, None: not served

    def resources(self, group_version: str, *, fresh: bool = False) -> list[RawObj] | None:
        """The resources a groupVersion serves, or None if it is not served (cached unless `fresh`)."""
        with self._lock:
            if not fresh and group_version in self._served:
                return self._served[group_version]
        path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        resp = self._request("GET", path)
        if resp.status == 404:
            resp.read()
            found: list[RawObj] | None = None
        elif 200 <= resp.status < 300:
            found = list(json.loads(resp.read()).get("resources") or [])
        else:
            raise KubeApiError.from_response(resp)
        with self._lock:
            self._served[group_version] = found
        return found

    def forget(self) -> None:
        with self._lock:
            self._served.clear()

    def discover(self, wanted: WantedKind) -> ServedResource | None:
        """First version in `wanted.versions` that serves list+watch of the kind, else None."""
        for version in wanted.versions:
            gv = f"{wanted.group}/{version}" if wanted.group else version
            for r in self.resources(gv) or []:
                if r.get("name") == wanted.plural and {"list", "watch"} <= set(r.get("verbs") or []):
                    return ServedResource(kind=wanted.kind, group=wanted.group, version=version,
                                          plural=wanted.plural)
        return None
