"""Owner walk: the workload a pod belongs to, found by following controller ownerReferences upwards.

Pure: the caller says where owner objects come from (`find`). An owner the caller does not have is
reported through `missing` and the walk stops there; its reference still names the workload.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from netmapper_api.endpoints import Workload

WORKLOAD_NAME_ANNOTATION: Final[str] = "intents.otterize.com/workload-name"
OWNER_KINDS: Final[frozenset[str]] = frozenset(
    {"ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"}
)
MAX_OWNER_DEPTH: Final[int] = 8  # owner chains are short; a loop in bad data must not hang the resolver

Obj = Mapping[str, Any]
OwnerRef = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name) of an owner object
# (ref) -> (found, the object or None when known to be unreadable)
FindOwner = Callable[[OwnerRef], tuple[bool, Obj | None]]


def workload_of(obj: Obj, find: FindOwner, missing: set[OwnerRef]) -> Workload:
    """Walk controller owner references up to the top; the annotation overrides the name.

    `find(ref)` returns (False, None) for an owner the caller has no answer for yet: the ref is added
    to `missing` and the walk stops at it."""
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
        owner_ref = (str(ref.get("apiVersion", "")), kind, ns, name)
        known, current = find(owner_ref)
        if not known:
            missing.add(owner_ref)
        if current is None:
            break  # owner not known (or not readable): its reference still names the workload
    override = (meta.get("annotations") or {}).get(WORKLOAD_NAME_ANNOTATION)
    return Workload(namespace=ns, kind=kind, name=str(override) if override else name)
