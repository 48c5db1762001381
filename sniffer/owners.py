"""Owner walk: the workload a pod belongs to, found by following controller ownerReferences upwards.

Pure: the caller says where owner records come from (`find`). An owner the caller does not have is
reported through `missing` and the walk stops there; its reference still names the workload.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from netmapper_api.endpoints import Workload

WORKLOAD_NAME_ANNOTATION: Final[str] = "intents.otterize.com/workload-name"
OWNER_KINDS: Final[frozenset[str]] = frozenset(
    {"ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"}
)
MAX_OWNER_DEPTH: Final[int] = 8  # owner chains are short; a loop in bad data must not hang the resolver

OwnerRef = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name) of an owner object
OwnerLink = tuple[str, str, str]  # (apiVersion, kind, name): an object's controller owner, same namespace


class HasOwner(Protocol):
    """A record the walk can go on from."""

    @property
    def owner(self) -> OwnerLink | None: ...


# (ref) -> (found, the owner or None when known to be unreadable)
FindOwner = Callable[[OwnerRef], tuple[bool, HasOwner | None]]


def workload_of(namespace: str, name: str, owner: OwnerLink | None, workload_name: str | None,
                find: FindOwner, missing: set[OwnerRef]) -> Workload:
    """The workload of the pod `namespace/name` whose controller owner is `owner`: walk owner links up
    to the top; the workload-name annotation (`workload_name`) overrides the name.

    `find(ref)` returns (False, None) for an owner the caller has no answer for yet: the ref is added
    to `missing` and the walk stops at it."""
    ns = namespace or "default"
    kind = "Pod"
    link = owner
    for _ in range(MAX_OWNER_DEPTH):
        if link is None:
            break
        api_version, kind, name = link
        owner_ref = (api_version, kind, ns, name)
        known, current = find(owner_ref)
        if not known:
            missing.add(owner_ref)
        if current is None:
            break  # owner not known (or not readable): its reference still names the workload
        link = current.owner
    return Workload(namespace=ns, kind=kind, name=workload_name or name)
