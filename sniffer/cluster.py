"""ClusterIndex: the Kubernetes objects the resolver needs, indexed by address, time-aware.

A read model. Feeds (sniffer.snapshot_feed for a file, sniffer.kube_feed for a live watch) call
apply()/replace() with objects in API JSON shape (what `kubectl get -o yaml` prints); the resolver
only reads. One code path for both sources. Each object is shaped on arrival into a compact record
(kube_records.py) and the dict is dropped: the index never holds API objects. Thread-safe: a feed thread writes while the drain loop
reads. Nothing here does I/O: an owner of a kind no feed delivers is listed by missing_owners(), and
the feed fetches it outside the lock and hands it back with add_owners().

Time: every change carries the time `at` it was observed (ip_timeline.py). Around it: owners.py (the
owner walk), pods.py (PodInfo), selectors.py (Service -> pods).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netmapper_api.endpoints import ServiceRef, Workload
from sniffer.cluster_dns import KUBE_SYSTEM
from sniffer.ip_timeline import IpTimeline
from sniffer.kube_records import (
    INDEXED_KINDS,
    EndpointSliceRecord,
    NodeRecord,
    OwnerRecord,
    PodRecord,
    Record,
    ServiceRecord,
    owner_record,
    record_of,
)
from sniffer.object_table import ObjectTable, ObjKey
from sniffer.owners import OWNER_KINDS, WORKLOAD_NAME_ANNOTATION, HasOwner, OwnerRef, workload_of
from sniffer.pods import PodInfo, pod_info
from sniffer.selectors import selected_pods, service_workloads

__all__ = ["INDEXED_KINDS", "WORKLOAD_NAME_ANNOTATION", "ClusterIndex", "Obj", "ObjKey", "PodInfo", "Record",
           "obj_key"]

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]


def obj_key(obj: Obj) -> ObjKey:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))


def _key(rec: Record) -> ObjKey:
    return (rec.kind, rec.namespace, rec.name)


def _changes_service_workloads(old: Record | None, new: Record | None) -> bool:
    """Whether an event can change which workloads stand behind a Service. Node heartbeats and pod
    status updates (IPs, phase, conditions) cannot; labels, owners and the workload-name annotation can."""
    rec = new or old
    if rec is None or rec.kind == "Node":
        return False
    if not isinstance(old, PodRecord) or not isinstance(new, PodRecord):
        return True
    return (old.labels, old.owner, old.workload_name) != (new.labels, new.owner, new.workload_name)


@dataclass
class ClusterIndex:
    """Indexed view of the cluster."""

    grace: float = 300.0
    slack: float = 10.0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _objects: ObjectTable = field(default_factory=ObjectTable)
    _ips: IpTimeline = field(init=False)
    _pods: dict[tuple[str, str], PodInfo] = field(default_factory=dict)
    _pod_by_uid: dict[str, PodInfo] = field(default_factory=dict)
    _service_ips: dict[str, ServiceRef] = field(default_factory=dict)
    _node_ips: dict[str, str] = field(default_factory=dict)
    # Owners of kinds no feed delivers, as a feed fetched them (None: not readable), and the ones
    # owner walks asked for since the feed last looked (missing_owners).
    _foreign_owners: dict[OwnerRef, OwnerRecord | None] = field(default_factory=dict)
    _missing_owners: set[OwnerRef] = field(default_factory=set)
    # Service -> workloads behind it, asked once per connect to a ClusterIP: cached until pods,
    # Services, EndpointSlices or owners change (the drain loop must not scan pods per connect).
    _svc_workloads: dict[ServiceRef, list[Workload]] = field(default_factory=dict)
    _pruned_at: float = float("-inf")

    def __post_init__(self) -> None:
        self._ips = IpTimeline(grace=self.grace, slack=self.slack)

    # ---- feeding -------------------------------------------------------------------------------

    def apply(self, event_type: str, obj: Obj, at: float, *, refresh: bool = True) -> None:
        """Apply one watch event (ADDED, MODIFIED, DELETED) observed at time `at`.

        refresh=False defers recomputing pod workloads after an owner change (bulk loads do it once).
        """
        if event_type == "DELETED":
            if obj.get("kind") in INDEXED_KINDS:
                self.delete(obj_key(obj), at, refresh=refresh)
            return
        rec = record_of(obj)
        if rec is not None:
            self._put(rec, at, refresh=refresh)

    def delete(self, key: ObjKey, at: float, *, refresh: bool = True) -> None:
        """The object `key` (kind, namespace, name) was deleted at `at`."""
        with self._lock:
            old = self._objects.pop(*key)
            if old is None:
                return
            if _changes_service_workloads(old, None):
                self._svc_workloads.clear()
            self._unindex(old, at)
            if refresh and key[0] in OWNER_KINDS:
                self._owners_changed({key[1]})

    def _put(self, rec: Record, at: float, *, refresh: bool) -> None:
        key = _key(rec)
        with self._lock:
            old = self._objects.get(*key)
            if _changes_service_workloads(old, rec):
                self._svc_workloads.clear()
            if old is not None:
                self._unindex(old, at)
            self._objects.put(rec)
            self._index(rec, at)
            if refresh and rec.kind in OWNER_KINDS:
                self._owners_changed({key[1]})

    def put(self, rec: Record, at: float) -> None:
        """An object added or changed at `at`, as its record (kube_records.record_of)."""
        self._put(rec, at, refresh=True)

    def replace(self, kind: str, records: Iterable[Record], at: float) -> None:
        """A full list of one kind, as records: what is missing from it was deleted at `at`.

        Records, not API objects: the live feed builds them page by page while it lists, so the JSON of
        a page is freed before the next is parsed (holding every object of a 10k-pod list until here left
        Python's small-object arenas two-thirds empty: ~60 MiB at 10k pods, bench/sniffer_memory.py --feed live)."""
        with self._lock:
            fresh: set[ObjKey] = set()
            for rec in records:
                fresh.add(_key(rec))
                self._put(rec, at, refresh=False)
            stale = [k for k in self._objects.keys(kind) if k not in fresh]
            for k in stale:
                self.delete(k, at, refresh=False)
            if kind in OWNER_KINDS:
                self._owners_changed({k[1] for k in stale} | {k[1] for k in fresh})

    def load(self, objs: Iterable[Obj], at: float) -> None:
        """Bulk add objects of any kinds (a snapshot); pod workloads are computed once at the end."""
        with self._lock:
            for o in objs:
                self.apply("ADDED", o, at, refresh=False)
            self._refresh_pod_workloads({ns for (ns, _) in self._pods})

    def missing_owners(self) -> list[OwnerRef]:
        """Owners of kinds no feed delivers that owner walks needed since the last call (then forgotten)."""
        with self._lock:
            wanted, self._missing_owners = sorted(self._missing_owners), set()
            return wanted

    def add_owners(self, owners: Mapping[OwnerRef, Obj | None]) -> None:
        """Owner objects a feed fetched for missing_owners() (None: not readable); the workloads of
        their namespaces' pods are recomputed. Kept until owners in that namespace change."""
        records = {ref: None if obj is None else owner_record(obj) for ref, obj in owners.items()}
        with self._lock:
            self._foreign_owners.update(records)
            self._svc_workloads.clear()
            self._refresh_pod_workloads({ref[2] for ref in owners})

    def prune(self, now: float) -> int:
        """Forget IP tenures that ended more than `grace` seconds before `now`.

        Called from every drain cycle; the scan over all IPs runs at most every grace/10 seconds.
        """
        with self._lock:
            if now - self._pruned_at < self.grace / 10:
                return 0
            self._pruned_at = now
            return self._ips.prune(now)

    def _index(self, rec: Record, at: float) -> None:
        if isinstance(rec, PodRecord):
            pod = pod_info(rec, self._workload_of(rec))
            self._pods[(rec.namespace, rec.name)] = pod
            if pod.uid:
                self._pod_by_uid[pod.uid] = pod
            if not pod.host_network:  # a hostNetwork pod's IP is the node's: never claim it
                self._ips.claim(pod.ips, pod, at)
        elif isinstance(rec, ServiceRecord):
            ref = ServiceRef(namespace=rec.namespace, name=rec.name)
            for ip in rec.ips:
                self._service_ips[ip] = ref
        elif isinstance(rec, NodeRecord):
            for ip in rec.ips:
                self._node_ips[ip] = rec.name

    def _unindex(self, rec: Record, at: float) -> None:
        if isinstance(rec, PodRecord):
            pod = self._pods.pop((rec.namespace, rec.name), None)
            if pod is None:
                return
            self._pod_by_uid.pop(pod.uid, None)
            self._ips.release(pod.ips, pod.uid, at)
        elif isinstance(rec, ServiceRecord):
            ref = ServiceRef(namespace=rec.namespace, name=rec.name)
            for ip, held in list(self._service_ips.items()):
                if held == ref:
                    del self._service_ips[ip]
        elif isinstance(rec, NodeRecord):
            for ip, node in list(self._node_ips.items()):
                if node == rec.name:
                    del self._node_ips[ip]

    def _owners_changed(self, namespaces: set[str]) -> None:
        """Owners in these namespaces changed: what a feed fetched there may be stale, so it is asked
        for again (the feed's cache answers), and the pods' workloads are recomputed."""
        for ref in [r for r in self._foreign_owners if r[2] in namespaces]:
            del self._foreign_owners[ref]
        self._refresh_pod_workloads(namespaces)

    def _refresh_pod_workloads(self, namespaces: set[str]) -> None:
        """Owners changed: recompute the workloads of those namespaces' pods (tenures included)."""
        for (ns, name), pod in list(self._pods.items()):
            if ns not in namespaces:
                continue
            rec = self._objects.get("Pod", ns, name)
            if not isinstance(rec, PodRecord):
                continue
            workload = self._workload_of(rec)
            if workload == pod.workload:
                continue
            fresh = pod_info(rec, workload)
            self._pods[(ns, name)] = fresh
            self._pod_by_uid[fresh.uid] = fresh
            self._ips.update(fresh.ips, fresh)

    def _workload_of(self, pod: PodRecord) -> Workload:
        return workload_of(pod.namespace, pod.name, pod.owner, pod.workload_name, self._find_owner,
                           self._missing_owners)

    def _find_owner(self, ref: OwnerRef) -> tuple[bool, HasOwner | None]:
        """(known, record): indexed kinds are known (present or not); others once a feed fetched them."""
        _, kind, ns, name = ref
        if kind in INDEXED_KINDS:
            rec = self._objects.get(kind, ns, name)
            return True, rec if isinstance(rec, OwnerRecord | PodRecord) else None
        if ref in self._foreign_owners:
            return True, self._foreign_owners[ref]
        return False, None

    # ---- reading -------------------------------------------------------------------------------

    def pod_at(self, ip: str, at: float) -> PodInfo | None:
        """The pod that held `ip` at time `at` (see IpTimeline.at)."""
        with self._lock:
            return self._ips.at(ip, at)

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
                svc = self._objects.get("Service", ref.namespace, ref.name)
                slices = [o for o in self._objects.in_namespace("EndpointSlice", ref.namespace)
                          if isinstance(o, EndpointSliceRecord)]
                cached = self._svc_workloads[ref] = (
                    service_workloads(svc, self._pods, slices) if isinstance(svc, ServiceRecord) else [])
            return list(cached)

    def dns_server_ips(self) -> set[str]:
        """Addresses of the cluster's DNS (sniffer/cluster_dns.py says which installations count):
        its Services' ClusterIPs, the pods behind them, and the addresses NodeLocal DNSCache answers on."""
        with self._lock:
            out: set[str] = set()
            for ip, ref in self._service_ips.items():
                svc = self._objects.get("Service", ref.namespace, ref.name)
                if not isinstance(svc, ServiceRecord) or not svc.cluster_dns:
                    continue
                out.add(ip)
                for pod in selected_pods(svc, self._pods):
                    out.update(pod.ips)
            for (namespace, name) in self._pods:
                if namespace != KUBE_SYSTEM:  # NodeLocal DNSCache runs there (cluster_dns.py)
                    continue
                rec = self._objects.get("Pod", namespace, name)
                if isinstance(rec, PodRecord):
                    out |= rec.dns_local_ips
            return out

    def object(self, kind: str, namespace: str, name: str) -> Record | None:
        """The record the index keeps of an object (kube_records.py)."""
        with self._lock:
            return self._objects.get(kind, namespace, name)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return self._objects.counts()
