"""Resolver: addresses seen in the kernel -> typed endpoints, using a ClusterIndex.

Knows nothing of BPF or of where the index gets its objects. Client side: pod IP at the time of
the connect, then the pod owning the connecting cgroup (hostNetwork pods share the node IP), then
node, else unresolved. Server side: Service ClusterIP -> the workload behind it, pod IP, node IP,
else an address outside the cluster (internet) or an unresolved in-cluster address (kept, never
dropped).
"""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from netmapper_api.addresses import normalize_ip
from sniffer.cluster import ClusterIndex, PodInfo
from netmapper_api.endpoints import Endpoint, EndpointKind, ServiceRef
from sniffer.records import ConnectObservation

log = logging.getLogger(__name__)

# Addresses we treat as "inside" when no cluster CIDRs are configured: private and local ranges.
DEFAULT_CLUSTER_CIDRS: tuple[str, ...] = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128",
)

# (client endpoint, server ip, time) -> names the client resolved to that ip
DnsNames = Callable[[Endpoint, str, float], tuple[str, ...]]
# (cgroup id, pid) -> pod uid, for connects made from pods that share the node's address
CgroupPods = Callable[[int, int], str | None]


@dataclass(frozen=True, slots=True)
class ResolvedConnect:
    """A connect observation with both sides resolved."""

    client: Endpoint
    server: Endpoint
    port: int
    count: int
    first_seen: float
    last_seen: float


@dataclass
class Resolver:
    index: ClusterIndex
    cluster_cidrs: Sequence[str] = DEFAULT_CLUSTER_CIDRS
    dns_names: DnsNames | None = None
    cgroup_pods: CgroupPods | None = None
    _nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._nets = [ipaddress.ip_network(c) for c in self.cluster_cidrs]

    def resolve(self, obs: ConnectObservation) -> ResolvedConnect:
        at = obs.last_seen
        # A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d: the index knows it as a.b.c.d.
        client = self.client(str(normalize_ip(obs.saddr)), obs.cgroup_id, at, pid=obs.pid)
        server = self.server(str(normalize_ip(obs.daddr)), at, client)
        return ResolvedConnect(client=client, server=server, port=obs.dport, count=obs.count,
                               first_seen=obs.first_seen, last_seen=obs.last_seen)

    def client(self, ip: str, cgroup_id: int, at: float, *, pid: int = 0) -> Endpoint:
        pod = self.index.pod_at(ip, at)
        if pod is None and self.cgroup_pods is not None:
            uid = self.cgroup_pods(cgroup_id, pid)
            pod = self.index.pod_by_uid(uid) if uid else None
        if pod is not None:
            return _pod_endpoint(pod, ip)
        node = self.index.node_of(ip)
        if node is not None:
            return Endpoint(kind=EndpointKind.NODE, ip=ip, node=node)
        return Endpoint(kind=EndpointKind.UNRESOLVED, ip=ip)

    def server(self, ip: str, at: float, client: Endpoint) -> Endpoint:
        names = self.dns_names(client, ip, at) if self.dns_names is not None else ()
        service = self.index.service_at(ip)
        if service is not None:
            return self._service_endpoint(service, ip, names)
        pod = self.index.pod_at(ip, at)
        if pod is not None:
            return _pod_endpoint(pod, ip, names)
        node = self.index.node_of(ip)
        if node is not None:
            return Endpoint(kind=EndpointKind.NODE, ip=ip, node=node, dns_names=names)
        kind = EndpointKind.UNRESOLVED if self.in_cluster(ip) else EndpointKind.INTERNET
        return Endpoint(kind=kind, ip=ip, dns_names=names)

    def in_cluster(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in self._nets)

    def _service_endpoint(self, service: ServiceRef, ip: str, names: tuple[str, ...]) -> Endpoint:
        workloads = self.index.service_workloads(service)
        if len(workloads) == 1:
            return Endpoint(kind=EndpointKind.WORKLOAD, ip=ip, workload=workloads[0], service=service,
                            dns_names=names)
        if len(workloads) > 1:
            log.debug("service %s/%s selects %d workloads; reporting the service", service.namespace,
                      service.name, len(workloads))
        return Endpoint(kind=EndpointKind.SERVICE, ip=ip, service=service, dns_names=names)


def _pod_endpoint(pod: PodInfo, ip: str, names: tuple[str, ...] = ()) -> Endpoint:
    # The pod's own copy of the address: the endpoint may wait in the accumulator for a long time.
    ip = next((own for own in pod.ips if own == ip), ip)
    return Endpoint(kind=EndpointKind.WORKLOAD, ip=ip, workload=pod.workload, pod=pod.name,
                    dns_names=names, labels=pod.labels)
