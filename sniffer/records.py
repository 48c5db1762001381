"""Raw observations handed from the kernel probes to the resolver. Pure data, no I/O."""
from __future__ import annotations

from dataclasses import dataclass

from netmapper_api.addresses import IPAddress
from netmapper_api.loss import LossSource

__all__ = ["ConnectObservation", "DnsPacket", "IPAddress", "ProbeLoss"]


@dataclass(frozen=True, slots=True)
class ConnectObservation:
    """One drained entry of the in-kernel connect aggregation map (bpf/tcp_connect.bpf.c).

    Aggregated in the kernel by (cgroup_id, netns, family, saddr, daddr, dport). Times are wall-clock
    seconds (converted from the kernel's monotonic clock at drain time).
    """

    cgroup_id: int  # cgroup v2 id of the connecting task
    netns: int  # network namespace inode of the socket
    saddr: IPAddress  # source address at connect time (may be unspecified: 0.0.0.0 / ::)
    daddr: IPAddress
    dport: int
    count: int  # connects since the previous drain
    first_seen: float
    last_seen: float
    pid: int  # tgid of the last connecting task
    comm: str


@dataclass(frozen=True, slots=True)
class ProbeLoss:
    """Observations the kernel side could not keep (map full, evicted before drained, ring buffer full)."""

    source: LossSource
    count: int


@dataclass(frozen=True, slots=True)
class DnsPacket:
    """One DNS reply packet (or TCP segment) as the kernel captured it at the receiving socket."""

    cgroup_id: int  # cgroup v2 id of the receiving socket (inode of its cgroup directory)
    family: int  # socket.AF_INET or socket.AF_INET6
    saddr: IPAddress  # the DNS server as the client sees it (after conntrack reverse NAT)
    daddr: IPAddress  # the client
    sport: int
    dport: int
    protocol: int  # socket.IPPROTO_UDP or socket.IPPROTO_TCP
    payload: bytes  # captured transport payload (TCP: 2-byte length prefix + message)
    truncated: bool  # fewer bytes captured than the packet carried (or an IPv4 first fragment)
    seen_at: float  # wall-clock seconds
    payload_len: int = 0  # transport payload length in the packet (>= len(payload))
