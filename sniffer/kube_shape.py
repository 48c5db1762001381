"""What is kept of each Kubernetes object the live feed receives: the `kubectl get -o yaml` shape,
slimmed where the resolver needs less (pods of other nodes, nodes). Pure functions, no I/O."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sniffer.kube_discovery import RawObj, ServedResource
from sniffer.owners import WORKLOAD_NAME_ANNOTATION


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


def namespaced_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name", "")))


def object_resource_version(obj: Mapping[str, Any]) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv else None


def node_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("nodeName") or "")
