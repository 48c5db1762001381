"""What the mapper accepts at ingest: bounds on every field of a reported edge. Pure, no I/O.

Timestamps are checked against the mapper's clock and REFUSED (never clamped: a clamped time would be
a made-up observation) when they lie more than `max_skew` ahead of it or more than `max_age` behind
it; a missing time is stamped with the mapper's clock. Counts above `max_count` per report are refused
and merged counts saturate at MAX_STORED_COUNT (int64, so every consumer, JSON included, can read it).
Names are checked where Kubernetes defines them (DNS-1123 labels for namespaces, subdomains for
workload, pod and node names, DNS-1035 labels for Services), addresses must parse, DNS names must be
host names. Every refusal has a reason that goes back to the sniffer in the acknowledgement.

Endpoint checks run once per distinct serialized endpoint (the store caches accepted ones), so the
per-observation cost is the numeric checks the store inlines.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final, Protocol

from netmapper_api import keys
from netmapper_api.keys import InvalidEdge
from netmapper_api.v1 import edge_pb2

NS_PER_S: Final[int] = 1_000_000_000
MAX_STORED_COUNT: Final[int] = 2**63 - 1
MAX_REJECTIONS: Final[int] = 100  # per acknowledgement; the rest are only counted

_DNS1123_LABEL: Final[re.Pattern[str]] = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1035_LABEL: Final[re.Pattern[str]] = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN: Final[re.Pattern[str]] = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_KIND: Final[re.Pattern[str]] = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}\Z")
# Host names as resolvers see them: letters, digits, hyphen, underscore (SRV/_dmarc), optional leading
# wildcard label; case does not matter (the store lower-cases them).
_HOST_LABEL: Final[re.Pattern[str]] = re.compile(r"(\*|[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?)\Z")


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Bounds on what one report may say. Defaults fit sniffers that report every few seconds."""

    max_skew_s: float = 300.0  # a timestamp this far ahead of the mapper's clock is refused
    max_age_s: float | None = 7 * 86400.0  # older than this is refused; None: no lower bound but 1970
    max_count: int = 1_000_000_000  # connects per edge per report
    max_edges: int = 50_000  # edges per batch; those beyond are refused
    max_dns_names: int = 64  # DNS names per endpoint per report
    max_name: int = 253

    def window_ns(self, now_ns: int) -> tuple[int, int]:
        """(earliest, latest) accepted timestamp in ns at mapper time `now_ns`."""
        lo = 0 if self.max_age_s is None else max(0, now_ns - int(self.max_age_s * NS_PER_S))
        return lo, now_ns + int(self.max_skew_s * NS_PER_S)


def check_times(first: int, last: int, lo: int, hi: int) -> str:
    """"" when first..last lies in [lo, hi] and in order, else the reason."""
    if last < first:
        return "last_seen before first_seen"
    if last > hi:
        return f"last_seen {last // NS_PER_S} s is ahead of the mapper's clock (more than the allowed skew)"
    if first < lo:
        return f"first_seen {first // NS_PER_S} s is older than the report window"
    return ""


class NumericFields(Protocol):
    """What check_numbers reads: an Edge, or the store's view of one (edge_view.py)."""

    @property
    def port(self) -> int: ...
    @property
    def protocol(self) -> int: ...
    @property
    def count(self) -> int: ...


def check_numbers(edge: NumericFields, first: int, last: int, lo: int, hi: int, limits: IngestLimits) -> str:
    """The reason the numeric fields of `edge` are refused, "" when they are fine."""
    if not 0 < edge.port <= 65535:
        return f"port {edge.port} out of range 1..65535"
    if edge.protocol not in keys.VALID_PROTOCOLS:
        return f"unknown protocol {edge.protocol}"
    if edge.count > limits.max_count:
        return f"count {edge.count} above the limit of {limits.max_count} per report"
    return check_times(first, last, lo, hi)


def _subdomain(value: str, what: str, side: str) -> None:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise InvalidEdge(f"{side}: {what} {value[:80]!r} is not a valid DNS-1123 subdomain")


def _label(value: str, what: str, side: str, pattern: re.Pattern[str] = _DNS1123_LABEL) -> None:
    if len(value) > 63 or not pattern.match(value):
        kind = "DNS-1035" if pattern is _DNS1035_LABEL else "DNS-1123"
        raise InvalidEdge(f"{side}: {what} {value[:80]!r} is not a valid {kind} label")


def _ip(value: str, what: str, side: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise InvalidEdge(f"{side}: {what} {value[:80]!r} is not an IP address") from None


def check_host_name(name: str) -> bool:
    n = name.strip().rstrip(".")
    return 0 < len(n) <= 253 and all(_HOST_LABEL.match(label) for label in n.split("."))


def check_endpoint(ep: edge_pb2.Endpoint, side: str, limits: IngestLimits) -> None:
    """Raise InvalidEdge naming the field when any name or address of `ep` is malformed.
    (Which fields a kind needs is keys.endpoint_identity's job; this checks the values.)"""
    kind = ep.kind
    if kind == keys.WORKLOAD:
        w = ep.workload
        _label(w.namespace, "workload.namespace", side)
        _subdomain(w.name, "workload.name", side)
        if w.kind and not _KIND.match(w.kind):
            raise InvalidEdge(f"{side}: workload.kind {w.kind[:80]!r} is not a Kubernetes kind")
    if ep.HasField("service") and (ep.service.name or ep.service.namespace or kind == keys.SERVICE):
        _label(ep.service.namespace, "service.namespace", side)
        _label(ep.service.name, "service.name", side, _DNS1035_LABEL)
    if ep.pod:
        _subdomain(ep.pod, "pod", side)
    if ep.node:
        _subdomain(ep.node, "node", side)
    if ep.ip:
        _ip(ep.ip, "ip", side)
    if len(ep.dns_names) > limits.max_dns_names:
        raise InvalidEdge(f"{side}: {len(ep.dns_names)} DNS names, more than {limits.max_dns_names}")
    for name in ep.dns_names:
        if not check_host_name(name):
            raise InvalidEdge(f"{side}: DNS name {name[:80]!r} is not a host name")


def check_node_name(node: str) -> str:
    """The reason a batch's node name is refused, "" when it is a valid node name."""
    if not node:
        return "request has no node name"
    if len(node) > 253 or not _DNS1123_SUBDOMAIN.match(node):
        return f"node name {node[:80]!r} is not a valid DNS-1123 subdomain"
    return ""
