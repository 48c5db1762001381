"""DNS reply parsing: a captured packet's payload -> the names its client resolved to which IPs.

Pure code, no I/O. Uses dnslib for the wire format (header, names with compression pointers, A/AAAA/CNAME
rdata) but walks the message itself so that it reads only what it needs: the header, the question and
the answer section. Authority/additional sections and other record types are skipped unparsed, which is
both faster and leaves less to go wrong on hostile input.

Every failure is a DnsParseError with a `kind`; nothing else escapes `parse_dns_packet`. Work and output
are bounded by the input size, which is itself capped (MAX_MESSAGE_BYTES).

A reply captured only in part (the probe copies at most 512 bytes) still yields the answers that were
complete before the cut; `DnsAnswerSet.partial` says so. TCP: a segment is used only when it starts with
the 2-byte length prefix and holds the whole first message (see bpf/dns_reply.bpf.c).
"""
from __future__ import annotations

import enum
import hashlib
import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from dnslib import AAAA, CNAME, QTYPE, RCODE, A, DNSBuffer, DNSError, DNSHeader, DNSQuestion
from dnslib.bimap import BimapError
from dnslib.buffer import BufferError as DnsBufferError
from dnslib.label import DNSLabel

from sniffer.records import IPAddress

MAX_MESSAGE_BYTES = 65535  # largest DNS message (TCP length prefix); anything larger is not DNS
MAX_NAME_WIRE_BYTES = 255  # RFC 1035 limit on an encoded name
MAX_ANSWERS = 256  # answer records read from one message (a 512-byte capture holds ~30)
MAX_CNAME_CHAIN = 16  # CNAME hops followed from the question name (resolvers stop around 8-16)

_TYPE_A, _TYPE_AAAA, _TYPE_CNAME = QTYPE.A, QTYPE.AAAA, QTYPE.CNAME
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


def _name(label: DNSLabel) -> str:
    if sum(len(part) + 1 for part in label.label) + 1 > MAX_NAME_WIRE_BYTES:
        raise DnsParseError(DnsParseErrorKind.MALFORMED, "name longer than 255 bytes")
    return str(label).rstrip(".").lower()


# Everything dnslib and struct raise on bad input. RecursionError: dnslib follows compression pointers
# recursively; pointers must point backwards so chains end, but a long chain in a big message can be
# deeper than the interpreter's recursion limit.
_DECODE_ERRORS = (DNSError, DnsBufferError, BimapError, struct.error, ValueError, IndexError,
                  UnicodeError, RecursionError)


def parse_dns_message(message: bytes, *, capture_truncated: bool = False) -> DnsAnswerSet:
    """Parse a DNS reply message (no TCP length prefix).

    capture_truncated: the message was cut by the capture, so running out of bytes in the answer
    section is expected and yields a partial answer set instead of an error.
    """
    if len(message) > MAX_MESSAGE_BYTES:
        raise DnsParseError(DnsParseErrorKind.OVERSIZED, f"{len(message)} bytes")
    if len(message) < 12:
        raise DnsParseError(DnsParseErrorKind.TRUNCATED if capture_truncated else DnsParseErrorKind.MALFORMED,
                            f"{len(message)} bytes is shorter than a DNS header")
    buf = DNSBuffer(message)
    try:
        header = DNSHeader.parse(buf)
        if not header.qr or header.opcode != 0:
            raise DnsParseError(DnsParseErrorKind.NOT_RESPONSE, f"qr={header.qr} opcode={header.opcode}")
        if header.q != 1:
            # Every real reply to a query repeats its one question; without it nothing can be attributed.
            raise DnsParseError(DnsParseErrorKind.MALFORMED, f"{header.q} questions")
        question = DNSQuestion.parse(buf)
        qname = _name(question.qname)
    except DnsParseError:
        raise
    except _DECODE_ERRORS as e:
        raise DnsParseError(DnsParseErrorKind.TRUNCATED if capture_truncated else DnsParseErrorKind.MALFORMED,
                            f"header/question: {e}") from None

    # owner name -> (address, ttl) and CNAME owner -> (target, ttl), in message order.
    addresses: list[tuple[str, IPAddress, int]] = []
    cnames: dict[str, tuple[str, int]] = {}
    partial = False
    for _ in range(min(header.a, MAX_ANSWERS)):
        try:
            owner = _name(buf.decode_name())
            rtype, rclass, ttl, rdlength = buf.unpack("!HHIH")
            end = buf.offset + rdlength
            if end > len(message):
                raise DnsBufferError("rdata runs past the end of the message")
            if rclass == _CLASS_IN and rtype == _TYPE_A and rdlength == 4:
                addresses.append((owner, IPv4Address(bytes(A.parse(buf, rdlength).data)), ttl))
            elif rclass == _CLASS_IN and rtype == _TYPE_AAAA and rdlength == 16:
                addresses.append((owner, IPv6Address(bytes(AAAA.parse(buf, rdlength).data)), ttl))
            elif rclass == _CLASS_IN and rtype == _TYPE_CNAME:
                target = _name(CNAME.parse(buf, rdlength).label)
                if buf.offset != end:
                    raise DnsBufferError("CNAME rdata length mismatch")
                cnames.setdefault(owner, (target, ttl))
            else:
                buf.offset = end  # other types (and A/AAAA with a bad length) are skipped unparsed
        except DnsParseError:
            raise
        except _DECODE_ERRORS as e:
            if capture_truncated:
                partial = True  # keep what was complete before the capture ended
                break
            raise DnsParseError(DnsParseErrorKind.MALFORMED, f"answer record: {e}") from None
    return DnsAnswerSet(
        dns_id=header.id,
        query_name=qname,
        query_type=question.qtype,
        rcode=header.rcode,
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
    current, aliases, min_ttl = qname, (), 2**31 - 1
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
        key = (packet.daddr, packet.dport, packet.saddr, packet.protocol, dns_id, digest)
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
        seen[key] = now
        seen.move_to_end(key)
        return False

    def __len__(self) -> int:
        return len(self._seen)
