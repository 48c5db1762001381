"""Fuzzing the DNS parser path the sniffer uses: raw ring-buffer record -> decode_event -> dedup ->
parse_dns_packet -> cache.

Two parts: a seeded mutation fuzzer that pushes well over 100k generated and mutated packets (valid
replies built with dnslib, then bit flips, truncation, splices, injected compression pointers, forged
section counts, random bytes; over UDP and TCP framing) and a hypothesis test for structured inputs.
The property: nothing but DnsParseError escapes, the work of each parse stays within a bound that
follows from the parser's limits (counted in executed lines of sniffer/dns_parse.py, not in seconds:
a wall-clock limit fails on a busy machine), and output stays bounded.
"""
from __future__ import annotations

import random
import socket
import struct
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sniffer.dns_cache import DnsCache
from sniffer.dns_parse import (
    MAX_ANSWERS,
    MAX_CNAME_CHAIN,
    DnsAnswerSet,
    DnsParseError,
    ReplyDeduper,
    parse_dns_message,
    parse_dns_packet,
)
from sniffer.dns_probe import EVENT, MAX_PAYLOAD, decode_event
from sniffer.records import DnsPacket
from tests.sniffer.dns_work import LINE_BUDGET, counting_lines

MUTATED_PACKETS = 110_000
COUNT_EVERY = 50  # every 50th fuzzed parse runs under the line counter (it is ~50x slower)

def parse_counting_lines(pkt: DnsPacket) -> tuple[DnsAnswerSet | DnsParseError, int]:
    """parse_dns_packet under the line counter of dns_work.py."""
    return counting_lines(lambda: parse_dns_packet(pkt))


def corpus() -> list[bytes]:
    """Valid replies covering what the parser handles: A, AAAA, CNAME chains, NXDOMAIN, big answers."""
    out: list[bytes] = []

    def rep(qname: str, qtype: str, *rrs: RR, rcode: int = 0, ar: tuple[RR, ...] = ()) -> None:
        r = DNSRecord.question(qname, qtype).reply()
        r.header.rcode = rcode
        for rr in rrs:
            r.add_answer(rr)
        for rr in ar:
            r.add_ar(rr)
        out.append(bytes(r.pack()))

    rep("api.example.com", "A", RR("api.example.com", QTYPE.A, rdata=A("93.184.216.34"), ttl=300))
    rep("v6.example.com", "AAAA", RR("v6.example.com", QTYPE.AAAA, rdata=AAAA("2001:db8::1"), ttl=30))
    rep("shop.example.com", "A",
        RR("shop.example.com", QTYPE.CNAME, rdata=CNAME("shop.cdn.example.net")),
        RR("shop.cdn.example.net", QTYPE.CNAME, rdata=CNAME("e1.edge.test")),
        RR("e1.edge.test", QTYPE.A, rdata=A("203.0.113.9")),
        RR("e1.edge.test", QTYPE.A, rdata=A("203.0.113.10")))
    rep("nope.example.com", "A", rcode=RCODE.NXDOMAIN)
    rep("svc.ns.svc.cluster.local", "A", RR("svc.ns.svc.cluster.local", QTYPE.A, rdata=A("10.96.1.2"), ttl=5))
    rep("mx.example.com", "MX", RR("mx.example.com", QTYPE.MX, rdata=MX("mail.example.com")),
        ar=(RR("mail.example.com", QTYPE.A, rdata=A("192.0.2.25")), RR("t.example.com", QTYPE.TXT, rdata=TXT("x" * 100))))
    rep("big.example.com", "A", *[RR("big.example.com", QTYPE.A, rdata=A(f"198.51.100.{i}")) for i in range(1, 40)])
    rep("loop.test", "A", RR("loop.test", QTYPE.CNAME, rdata=CNAME("loop2.test")),
        RR("loop2.test", QTYPE.CNAME, rdata=CNAME("loop.test")))
    return out


def mutations(rng: random.Random) -> list[Callable[[bytearray], bytearray]]:
    def flip(b: bytearray) -> bytearray:
        for _ in range(rng.randint(1, 8)):
            if b:
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return b

    def set_byte(b: bytearray) -> bytearray:
        for _ in range(rng.randint(1, 4)):
            if b:
                b[rng.randrange(len(b))] = rng.choice((0, 0xFF, 0xC0, 0x3F, 0x40, rng.randrange(256)))
        return b

    def truncate(b: bytearray) -> bytearray:
        return b[: rng.randrange(len(b) + 1)]

    def pointer(b: bytearray) -> bytearray:  # compression pointers anywhere, to anywhere (incl. loops)
        if len(b) > 2:
            i = rng.randrange(12, len(b) - 1) if len(b) > 13 else 0
            target = rng.choice((i, i + 2, rng.randrange(len(b)), 12, 0x3FFF))
            b[i:i + 2] = struct.pack("!H", 0xC000 | (target & 0x3FFF))
        return b

    def counts(b: bytearray) -> bytearray:  # forged section counts
        if len(b) >= 12:
            b[4:12] = struct.pack("!HHHH", *(rng.choice((0, 1, 2, 255, 0xFFFF)) for _ in range(4)))
        return b

    def splice(b: bytearray) -> bytearray:
        if len(b) > 4:
            i, j = sorted(rng.sample(range(len(b)), 2))
            b[rng.randrange(len(b)):0] = b[i:j] * rng.randint(1, 3)
        return b

    def garbage(b: bytearray) -> bytearray:
        return bytearray(rng.randbytes(rng.choice((0, 1, 11, 12, 13, 40, 512, 600))))

    def label_length(b: bytearray) -> bytearray:  # label lengths past the end / with reserved bits
        if len(b) > 13:
            b[12] = rng.choice((0x3F, 0x40, 0x80, 0xBF, 0xFF))
        return b

    return [flip, set_byte, truncate, pointer, counts, splice, garbage, label_length]


def packets(seed: int, n: int) -> Iterator[bytes]:
    """Raw ring-buffer records (struct dns_event) around mutated DNS replies."""
    rng = random.Random(seed)
    base = corpus()
    ops = mutations(rng)
    for i in range(n):
        msg = bytearray(rng.choice(base))
        for op in rng.sample(ops, rng.randint(1, 3)):
            msg = op(msg)
        tcp = i % 5 == 0
        payload = (struct.pack("!H", rng.choice((len(msg), len(msg), rng.randrange(65536)))) + msg) if tcp else bytes(msg)
        payload_len = len(payload) if rng.random() < 0.8 else rng.randrange(65536)
        captured = min(len(payload), MAX_PAYLOAD)
        if rng.random() < 0.02:
            captured = rng.randrange(65536)  # a corrupt record must not make decode_event misbehave
        family = socket.AF_INET6 if i % 3 == 0 else socket.AF_INET
        yield EVENT.pack(i, 1_000_000 + i, rng.randbytes(16), rng.randbytes(16), 53, 40000 + i % 1000,
                         payload_len & 0xFFFF, captured & 0xFFFF, family,
                         socket.IPPROTO_TCP if tcp else socket.IPPROTO_UDP, rng.randrange(4),
                         payload[:MAX_PAYLOAD])


def check_bounded(result: DnsAnswerSet, payload: bytes) -> None:
    assert len(result.answers) <= MAX_ANSWERS
    assert len(result.answers) <= len(payload) // 11  # an A record takes at least 11 bytes on the wire
    assert len(result.query_name) <= 4 * 255  # dnslib escapes odd bytes as \DDD
    for a in result.answers:
        assert len(a.aliases) <= MAX_CNAME_CHAIN
        assert a.ttl >= 0


def run_pipeline(record: bytes, dedup: ReplyDeduper, cache: DnsCache, now: float, *, count: bool = False) -> bool:
    """One record through the sniffer's DNS path. True when it produced an answer set.

    count: also check the parse's work (executed lines) against LINE_BUDGET.
    """
    pkt = decode_event(record, mono_to_wall=0.0)
    if dedup.is_duplicate(pkt, now):
        return False
    if count:
        outcome, lines = parse_counting_lines(pkt)
        assert 0 < lines <= LINE_BUDGET, f"{lines} lines for a {len(pkt.payload)}-byte payload"
        if isinstance(outcome, DnsParseError):
            return False
        result = outcome
    else:
        try:
            result = parse_dns_packet(pkt)
        except DnsParseError:
            return False
    check_bounded(result, pkt.payload)
    cache.record(pkt.daddr, result, now)
    return True


def test_mutated_packets_never_crash_and_stay_bounded() -> None:
    dedup, cache = ReplyDeduper(max_entries=4096), DnsCache(max_entries=2048)
    parsed = total = 0
    for total, record in enumerate(packets(seed=20240531, n=MUTATED_PACKETS), start=1):
        parsed += run_pipeline(record, dedup, cache, now=total / 20000, count=total % COUNT_EVERY == 0)
    assert total == MUTATED_PACKETS >= 100_000
    assert 0 < parsed < total  # the corpus mutates into both accepted and rejected packets
    assert len(dedup) <= 4096 and len(cache) <= 2048


def test_worst_case_messages_stay_within_the_work_bound() -> None:
    """Messages built to make the parser work hardest: every answer's name a chain of backward
    pointers over many one-byte labels, and CNAME answers (two names per record)."""
    labels = b"".join(b"\x01a" for _ in range(120))  # 240 wire bytes of one-letter labels
    question = labels + b"\x00" + struct.pack("!HH", 1, 1)
    # Each answer's owner: one pointer into the middle of the label run (re-read every time).
    owner = struct.pack("!H", 0xC000 | 12)
    cname_rdata = struct.pack("!H", 0xC000 | 14)
    answers = b"".join(owner + struct.pack("!HHIH", 5, 1, 60, len(cname_rdata)) + cname_rdata
                       for _ in range(MAX_ANSWERS))
    header = struct.pack("!HHHHHH", 7, 0x8180, 1, MAX_ANSWERS, 0, 0)
    message = header + question + answers
    pkt = DnsPacket(cgroup_id=1, family=socket.AF_INET, saddr=ip_address("10.96.0.10"), daddr=ip_address("10.244.0.5"),
                    sport=53, dport=4000, protocol=socket.IPPROTO_TCP, payload=struct.pack("!H", len(message)) + message,
                    truncated=False, seen_at=0.0)
    outcome, lines = parse_counting_lines(pkt)
    assert isinstance(outcome, DnsAnswerSet)  # well-formed: the parser walked all of it
    assert 0 < lines <= LINE_BUDGET


def test_unmutated_corpus_parses_over_udp_and_tcp() -> None:
    for msg in corpus():
        for proto, payload in ((socket.IPPROTO_UDP, msg), (socket.IPPROTO_TCP, struct.pack("!H", len(msg)) + msg)):
            pkt = DnsPacket(cgroup_id=1, family=socket.AF_INET, saddr=ip_address("10.96.0.10"),
                            daddr=ip_address("10.244.0.5"), sport=53, dport=4000,
                            protocol=proto, payload=payload, truncated=False, seen_at=0.0)
            check_bounded(parse_dns_packet(pkt), payload)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.tuples(*(st.integers(0, 0xFFFF) for _ in range(6))),
    body=st.binary(max_size=700),
    tcp=st.booleans(),
    truncated=st.booleans(),
)
def test_structured_random_messages(header: tuple[int, ...], body: bytes, tcp: bool, truncated: bool) -> None:
    msg = struct.pack("!HHHHHH", *header) + body
    payload = struct.pack("!H", len(msg)) + msg if tcp else msg
    record = EVENT.pack(1, 0, bytes(16), bytes(16), 53, 4000, len(payload), min(len(payload), MAX_PAYLOAD),
                        socket.AF_INET, socket.IPPROTO_TCP if tcp else socket.IPPROTO_UDP, int(truncated),
                        payload[:MAX_PAYLOAD])
    run_pipeline(record, ReplyDeduper(), DnsCache(), now=0.0)


@settings(max_examples=1000, deadline=None)
@given(names=st.lists(st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,3}", fullmatch=True), min_size=1, max_size=6),
       ips=st.lists(st.ip_addresses(), min_size=0, max_size=5), ttl=st.integers(0, 2**31 - 1))
def test_generated_valid_replies_map_every_address_to_the_asked_name(names: list[str], ips: list[IPv4Address | IPv6Address], ttl: int) -> None:
    """A CNAME chain names[0] -> ... -> names[-1] with addresses on the last name: every unique
    address comes back tied to names[0]."""
    chain = list(dict.fromkeys(n.lower() for n in names))
    r = DNSRecord.question(chain[0], "A").reply()
    for a, b in zip(chain, chain[1:]):
        r.add_answer(RR(a, QTYPE.CNAME, rdata=CNAME(b), ttl=ttl))
    for ip in ips:
        rr = RR(chain[-1], QTYPE.A, rdata=A(str(ip)), ttl=ttl) if ip.version == 4 else \
            RR(chain[-1], QTYPE.AAAA, rdata=AAAA(str(ip)), ttl=ttl)
        r.add_answer(rr)
    msg = bytes(r.pack())
    pkt = DnsPacket(cgroup_id=1, family=socket.AF_INET, saddr=ips[0] if ips else ip_address("10.0.0.1"),
                    daddr=ip_address("10.0.0.2"), sport=53, dport=1, protocol=socket.IPPROTO_UDP,
                    payload=msg, truncated=False, seen_at=0.0)
    result = parse_dns_packet(pkt)
    assert [a.ip for a in result.answers] == list(dict.fromkeys(ips))
    for a in result.answers:
        assert a.name == chain[0]
        assert a.aliases == tuple(chain[1:])
        assert a.ttl == ttl


def dnslib_reference(msg: bytes) -> set[tuple[str, str, int]] | None:
    """(ip, asked name, ttl) per linked A/AAAA answer as read by dnslib, or None if dnslib rejects it."""
    try:
        rec = DNSRecord.parse(msg)
    except Exception:  # noqa: BLE001 - dnslib's own errors vary; rejection is all we need
        return None
    if len(rec.questions) != 1:
        return None
    qname = str(rec.q.qname).rstrip(".").lower()
    cnames: dict[str, tuple[str, int]] = {}
    for rr in rec.rr:
        if rr.rtype == QTYPE.CNAME and rr.rclass == 1:
            cnames.setdefault(str(rr.rname).rstrip(".").lower(), (str(rr.rdata.label).rstrip(".").lower(), rr.ttl))
    chain, cur, min_ttl = {qname: 2**31 - 1}, qname, 2**31 - 1
    for _ in range(MAX_CNAME_CHAIN):
        hop = cnames.get(cur)
        if hop is None or hop[0] in chain:
            break
        cur, min_ttl = hop[0], min(min_ttl, 0 if hop[1] & 0x80000000 else hop[1])
        chain[cur] = min_ttl
    out: set[tuple[str, str, int]] = set()
    seen: set[str] = set()
    for rr in rec.rr:
        owner = str(rr.rname).rstrip(".").lower()
        if rr.rclass == 1 and rr.rtype in (QTYPE.A, QTYPE.AAAA) and owner in chain:
            raw = bytes(rr.rdata.data)
            if struct.pack("!HHIH", rr.rtype, 1, rr.ttl, len(raw)) + raw not in msg:
                return None  # dnslib ignores a wrong rdlength and misreads the rest: no reference
            ip = str(ip_address(raw))
            if ip not in seen:
                seen.add(ip)
                out.add((ip, qname, min(0 if rr.ttl & 0x80000000 else rr.ttl, chain[owner])))
    return out


def test_differential_against_dnslib() -> None:
    """Where both dnslib and our parser accept a whole (untruncated) message, they agree."""
    rng = random.Random(7)
    base, ops = corpus(), mutations(rng)
    compared = 0
    for _ in range(40_000):
        msg = bytearray(rng.choice(base))
        for op in rng.sample(ops, rng.randint(1, 2)):
            msg = op(msg)
        try:
            ours = parse_dns_message(bytes(msg))
        except DnsParseError:
            continue
        ref = dnslib_reference(bytes(msg))
        if ref is None or "\\" in ours.query_name or any("\\" in a for x in ours.answers for a in x.aliases):
            continue  # dnslib rejects it, or a label holds "." / "\" (dnslib does not escape those)
        assert {(str(a.ip), a.name, a.ttl) for a in ours.answers} == ref, bytes(msg).hex()
        compared += 1
    assert compared > 3000  # ~9% of mutants are accepted by both
