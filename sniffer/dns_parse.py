"""DNS reply parsing: a captured packet's payload -> the names its client resolved to which IPs.

Pure code, no I/O. Walks the wire format itself (RFC 1035 4.1) and reads only what it needs: the header,
the question and the answer section; names with compression pointers are decoded iteratively with
strictly backward pointers, so loops are impossible and work is linear in the input. Authority and
additional sections and other record types are skipped unparsed: faster, and less to go wrong on hostile
input. dnslib provides the type/rcode tables and is the reference the fuzz test compares against.

Every failure is a DnsParseError with a `kind`; nothing else escapes `parse_dns_packet`. Work and output
are bounded by the input size, which is itself capped (MAX_MESSAGE_BYTES).

A reply captured only in part (the probe copies at most 512 bytes) still yields the answers that were
complete before the cut; `DnsAnswerSet.partial` says so. TCP: a segment is used only when it starts with
the 2-byte length prefix and holds the whole first message (see bpf/dns_reply.bpf.c).
"""
from __future__ import annotations

import enum
import hashlib
import re
import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from dnslib import QTYPE, RCODE

from sniffer.records import IPAddress

MAX_MESSAGE_BYTES = 65535  # largest DNS message (TCP length prefix); anything larger is not DNS
MAX_NAME_WIRE_BYTES = 255  # RFC 1035 limit on an encoded name
MAX_ANSWERS = 256  # answer records read from one message (a 512-byte capture holds ~30)
MAX_POINTER_HOPS = 128  # compression pointers followed in one name (a 255-byte name has < 128 labels)
MAX_CNAME_CHAIN = 16  # CNAME hops followed from the question name (resolvers stop around 8-16)

_TYPE_A, _TYPE_AAAA, _TYPE_CNAME = 1, 28, 5
_CLASS_IN = 1


class DnsParseErrorKind(enum.Enum):
    MALFORMED = "malformed"  # does not decode as DNS
    TRUNCATED = "truncated"  # cut off before the answer section could be read at all
    NOT_RESPONSE = "not_response"  # QR bit clear, or not a standard query (opcode != 0)
    OVERSIZED = "oversized"  # larger than any DNS message can be
    TCP_FRAMING = "tcp_framing"  # TCP segment that does not hold one whole length-prefixed message


class DnsParseError(Exception):
    """The packet is not a usable DNS reply. `kind` says why (for counters); str() has the detail."""

    def __init__(self, kind: DnsParseErrorKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind


class DnsPacketLike(Protocol):
    """What the parser needs from a captured packet (sniffer.dns_probe.DnsPacket has it)."""

    @property
    def protocol(self) -> int: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def truncated(self) -> bool: ...


class DedupPacketLike(DnsPacketLike, Protocol):
    @property
    def saddr(self) -> IPAddress: ...
    @property
    def daddr(self) -> IPAddress: ...
    @property
    def dport(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """One A/AAAA answer tied back to the name the client asked for."""

    ip: IPAddress
    name: str  # the question name (what the client asked), lower case, no trailing dot
    aliases: tuple[str, ...]  # CNAME chain from the question to the record owner (owner last); () if direct
    ttl: int  # seconds: the smallest TTL along the chain (the answer is only as fresh as its weakest link)

    @property
    def names(self) -> tuple[str, ...]:
        """All names of this IP in this reply: the asked name first, then the CNAME chain."""
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class DnsAnswerSet:
    """What one DNS reply says."""

    dns_id: int
    query_name: str  # lower case, no trailing dot; "" for the root
    query_type: int  # QTYPE value (1 = A, 28 = AAAA, ...)
    rcode: int  # 0 NOERROR, 3 NXDOMAIN, ...
    answers: tuple[DnsAnswer, ...]
    partial: bool  # the capture ended inside the answer section: answers after the cut are missing

    @property
    def rcode_name(self) -> str:
        return str(RCODE.get(self.rcode, f"RCODE{self.rcode}"))

    @property
    def query_type_name(self) -> str:
        return str(QTYPE.get(self.query_type, f"TYPE{self.query_type}"))


class _Short(Exception):
    """Ran out of bytes (the capture or the message ended)."""


class _Bad(Exception):
    """Structurally invalid."""


_SAFE_NAME = re.compile(rb"[A-Za-z0-9_\-.*]*")  # a name that needs no escaping (fast path)


def _escape_label(label: bytes) -> str:
    # Same presentation format as dnslib: printable ASCII as is, "." and "\\" escaped, others \DDD.
    out = []
    for b in label:
        if b in (0x2E, 0x5C):
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def _read_name(data: bytes, pos: int) -> tuple[str, int]:
    """Decode the (possibly compressed) name at pos; returns (name, offset after it in the message).

    Iterative and bounded: every compression pointer must point before the previous jump target
    (strictly decreasing, so it cannot loop), at most MAX_POINTER_HOPS are followed and the name may
    not exceed 255 wire bytes.
    """
    hops = 0
    labels: list[bytes] = []
    wire = 1
    after = -1  # where the name ends in the message: after its first pointer, or after the root label
    limit = pos  # the next pointer must point before this
    n = len(data)
    while True:
        if pos >= n:
            raise _Short("name runs past the end")
        length = data[pos]
        if length >= 0xC0:
            if pos + 1 >= n:
                raise _Short("pointer runs past the end")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if after < 0:
                after = pos + 2
            if target >= limit:
                raise _Bad(f"compression pointer {target} does not point backwards (loop or forward)")
            hops += 1
            if hops > MAX_POINTER_HOPS:
                raise _Bad("too many compression pointers in one name")
            pos = limit = target
            continue
        if length >= 0x40:
            raise _Bad(f"reserved label type {length:#x}")
        if length == 0:
            pos += 1
            break
        wire += length + 1
        if wire > MAX_NAME_WIRE_BYTES:
            raise _Bad("name longer than 255 bytes")
        label = data[pos + 1:pos + 1 + length]
        if len(label) < length:
            raise _Short("label runs past the end")
        labels.append(label)
        pos += 1 + length
    raw = b".".join(labels)
    if _SAFE_NAME.fullmatch(raw) and all(labels):
        name = raw.decode("ascii").lower()
    else:
        name = ".".join(_escape_label(label) for label in labels).lower()
    return name, (after if after >= 0 else pos)


_HEADER = struct.Struct("!HHHHHH")
_QFIXED = struct.Struct("!HH")
_RRFIXED = struct.Struct("!HHIH")


def parse_dns_message(message: bytes, *, capture_truncated: bool = False) -> DnsAnswerSet:
    """Parse a DNS reply message (no TCP length prefix).

    capture_truncated: the message was cut by the capture, so running out of bytes in the answer
    section is expected and yields a partial answer set instead of an error.

    The wire format is walked directly with struct (RFC 1035 4.1): dnslib's generic decoder builds an
    object per label and per record and cost ~30 us per reply, too much for 20k replies/s next to the
    rest of the pipeline on a small node. dnslib stays the reference: the fuzz test checks that both
    agree on every message dnslib accepts.
    """
    data = bytes(message)
    n = len(data)
    if n > MAX_MESSAGE_BYTES:
        raise DnsParseError(DnsParseErrorKind.OVERSIZED, f"{n} bytes")
    short = DnsParseErrorKind.TRUNCATED if capture_truncated else DnsParseErrorKind.MALFORMED
    if n < 12:
        raise DnsParseError(short, f"{n} bytes is shorter than a DNS header")
    dns_id, flags, qdcount, ancount, _nscount, _arcount = _HEADER.unpack_from(data)
    qr, opcode, rcode = flags >> 15, (flags >> 11) & 0xF, flags & 0xF
    if not qr or opcode != 0:
        raise DnsParseError(DnsParseErrorKind.NOT_RESPONSE, f"qr={qr} opcode={opcode}")
    if qdcount != 1:
        # Every real reply to a query repeats its one question; without it nothing can be attributed.
        raise DnsParseError(DnsParseErrorKind.MALFORMED, f"{qdcount} questions")
    try:
        qname, pos = _read_name(data, 12)
        if pos + 4 > n:
            raise _Short("question runs past the end")
        qtype, _qclass = _QFIXED.unpack_from(data, pos)
        pos += 4
    except _Short as e:
        raise DnsParseError(short, f"question: {e}") from None
    except _Bad as e:
        raise DnsParseError(DnsParseErrorKind.MALFORMED, f"question: {e}") from None

    addresses: list[tuple[str, IPAddress, int]] = []
    cnames: dict[str, tuple[str, int]] = {}  # CNAME owner -> (target, ttl), first one wins
    partial = False
    for _ in range(min(ancount, MAX_ANSWERS)):
        try:
            owner, pos = _read_name(data, pos)
            if pos + 10 > n:
                raise _Short("record header runs past the end")
            rtype, rclass, ttl, rdlength = _RRFIXED.unpack_from(data, pos)
            pos += 10
            end = pos + rdlength
            if end > n:
                raise _Short("rdata runs past the end")
            if ttl & 0x80000000:  # RFC 2181 8: a TTL with the top bit set is treated as zero
                ttl = 0
            if rclass == _CLASS_IN and rtype == _TYPE_A and rdlength == 4:
                addresses.append((owner, IPv4Address(data[pos:end]), ttl))
            elif rclass == _CLASS_IN and rtype == _TYPE_AAAA and rdlength == 16:
                addresses.append((owner, IPv6Address(data[pos:end]), ttl))
            elif rclass == _CLASS_IN and rtype == _TYPE_CNAME:
                target, target_end = _read_name(data, pos)
                if target_end != end:
                    raise _Bad("CNAME rdata length mismatch")
                cnames.setdefault(owner, (target, ttl))
            # other types (and A/AAAA with a bad length) are skipped unparsed
            pos = end
        except _Short as e:
            if capture_truncated:
                partial = True  # keep what was complete before the capture ended
                break
            raise DnsParseError(DnsParseErrorKind.MALFORMED, f"answer record: {e}") from None
        except _Bad as e:
            raise DnsParseError(DnsParseErrorKind.MALFORMED, f"answer record: {e}") from None
    return DnsAnswerSet(
        dns_id=dns_id,
        query_name=qname,
        query_type=qtype,
        rcode=rcode,
        answers=_link_answers(qname, addresses, cnames),
        partial=partial,
    )


def _link_answers(qname: str, addresses: list[tuple[str, IPAddress, int]],
                  cnames: dict[str, tuple[str, int]]) -> tuple[DnsAnswer, ...]:
    """Tie each address back to the question through the CNAME chain.

    Addresses whose owner is not on the chain starting at the question are dropped: a reply has no
    business asserting names the client did not ask for.
    """
    chain: dict[str, tuple[tuple[str, ...], int]] = {qname: ((), 2**31 - 1)}  # owner -> (aliases, min ttl)
    aliases: tuple[str, ...] = ()
    current, min_ttl = qname, 2**31 - 1
    for _ in range(MAX_CNAME_CHAIN):
        hop = cnames.get(current)
        if hop is None or hop[0] in chain:  # end of chain, or a loop
            break
        current, aliases, min_ttl = hop[0], (*aliases, hop[0]), min(min_ttl, hop[1])
        chain[current] = (aliases, min_ttl)
    out: list[DnsAnswer] = []
    seen: set[IPAddress] = set()
    for owner, ip, ttl in addresses:
        link = chain.get(owner)
        if link is None or ip in seen:
            continue
        seen.add(ip)
        out.append(DnsAnswer(ip=ip, name=qname, aliases=link[0], ttl=min(ttl, link[1])))
    return tuple(out)


def dns_message(packet: DnsPacketLike) -> tuple[bytes, bool]:
    """The DNS message inside a packet's payload and whether it is cut short by the capture.

    TCP: the payload must start with the 2-byte length prefix and hold the whole message: a segment
    that continues an earlier one cannot be told from one that starts a message, so guessing would
    attribute garbage.
    """
    payload = packet.payload
    if packet.protocol == socket.IPPROTO_TCP:
        if len(payload) < 2:
            raise DnsParseError(DnsParseErrorKind.TCP_FRAMING, "segment shorter than the length prefix")
        (length,) = struct.unpack_from("!H", payload)
        if length < 12 or 2 + length > len(payload):
            raise DnsParseError(DnsParseErrorKind.TCP_FRAMING,
                                f"message of {length} bytes not whole in a {len(payload)}-byte capture")
        return payload[2:2 + length], False
    return payload, packet.truncated


def parse_dns_packet(packet: DnsPacketLike) -> DnsAnswerSet:
    """The parser path the sniffer uses for every captured packet. Raises only DnsParseError."""
    message, cut = dns_message(packet)
    return parse_dns_message(message, capture_truncated=cut)


@dataclass
class ReplyDeduper:
    """Drops a reply already seen within `window_s` (a packet can be captured twice, e.g. on loopback,
    and TCP retransmits the same segment).

    Key: (client address and port, server address, protocol, DNS id, payload hash). Memory is bounded by
    max_entries: the oldest keys go first, so under a flood the effective window just gets shorter.
    """

    window_s: float = 2.0
    max_entries: int = 65536
    duplicates: int = 0
    _seen: OrderedDict[tuple[object, ...], float] = field(default_factory=OrderedDict, repr=False)

    def is_duplicate(self, packet: DedupPacketLike, now: float) -> bool:
        payload = packet.payload
        id_off = 2 if packet.protocol == socket.IPPROTO_TCP else 0
        dns_id = int.from_bytes(payload[id_off:id_off + 2], "big")
        digest = hashlib.blake2b(payload, digest_size=8).digest()
        # ints, not address objects: ipaddress hashes in Python code, this runs for every packet.
        key = (int(packet.daddr), packet.daddr.version, packet.dport, int(packet.saddr), packet.protocol,
               dns_id, digest)
        seen = self._seen
        while seen:  # expire from the oldest end; entries are in insertion (= time) order
            oldest_key, oldest_at = next(iter(seen.items()))
            if now - oldest_at <= self.window_s and len(seen) < self.max_entries:
                break
            del seen[oldest_key]
        at = seen.get(key)
        if at is not None and now - at <= self.window_s:
            self.duplicates += 1
            return True
        seen.pop(key, None)  # re-insert at the newest end (an expired twin may still sit in the middle)
        seen[key] = now
        return False

    def __len__(self) -> int:
        return len(self._seen)
