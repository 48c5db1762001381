"""Which pods a Service stands for: its label selector, else its EndpointSlices' pod targets; and which
addresses are the cluster's DNS (kube-dns Services and the pods behind them). Pure."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from netmapper_api.endpoints import Workload
from sniffer.pods import PodInfo

Obj = Mapping[str, Any]
PodsByName = Mapping[tuple[str, str], PodInfo]  # (namespace, name) -> pod


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A non-empty equality selector matches these labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def selected_pods(service: Obj, pods: PodsByName) -> list[PodInfo]:
    """Pods of the Service's namespace that its selector matches ([] without a selector)."""
    namespace = str((service.get("metadata") or {}).get("namespace") or "")
    selector = (service.get("spec") or {}).get("selector") or {}
    return [pod for (ns, _), pod in pods.items() if ns == namespace and selects(selector, pod.labels)]


def service_workloads(service: Obj, pods: PodsByName, endpoint_slices: Iterable[Obj]) -> list[Workload]:
    """Workloads behind a Service: pods its selector matches, else its EndpointSlices' targets."""
    meta = service.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name", ""))
    found: set[Workload] = set()
    if (service.get("spec") or {}).get("selector"):
        found.update(pod.workload for pod in selected_pods(service, pods))
    else:
        for obj in endpoint_slices:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get("kubernetes.io/service-name") != name:
                continue
            for ep in obj.get("endpoints") or []:
                target = ep.get("targetRef") or {}
                pod = pods.get((target.get("namespace") or namespace, target.get("name", "")))
                if target.get("kind") == "Pod" and pod is not None:
                    found.add(pod.workload)
    return sorted(found)
