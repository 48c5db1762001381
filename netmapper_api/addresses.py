"""The one address normaliser every consumer uses (resolver, DNS cache, DNS trust, the mapper's keys).

Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6 (::ffff:a.b.c.d): normalised, they are the
IPv4 address, so one peer has one identity whichever socket saw it.
"""
from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

IPAddress = IPv4Address | IPv6Address


def normalize_ip(ip: IPAddress | str) -> IPAddress:
    """The canonical address: IPv4-mapped IPv6 becomes IPv4. Raises ValueError for a bad string."""
    addr = ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def normalize_ip_text(ip: IPAddress | str) -> str:
    """normalize_ip as text ("::0001" and "::1" are one address; IPv6 compressed)."""
    return normalize_ip(ip).compressed
