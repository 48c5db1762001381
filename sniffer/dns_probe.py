"""DNS reply capture: loads bpf/dns_reply.bpf.c and drains its ring buffer.

The program is a cgroup_skb ingress program attached to the cgroup v2 root, so it sees the DNS replies
(UDP and, partly, TCP source port 53) received by every socket of every network namespace on the node.
It is attached as a BPF link (BPF_LINK_CREATE through the raw bpf() syscall): the kernel detaches a link
when its last file descriptor closes, so a crashed or `kill -9`ed sniffer leaves nothing behind. bcc
0.26's `attach_func` makes a legacy attachment that would outlive the process.
bcc compiles and loads the program in a short-lived child (sniffer/probe_loader.py); this process keeps
only the program and map descriptors and polls the ring buffer with libbpf (sniffer/libbpf.py), so the
compiler is never mapped here.

Keep EVENT_FORMAT aligned with `struct dns_event` in bpf/dns_reply.bpf.c.
This is an adapter: it alone touches BPF. Nothing here imports bcc, so the data types can be used
(tests, parsing) on machines without it.
"""
from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from netmapper_api.loss import LossSource
from sniffer import libbpf
from sniffer.cgroups import find_cgroup2_root
from sniffer.probe_loader import LoadedObjects, load_programs
from sniffer.records import DnsPacket, IPAddress, ProbeLoss

log = logging.getLogger(__name__)

BPF_SOURCE = Path(__file__).resolve().parent.parent / "bpf" / "dns_reply.bpf.c"
PROGRAM = "dns_reply_ingress"

# struct dns_event: cgroup_id, ts_raw, saddr[16], daddr[16], sport, dport, payload_len, captured_len,
# family, protocol, flags, _pad[5], payload[512]
EVENT_FORMAT = "<QQ16s16sHHHHBBB5x512s"
EVENT = struct.Struct(EVENT_FORMAT)
EVENT_SIZE = EVENT.size  # 576
# Field offsets as laid out by EVENT_FORMAT (checked against the C struct by tests/bpf/test_dns_probe.py).
EVENT_OFFSETS: dict[str, int] = {
    "cgroup_id": 0, "ts_raw": 8, "saddr": 16, "daddr": 32, "sport": 48, "dport": 50,
    "payload_len": 52, "captured_len": 54, "family": 56, "protocol": 57, "flags": 58, "payload": 64,
}
MAX_PAYLOAD = 512
# 4 MiB: ~7,000 replies of slack between two reads (the reader wakes on each record). It is kernel
# memory charged to the sniffer's cgroup, and mapped twice into it (the data area is mapped back to
# back so records can wrap), so 16 MiB cost 32 MiB of RSS for bursts nobody sees.
DEFAULT_RINGBUF_PAGES = 1024
FLAG_TRUNCATED = 1

def _addr(family: int, raw: bytes) -> IPAddress:
    return IPv4Address(raw[:4]) if family == socket.AF_INET else IPv6Address(raw)


def decode_event(data: bytes, *, mono_to_wall: float) -> DnsPacket:
    """Decode one struct dns_event. Raises ValueError on a record that does not fit the layout."""
    if len(data) < EVENT_SIZE:
        raise ValueError(f"short dns_event: {len(data)} < {EVENT_SIZE} bytes")
    (cgroup_id, ts_raw, saddr_raw, daddr_raw, sport, dport, payload_len, captured_len,
     family, protocol, flags, payload) = EVENT.unpack_from(data)
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"dns_event with unknown family {family}")
    captured = min(captured_len, MAX_PAYLOAD)
    return DnsPacket(
        cgroup_id=cgroup_id,
        family=family,
        saddr=_addr(family, saddr_raw),
        daddr=_addr(family, daddr_raw),
        sport=sport,
        dport=dport,
        protocol=protocol,
        payload=payload[:captured],
        truncated=bool(flags & FLAG_TRUNCATED) or captured < payload_len,
        seen_at=ts_raw / 1e9 + mono_to_wall,
        payload_len=payload_len,
    )


class DnsProbe:
    """Context manager: loads and attaches the DNS reply probe; `poll()` returns captured packets.

    Loss is never silent: `lost_total()` is the kernel's count of records dropped because the ring
    buffer was full, `take_loss()` the increase since the previous call as a ProbeLoss.
    """

    def __init__(self, *, cgroup_root: str | None = None, ringbuf_pages: int = DEFAULT_RINGBUF_PAGES,
                 source: Path = BPF_SOURCE) -> None:
        if ringbuf_pages <= 0 or ringbuf_pages & (ringbuf_pages - 1):
            raise ValueError("ringbuf_pages must be a power of two")
        self._cgroup_root = cgroup_root
        self._ringbuf_pages = ringbuf_pages
        self._source = source
        self._objects: LoadedObjects | None = None
        self._ring: libbpf.RingBuffer | None = None
        self._link_fd: int | None = None
        self._pending: list[DnsPacket] = []
        self._mono_to_wall = 0.0
        self._lost_reported = 0
        self._ncpus = 0
        self.decode_errors = 0  # records user space could not decode (should stay 0)

    def __enter__(self) -> DnsProbe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def cgroup_root(self) -> str:
        if self._cgroup_root is None:
            self._cgroup_root = find_cgroup2_root()
        return self._cgroup_root

    def start(self) -> None:
        self._objects = load_programs(source=self._source, cflags=[f"-DDNS_RINGBUF_PAGES={self._ringbuf_pages}"],
                                      programs={PROGRAM: "cgroup_skb"}, maps=["dns_events", "dns_lost"])
        try:
            self._ncpus = libbpf.possible_cpus()
            self._ring = libbpf.RingBuffer(self._objects.maps["dns_events"], self._on_record)
            cg_fd = os.open(self.cgroup_root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                self._link_fd = libbpf.cgroup_link_create(self._objects.programs[PROGRAM], cg_fd, libbpf.BPF_CGROUP_INET_INGRESS)
            finally:
                os.close(cg_fd)
        except BaseException:
            self.close()
            raise
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; one offset converts it to wall time.
        self._mono_to_wall = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)
        log.info("dns probe attached to %s (link fd %d, ring buffer %d pages)",
                 self.cgroup_root, self._link_fd, self._ringbuf_pages)

    def close(self) -> None:
        if self._link_fd is not None:
            os.close(self._link_fd)  # last fd of the link: the kernel detaches the program
            self._link_fd = None
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._objects is not None:
            self._objects.close()
            self._objects = None

    def _on_record(self, data: bytes) -> None:
        try:
            self._pending.append(decode_event(data, mono_to_wall=self._mono_to_wall))
        except ValueError:  # a bad record is counted, never fatal
            self.decode_errors += 1

    def poll(self, timeout_ms: int = 100) -> list[DnsPacket]:
        """Wait up to timeout_ms for records, then return everything that is in the ring buffer."""
        if self._ring is None:
            raise RuntimeError("DnsProbe is not started")
        self._ring.poll(timeout_ms)
        self._ring.consume()  # records that arrived while the callbacks ran
        out, self._pending = self._pending, []
        return out

    def lost_total(self) -> int:
        """Records dropped in the kernel because the ring buffer was full, since start."""
        if self._objects is None:
            return 0
        values = (ctypes.c_uint64 * self._ncpus)()
        libbpf.lookup(self._objects.maps["dns_lost"], ctypes.c_uint32(0), values)
        return int(sum(values))

    def take_loss(self) -> ProbeLoss | None:
        """Loss since the previous call, or None when nothing was lost."""
        total = self.lost_total()
        delta, self._lost_reported = total - self._lost_reported, total
        return ProbeLoss(source=LossSource.RING_BUFFER, count=delta) if delta > 0 else None
