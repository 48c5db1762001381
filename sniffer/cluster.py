"""ClusterIndex: the Kubernetes objects the resolver needs, indexed by address, time-aware.

Feeds (sniffer.snapshot_feed for a file, sniffer.kube_feed for a live watch) call apply()/replace()
with raw objects in API JSON shape (what `kubectl get -o yaml` prints); the resolver only reads.
One code path for both sources. Thread-safe: a feed thread writes while the drain loop reads.

Time: every change carries the time `at` it was observed. A pod IP is held by a pod over an
interval, so an observation made at time t resolves to the pod that held the IP at t; deleted pods
stay resolvable for `grace` seconds so late observations still find them.
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netmapper_api.endpoints import ServiceRef, Workload

log = logging.getLogger(__name__)

WORKLOAD_NAME_ANNOTATION = "intents.otterize.com/workload-name"
# Kinds whose objects we keep whole; everything else in a snapshot is ignored.
INDEXED_KINDS = frozenset(
    {"Pod", "Service", "EndpointSlice", "Node", "ReplicaSet", "Deployment", "StatefulSet",
     "DaemonSet", "Job", "CronJob", "ReplicationController"}
)
OWNER_KINDS = frozenset({"ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob",
                         "ReplicationController"})
MAX_OWNER_DEPTH = 8  # owner chains are short; a loop in bad data must not hang the resolver

Obj = Mapping[str, Any]
ObjKey = tuple[str, str, str]  # (kind, namespace, name)
OwnerLookup = Callable[[str, str, str, str], Obj | None]  # (apiVersion, kind, namespace, name)


def obj_key(obj: Obj) -> ObjKey:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the resolver needs of a pod, extracted once when the pod changes."""

    namespace: str
    name: str
    uid: str
    ips: tuple[str, ...]
    host_network: bool
    node_name: str
    labels: Mapping[str, str]
    workload: Workload


@dataclass(slots=True)
class _Tenure:
    """A pod holding an IP from `start` until `end` (None: still holds it)."""

    start: float
    end: float | None
    pod: PodInfo


@dataclass
class ClusterIndex:
    """Indexed view of the cluster. `owner_lookup` resolves owner kinds no feed watches."""

    grace: float = 300.0
    slack: float = 10.0
    owner_lookup: OwnerLookup | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _objects: dict[ObjKey, Obj] = field(default_factory=dict)
    _by_uid: dict[str, ObjKey] = field(default_factory=dict)
    _ip_tenures: dict[str, list[_Tenure]] = field(default_factory=lambda: defaultdict(list))
    _pods: dict[tuple[str, str], PodInfo] = field(default_factory=dict)
    _pod_by_uid: dict[str, PodInfo] = field(default_factory=dict)
    _service_ips: dict[str, ServiceRef] = field(default_factory=dict)
    _node_ips: dict[str, str] = field(default_factory=dict)
    # Service -> workloads behind it, asked once per connect to a ClusterIP: cached until pods,
    # Services, EndpointSlices or owners change (the drain loop must not scan pods per connect).
    _svc_workloads: dict[ServiceRef, list[Workload]] = field(default_factory=dict)
    _pruned_at: float = float("-inf")

    # ---- feeding -------------------------------------------------------------------------------

    def apply(self, event_type: str, obj: Obj, at: float, *, refresh: bool = True) -> None:
        """Apply one watch event (ADDED, MODIFIED, DELETED) observed at time `at`.

        refresh=False defers recomputing pod workloads after an owner change (bulk loads do it once).
        """
        kind = obj.get("kind")
        if kind not in INDEXED_KINDS:
            return
        key = obj_key(obj)
        with self._lock:
            self._svc_workloads.clear()
            old = self._objects.get(key)
            if old is not None:
                self._unindex(old, at)
            if event_type == "DELETED":
                self._objects.pop(key, None)
                uid = (obj.get("metadata") or {}).get("uid")
                if uid:
                    self._by_uid.pop(uid, None)
            else:
                self._objects[key] = obj
                self._index(obj, at)
            if refresh and kind in OWNER_KINDS:
                self._refresh_pod_workloads({key[1]})

    def replace(self, kind: str, objs: Iterable[Obj], at: float) -> None:
        """A full list of one kind: what is missing from it was deleted at `at`."""
        fresh = {obj_key(o): o for o in objs}
        with self._lock:
            stale = [k for k in self._objects if k[0] == kind and k not in fresh]
            for k in stale:
                self.apply("DELETED", self._objects[k], at, refresh=False)
            for o in fresh.values():
                self.apply("MODIFIED" if obj_key(o) in self._objects else "ADDED", o, at, refresh=False)
            if kind in OWNER_KINDS:
                self._refresh_pod_workloads({k[1] for k in stale} | {k[1] for k in fresh})

    def load(self, objs: Iterable[Obj], at: float) -> None:
        """Bulk add objects of any kinds (a snapshot); pod workloads are computed once at the end."""
        with self._lock:
            for o in objs:
                self.apply("ADDED", o, at, refresh=False)
            self._refresh_pod_workloads({ns for (_, ns) in self._pods})

    def prune(self, now: float) -> int:
        """Forget IP tenures that ended more than `grace` seconds before `now`.

        Called from every drain cycle; the scan over all IPs runs at most every grace/10 seconds.
        """
        removed = 0
        with self._lock:
            if now - self._pruned_at < self.grace / 10:
                return 0
            self._pruned_at = now
            for ip in list(self._ip_tenures):
                kept = [t for t in self._ip_tenures[ip] if t.end is None or t.end > now - self.grace]
                removed += len(self._ip_tenures[ip]) - len(kept)
                if kept:
                    self._ip_tenures[ip] = kept
                else:
                    del self._ip_tenures[ip]
        return removed

    def _index(self, obj: Obj, at: float) -> None:
        kind, ns, name = obj_key(obj)
        meta = obj.get("metadata") or {}
        if meta.get("uid"):
            self._by_uid[meta["uid"]] = (kind, ns, name)
        if kind == "Pod":
            pod = self._pod_info(obj)
            self._pods[(ns, name)] = pod
            if pod.uid:
                self._pod_by_uid[pod.uid] = pod
            if not pod.host_network:  # a hostNetwork pod's IP is the node's: never claim it
                for ip in pod.ips:
                    self._ip_tenures[ip].append(_Tenure(start=at, end=None, pod=pod))
        elif kind == "Service":
            spec = obj.get("spec") or {}
            ips = list(spec.get("clusterIPs") or []) + [spec.get("clusterIP")]
            ips += [i.get("ip") for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
            for ip in ips:
                if ip and ip != "None":
                    self._service_ips[ip] = ServiceRef(namespace=ns, name=name)
        elif kind == "Node":
            for addr in (obj.get("status") or {}).get("addresses") or []:
                if addr.get("type") in ("InternalIP", "ExternalIP") and addr.get("address"):
                    self._node_ips[addr["address"]] = name

    def _unindex(self, obj: Obj, at: float) -> None:
        kind, ns, name = obj_key(obj)
        if kind == "Pod":
            pod = self._pods.pop((ns, name), None)
            if pod is None:
                return
            self._pod_by_uid.pop(pod.uid, None)
            for ip in pod.ips:
                for t in self._ip_tenures.get(ip, []):
                    if t.end is None and t.pod.uid == pod.uid:
                        t.end = at
        elif kind == "Service":
            for ip, ref in list(self._service_ips.items()):
                if ref == ServiceRef(namespace=ns, name=name):
                    del self._service_ips[ip]
        elif kind == "Node":
            for ip, node in list(self._node_ips.items()):
                if node == name:
                    del self._node_ips[ip]

    def _refresh_pod_workloads(self, namespaces: set[str]) -> None:
        """Owners changed: recompute the workloads of those namespaces' pods (tenures included)."""
        for (ns, name), pod in list(self._pods.items()):
            if ns not in namespaces:
                continue
            obj = self._objects.get(("Pod", ns, name))
            if obj is None:
                continue
            fresh = self._pod_info(obj)
            if fresh.workload == pod.workload:
                continue
            self._pods[(ns, name)] = fresh
            self._pod_by_uid[fresh.uid] = fresh
            for ip in fresh.ips:
                for t in self._ip_tenures.get(ip, []):
                    if t.end is None and t.pod.uid == fresh.uid:
                        t.pod = fresh

    def _pod_info(self, obj: Obj) -> PodInfo:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        ips = [p.get("ip") for p in status.get("podIPs") or []] + [status.get("podIP")]
        return PodInfo(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid") or ""),
            ips=tuple(dict.fromkeys(ip for ip in ips if ip)),
            host_network=bool(spec.get("hostNetwork")),
            node_name=str(spec.get("nodeName") or ""),
            labels=dict(meta.get("labels") or {}),
            workload=self._workload_of(obj),
        )

    def _workload_of(self, obj: Obj) -> Workload:
        """Walk controller owner references up to the top; the annotation overrides the name."""
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        kind, name = str(obj.get("kind", "Pod")), str(meta.get("name", ""))
        current: Obj | None = obj
        for _ in range(MAX_OWNER_DEPTH):
            refs = ((current or {}).get("metadata") or {}).get("ownerReferences") or []
            ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
            if ref is None:
                break
            kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
            current = self._objects.get((kind, ns, name))
            if current is None and self.owner_lookup is not None and kind not in INDEXED_KINDS:
                current = self.owner_lookup(str(ref.get("apiVersion", "")), kind, ns, name)
            if current is None:
                break  # owner not known (or not readable): its reference still names the workload
        override = (meta.get("annotations") or {}).get(WORKLOAD_NAME_ANNOTATION)
        return Workload(namespace=ns, kind=kind, name=str(override) if override else name)

    # ---- reading -------------------------------------------------------------------------------

    def pod_at(self, ip: str, at: float) -> PodInfo | None:
        """The pod that held `ip` at time `at`.

        Order of preference: the tenure covering `at` (latest start wins); a tenure that began up to
        `slack` seconds after `at` (the watch event can arrive after the first connect); the last
        tenure that ended within `grace` before `at` (late observations of a deleted pod).
        """
        with self._lock:
            tenures = self._ip_tenures.get(ip)
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

    def pod_by_uid(self, uid: str) -> PodInfo | None:
        with self._lock:
            return self._pod_by_uid.get(uid)

    def service_at(self, ip: str) -> ServiceRef | None:
        with self._lock:
            return self._service_ips.get(ip)

    def node_of(self, ip: str) -> str | None:
        with self._lock:
            return self._node_ips.get(ip)

    def service_workloads(self, ref: ServiceRef) -> list[Workload]:
        """Workloads behind a Service: pods its selector matches, else its EndpointSlices' targets."""
        with self._lock:
            cached = self._svc_workloads.get(ref)
            if cached is None:
                cached = self._svc_workloads[ref] = self._service_workloads(ref)
            return list(cached)

    def _service_workloads(self, ref: ServiceRef) -> list[Workload]:
        with self._lock:
            svc = self._objects.get(("Service", ref.namespace, ref.name))
            if svc is None:
                return []
            selector = (svc.get("spec") or {}).get("selector") or {}
            found: set[Workload] = set()
            if selector:
                for (ns, _), pod in self._pods.items():
                    if ns == ref.namespace and all(pod.labels.get(k) == v for k, v in selector.items()):
                        found.add(pod.workload)
            else:
                for (kind, ns, _), obj in self._objects.items():
                    if kind != "EndpointSlice" or ns != ref.namespace:
                        continue
                    labels = (obj.get("metadata") or {}).get("labels") or {}
                    if labels.get("kubernetes.io/service-name") != ref.name:
                        continue
                    for ep in obj.get("endpoints") or []:
                        target = ep.get("targetRef") or {}
                        pod = self._pods.get((target.get("namespace") or ns, target.get("name", "")))
                        if target.get("kind") == "Pod" and pod is not None:
                            found.add(pod.workload)
            return sorted(found)

    def dns_server_ips(self) -> set[str]:
        """Addresses of the cluster's DNS: Services labelled k8s-app=kube-dns and the pods behind them."""
        with self._lock:
            out: set[str] = set()
            for ip, ref in self._service_ips.items():
                svc = self._objects.get(("Service", ref.namespace, ref.name)) or {}
                if ((svc.get("metadata") or {}).get("labels") or {}).get("k8s-app") != "kube-dns":
                    continue
                out.add(ip)
                selector = (svc.get("spec") or {}).get("selector") or {}
                for (ns, _), pod in self._pods.items():
                    if selector and ns == ref.namespace and all(pod.labels.get(k) == v for k, v in selector.items()):
                        out.update(pod.ips)
            return out

    def object(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def counts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = defaultdict(int)
            for kind, _, _ in self._objects:
                out[kind] += 1
            return dict(out)
