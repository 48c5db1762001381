"""A lab of network namespaces on one machine: each "pod" is a netns joined by a veth to a bridge.

Used by the demo and the integration tests. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for netns).
Everything created is named with the lab's prefix so that close() (and a later lab with the same
prefix) removes leftovers of a run that was killed.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Host:
    """One namespace in the lab."""

    name: str  # netns name as `ip netns` knows it
    ipv4: str
    ipv6: str

    def exec(self, *cmd: str) -> list[str]:
        """argv prefix that runs cmd inside this namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def popen(self, *cmd: str, **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.exec(*cmd), **kw)


@dataclass
class NetLab:
    """Bridge + namespaces. IPv4 from subnet4, IPv6 from subnet6 (ULA), bridge holds the first address."""

    prefix: str
    subnet4: str = "10.244.0.0/24"
    subnet6: str = "fd00:244::/64"
    hosts: dict[str, Host] = field(default_factory=dict)
    _next: int = 10
    _onlink4: list[str] = field(default_factory=list)
    _ifnames: dict[str, str] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"[:15]

    def __post_init__(self) -> None:
        if len(self.prefix) > 8:
            raise ValueError("lab prefix must be at most 8 characters (interface names are 15 max)")

    def __enter__(self) -> "NetLab":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ifname(self, host: Host) -> str:
        return self._ifnames[host.name]

    def _addr(self, subnet: str, index: int) -> str:
        return str(ipaddress.ip_network(subnet)[index])

    def start(self) -> None:
        self.close()  # leftovers of a killed run
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self._addr(self.subnet4, 1)}/{ipaddress.ip_network(self.subnet4).prefixlen}", "dev", self.bridge)
        run("ip", "-6", "addr", "add", f"{self._addr(self.subnet6, 1)}/64", "dev", self.bridge, "nodad")
        run("ip", "link", "set", self.bridge, "up")

    def add_host(self, name: str, *, ipv4: str | None = None, ipv6: str | None = None) -> Host:
        """Create namespace `<prefix>-<name>` with one veth on the bridge.

        ipv4 outside subnet4 (an "internet" host) is reached through a /32 device route.
        """
        index = self._next
        self._next += 1
        ns = f"{self.prefix}-{name}"
        if ipv4 is not None and ipaddress.ip_address(ipv4) in ipaddress.ip_network(self.subnet4):
            ipv4_in_subnet, v4 = True, ipv4
        else:
            ipv4_in_subnet, v4 = ipv4 is None, ipv4 or self._addr(self.subnet4, index)
        v6 = ipv6 or self._addr(self.subnet6, index)
        host_if, ns_if = f"{self.prefix}h{index}"[:15], f"{self.prefix}n{index}"[:15]
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        run("ip", "link", "set", ns_if, "netns", ns)
        run("ip", "link", "set", host_if, "master", self.bridge, "up")
        plen = ipaddress.ip_network(self.subnet4).prefixlen if ipv4_in_subnet else 32
        run("ip", "-n", ns, "addr", "add", f"{v4}/{plen}", "dev", ns_if)
        run("ip", "-n", ns, "-6", "addr", "add", f"{v6}/64", "dev", ns_if, "nodad")
        run("ip", "-n", ns, "link", "set", ns_if, "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        if not ipv4_in_subnet:
            # An "outside" address on the same L2 segment: every host reaches it on-link (no
            # forwarding on the machine needed) and it reaches the lab subnet on-link.
            run("ip", "-n", ns, "route", "add", self.subnet4, "dev", ns_if)
            for other in self.hosts.values():
                run("ip", "-n", other.name, "route", "replace", f"{v4}/32", "dev", self._ifname(other))
            self._onlink4.append(v4)
        else:
            for extra in self._onlink4:
                run("ip", "-n", ns, "route", "replace", f"{extra}/32", "dev", ns_if)
            run("ip", "-n", ns, "route", "add", "default", "via", self._addr(self.subnet4, 1), check=False)
        run("ip", "-n", ns, "-6", "route", "add", "default", "via", self._addr(self.subnet6, 1), check=False)
        self._ifnames[ns] = ns_if
        host = Host(name=ns, ipv4=v4, ipv6=v6)
        self.hosts[name] = host
        return host

    def add_address(self, host: Host, cidr: str) -> None:
        """Give a host an extra address (e.g. a Service ClusterIP it answers on directly)."""
        run("ip", "-n", host.name, "addr", "add", cidr, "dev", "lo")

    def route_via(self, client: Host, dest: str, backend: Host) -> None:
        """Send client's traffic for `dest` (a ClusterIP) straight to `backend`, as kube-proxy would.

        The backend holds `dest` on its loopback, so the connect's destination stays the ClusterIP,
        exactly what a sniffer sees in a real cluster before NAT.
        """
        via = backend.ipv6 if ":" in dest else backend.ipv4
        run("ip", "-n", client.name, "route", "replace", dest, "via", via)

    def close(self) -> None:
        self._onlink4.clear()
        self._ifnames.clear()
        out = run("ip", "netns", "list", check=False).stdout
        for line in out.splitlines():
            ns = line.split()[0] if line.strip() else ""
            if ns.startswith(f"{self.prefix}-"):
                # killing processes still inside keeps the netns from lingering
                pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), 9)
                    except (ProcessLookupError, ValueError):
                        pass
                run("ip", "netns", "del", ns, check=False)
        run("ip", "link", "del", self.bridge, check=False)
        self.hosts.clear()
        self._next = 10
