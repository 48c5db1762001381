"""Which pods a Service stands for: its label selector, else its EndpointSlices' pod targets. Pure."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from netmapper_api.endpoints import Workload
from sniffer.kube_records import EndpointSliceRecord, LabelPairs, ServiceRecord
from sniffer.pods import PodInfo

PodsByName = Mapping[tuple[str, str], PodInfo]  # (namespace, name) -> pod


def selects(selector: Mapping[str, str], labels: LabelPairs) -> bool:
    """A non-empty equality selector matches these labels."""
    return bool(selector) and all((k, v) in labels for k, v in selector.items())


def selected_pods(service: ServiceRecord, pods: PodsByName) -> list[PodInfo]:
    """Pods of the Service's namespace that its selector matches ([] without a selector)."""
    return [pod for (ns, _), pod in pods.items() if ns == service.namespace and selects(service.selector, pod.labels)]


def service_workloads(service: ServiceRecord, pods: PodsByName,
                      endpoint_slices: Iterable[EndpointSliceRecord]) -> list[Workload]:
    """Workloads behind a Service: pods its selector matches, else its EndpointSlices' targets."""
    found: set[Workload] = set()
    if service.selector:
        found.update(pod.workload for pod in selected_pods(service, pods))
    else:
        for eps in endpoint_slices:
            if eps.service_name != service.name:
                continue
            for target in eps.pods:
                pod = pods.get(target)
                if pod is not None:
                    found.add(pod.workload)
    return sorted(found)
