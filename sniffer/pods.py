"""PodInfo: what the resolver needs of a pod, with its workload, derived once when the pod changes. Pure."""
from __future__ import annotations

from dataclasses import dataclass

from netmapper_api.endpoints import Workload
from sniffer.kube_records import LabelPairs, PodRecord


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    ips: tuple[str, ...]
    host_network: bool
    node_name: str
    labels: LabelPairs
    workload: Workload


def pod_info(pod: PodRecord, workload: Workload) -> PodInfo:
    """The record's fields are shared, not copied."""
    return PodInfo(namespace=pod.namespace or "default", name=pod.name, uid=pod.uid, ips=pod.ips,
                   host_network=pod.host_network, node_name=pod.node, labels=pod.labels, workload=workload)
