"""sniffer.dns_parse: DNS replies -> (asked name, IP, TTL), errors, TCP framing, dedup."""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord

from sniffer.dns_parse import (
    DnsParseError,
    DnsParseErrorKind,
    ReplyDeduper,
    parse_dns_message,
    parse_dns_packet,
)
from sniffer.records import IPAddress
from tests.sniffer.dns_work import counting_lines, line_budget


@dataclass(frozen=True)
class Pkt:
    """Stands in for sniffer.dns_probe.DnsPacket (same field names)."""

    payload: bytes
    protocol: int = socket.IPPROTO_UDP
    truncated: bool = False
    saddr: IPAddress = IPv4Address("10.96.0.10")
    daddr: IPAddress = IPv4Address("10.244.0.5")
    dport: int = 40000


def reply(qname: str, qtype: str = "A", *answers: RR, rcode: int = RCODE.NOERROR) -> DNSRecord:
    r = DNSRecord.question(qname, qtype).reply()
    r.header.rcode = rcode
    for rr in answers:
        r.add_answer(rr)
    return r


def test_a_record_gives_ip_name_and_ttl() -> None:
    msg = reply("api.example.com", "A", RR("api.example.com", QTYPE.A, rdata=A("93.184.216.34"), ttl=300))
    got = parse_dns_message(msg.pack())
    assert got.query_name == "api.example.com"
    assert got.query_type_name == "A"
    assert got.rcode_name == "NOERROR"
    assert got.dns_id == msg.header.id
    assert [(a.ip, a.name, a.aliases, a.ttl) for a in got.answers] == [
        (IPv4Address("93.184.216.34"), "api.example.com", (), 300)]
    assert not got.partial


def test_aaaa_record() -> None:
    msg = reply("v6.example.com", "AAAA", RR("v6.example.com", QTYPE.AAAA, rdata=AAAA("2001:db8::7"), ttl=30))
    (answer,) = parse_dns_message(msg.pack()).answers
    assert answer.ip == IPv6Address("2001:db8::7")
    assert answer.name == "v6.example.com"


def test_names_are_lower_case_without_trailing_dot() -> None:
    msg = reply("WWW.Example.COM.", "A", RR("www.example.com", QTYPE.A, rdata=A("1.2.3.4")))
    got = parse_dns_message(msg.pack())
    assert got.query_name == "www.example.com"
    assert got.answers[0].name == "www.example.com"


def test_cname_chain_maps_back_to_the_asked_name_with_the_smallest_ttl() -> None:
    msg = reply(
        "shop.example.com", "A",
        RR("shop.example.com", QTYPE.CNAME, rdata=CNAME("shop.cdn.example.net"), ttl=3600),
        RR("shop.cdn.example.net", QTYPE.CNAME, rdata=CNAME("e12.edge.test"), ttl=20),
        RR("e12.edge.test", QTYPE.A, rdata=A("203.0.113.9"), ttl=60),
        RR("e12.edge.test", QTYPE.A, rdata=A("203.0.113.10"), ttl=60),
    )
    got = parse_dns_message(msg.pack())
    assert [a.ip for a in got.answers] == [IPv4Address("203.0.113.9"), IPv4Address("203.0.113.10")]
    for a in got.answers:
        assert a.name == "shop.example.com"
        assert a.aliases == ("shop.cdn.example.net", "e12.edge.test")
        assert a.names == ("shop.example.com", "shop.cdn.example.net", "e12.edge.test")
        assert a.ttl == 20


def test_records_not_on_the_chain_from_the_question_are_ignored() -> None:
    msg = reply(
        "a.example.com", "A",
        RR("a.example.com", QTYPE.A, rdata=A("192.0.2.1")),
        RR("victim.example.org", QTYPE.A, rdata=A("192.0.2.66")),  # unsolicited: not what was asked
    )
    got = parse_dns_message(msg.pack())
    assert [a.ip for a in got.answers] == [IPv4Address("192.0.2.1")]


def test_cname_loop_terminates() -> None:
    msg = reply(
        "x.test", "A",
        RR("x.test", QTYPE.CNAME, rdata=CNAME("y.test")),
        RR("y.test", QTYPE.CNAME, rdata=CNAME("x.test")),
        RR("y.test", QTYPE.A, rdata=A("192.0.2.5")),
    )
    (answer,) = parse_dns_message(msg.pack()).answers
    assert answer.names == ("x.test", "y.test")


def test_nxdomain_has_rcode_and_no_answers() -> None:
    got = parse_dns_message(reply("nope.example.com", "A", rcode=RCODE.NXDOMAIN).pack())
    assert got.rcode == RCODE.NXDOMAIN
    assert got.rcode_name == "NXDOMAIN"
    assert got.answers == ()


def test_other_record_types_are_skipped() -> None:
    msg = reply(
        "m.example.com", "A",
        RR("m.example.com", QTYPE.MX, rdata=MX("mail.example.com")),
        RR("m.example.com", QTYPE.TXT, rdata=TXT("v=spf1 -all")),
        RR("m.example.com", QTYPE.A, rdata=A("192.0.2.8")),
    )
    assert [a.ip for a in parse_dns_message(msg.pack()).answers] == [IPv4Address("192.0.2.8")]


def test_a_record_with_wrong_rdata_length_is_skipped_not_misread() -> None:
    good = reply("z.test", "A", RR("z.test", QTYPE.A, rdata=A("192.0.2.1"))).pack()
    # Answer rdlength is the last 2 bytes before the 4 address bytes: make it claim 3 bytes.
    bad = good[:-6] + struct.pack("!H", 3) + good[-4:-1]
    assert parse_dns_message(bad).answers == ()


def test_query_is_not_a_response() -> None:
    with pytest.raises(DnsParseError) as e:
        parse_dns_message(DNSRecord.question("q.test").pack())
    assert e.value.kind is DnsParseErrorKind.NOT_RESPONSE


def test_garbage_is_malformed() -> None:
    with pytest.raises(DnsParseError) as e:
        parse_dns_message(b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\xff\xff\xff")
    assert e.value.kind is DnsParseErrorKind.MALFORMED


def test_short_packet_is_malformed() -> None:
    with pytest.raises(DnsParseError):
        parse_dns_message(b"\x12\x34\x81")


def test_self_referencing_compression_pointer_is_an_error() -> None:
    header = struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0)
    with pytest.raises(DnsParseError) as e:
        parse_dns_message(header + b"\xc0\x0c\x00\x01\x00\x01")
    assert e.value.kind is DnsParseErrorKind.MALFORMED


def test_forward_compression_pointer_is_an_error() -> None:
    header = struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0)
    with pytest.raises(DnsParseError):
        parse_dns_message(header + b"\xc0\x20\x00\x01\x00\x01" + b"\x00" * 40)


def test_deep_backward_pointer_chain_is_bounded() -> None:
    # Backward pointers cannot loop, but a pointer-to-pointer chain 30000 deep would make one name cost
    # O(message). Build it inside the rdata of a skipped record, point the next record's owner at it.
    header = struct.pack("!HHHHHH", 7, 0x8180, 1, 2, 0, 0)
    question = b"\x00" + struct.pack("!HH", 1, 1)  # root, A, IN: ends at offset 17
    rdata_start = 12 + len(question) + 1 + 10  # after answer 1's owner (root) and fixed fields
    chain = bytearray(b"\x00")
    while len(chain) < 60000:
        prev = rdata_start + (len(chain) - 2 if len(chain) > 1 else 0)
        chain += struct.pack("!H", 0xC000 | prev)
    last = rdata_start + len(chain) - 2
    answer1 = b"\x00" + struct.pack("!HHIH", 99, 1, 60, len(chain)) + bytes(chain)
    answer2 = struct.pack("!H", 0xC000 | last) + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
    outcome, lines = counting_lines(lambda: parse_dns_message(header + question + answer1 + answer2))
    assert isinstance(outcome, DnsParseError)
    # Bounded by the pointer-hop limit (~40k lines for two answers), not by the 30000-deep chain.
    assert lines <= line_budget(answers=2)


def test_name_longer_than_255_bytes_is_malformed() -> None:
    labels = b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00"  # 321 bytes
    header = struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0)
    with pytest.raises(DnsParseError) as e:
        parse_dns_message(header + labels + b"\x00\x01\x00\x01")
    assert e.value.kind is DnsParseErrorKind.MALFORMED


def test_oversized_message_is_rejected() -> None:
    with pytest.raises(DnsParseError) as e:
        parse_dns_message(b"\x00" * 70000)
    assert e.value.kind is DnsParseErrorKind.OVERSIZED


def test_capture_truncated_reply_keeps_complete_answers() -> None:
    rrs = [RR("big.example.com", QTYPE.A, rdata=A(f"198.51.100.{i}"), ttl=10) for i in range(1, 60)]
    full = reply("big.example.com", "A", *rrs).pack()
    assert len(full) > 512
    cut = parse_dns_packet(Pkt(payload=full[:512], truncated=True))
    assert cut.partial
    assert 0 < len(cut.answers) < 59
    assert [a.ip for a in cut.answers] == [ip_address(f"198.51.100.{i}") for i in range(1, len(cut.answers) + 1)]


def test_cut_reply_without_the_truncated_flag_is_malformed() -> None:
    rrs = [RR("big.example.com", QTYPE.A, rdata=A(f"198.51.100.{i}")) for i in range(1, 10)]
    full = reply("big.example.com", "A", *rrs).pack()
    with pytest.raises(DnsParseError) as e:
        parse_dns_packet(Pkt(payload=full[:-3]))
    assert e.value.kind is DnsParseErrorKind.MALFORMED


def test_tcp_segment_with_whole_message() -> None:
    msg = reply("t.example.com", "A", RR("t.example.com", QTYPE.A, rdata=A("192.0.2.44"))).pack()
    got = parse_dns_packet(Pkt(payload=struct.pack("!H", len(msg)) + msg, protocol=socket.IPPROTO_TCP))
    assert [a.ip for a in got.answers] == [IPv4Address("192.0.2.44")]


def test_tcp_segment_with_partial_message_is_a_framing_error() -> None:
    msg = reply("t.example.com", "A", RR("t.example.com", QTYPE.A, rdata=A("192.0.2.44"))).pack()
    seg = struct.pack("!H", len(msg)) + msg
    for payload in (seg[:-1], seg[:1], seg[2:]):  # cut, too short, continuation without prefix
        with pytest.raises(DnsParseError):
            parse_dns_packet(Pkt(payload=payload, protocol=socket.IPPROTO_TCP))


def test_dedup_counts_the_same_reply_once() -> None:
    dedup = ReplyDeduper(window_s=2.0)
    pkt = Pkt(payload=reply("d.test", "A", RR("d.test", QTYPE.A, rdata=A("192.0.2.1"))).pack())
    assert not dedup.is_duplicate(pkt, now=100.0)
    assert dedup.is_duplicate(pkt, now=100.001)
    assert dedup.duplicates == 1


def test_dedup_distinguishes_clients_and_payloads() -> None:
    dedup = ReplyDeduper()
    payload = reply("d.test", "A", RR("d.test", QTYPE.A, rdata=A("192.0.2.1"))).pack()
    assert not dedup.is_duplicate(Pkt(payload=payload), now=1.0)
    assert not dedup.is_duplicate(Pkt(payload=payload, daddr=IPv4Address("10.244.0.6")), now=1.0)
    assert not dedup.is_duplicate(Pkt(payload=payload, dport=40001), now=1.0)
    other = reply("d.test", "A", RR("d.test", QTYPE.A, rdata=A("192.0.2.2"))).pack()
    other = payload[:2] + other[2:]  # same DNS id, different content
    assert not dedup.is_duplicate(Pkt(payload=other), now=1.0)


def test_dedup_forgets_after_the_window() -> None:
    dedup = ReplyDeduper(window_s=2.0)
    pkt = Pkt(payload=b"\x00\x01payload")
    assert not dedup.is_duplicate(pkt, now=10.0)
    assert not dedup.is_duplicate(pkt, now=12.5)


def test_dedup_memory_is_bounded() -> None:
    dedup = ReplyDeduper(window_s=3600.0, max_entries=100)
    for i in range(1000):
        dedup.is_duplicate(Pkt(payload=struct.pack("!I", i)), now=float(i) / 1000)
    assert len(dedup) <= 100
