"""sniffer.dns_cache (per-client names with TTL + grace, bounded) and sniffer.dns_trust (who may answer)."""
from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from sniffer.dns_cache import DnsCache
from sniffer.dns_parse import DnsAnswer, DnsAnswerSet
from sniffer.dns_trust import DnsTrustPolicy

IP = IPv4Address("203.0.113.7")


def answers(name: str, ip: str = "203.0.113.7", ttl: int = 30, aliases: tuple[str, ...] = ()) -> DnsAnswerSet:
    return DnsAnswerSet(dns_id=1, query_name=name, query_type=1, rcode=0,
                        answers=(DnsAnswer(ip=ip_address(ip), name=name, aliases=aliases, ttl=ttl),), partial=False)


def test_names_right_after_the_lookup() -> None:
    cache = DnsCache()
    assert cache.record("frontend", answers("api.example.com"), now=100.0) == 1
    assert cache.names_for("frontend", IP, now=100.0) == ("api.example.com",)


def test_names_are_per_client() -> None:
    cache = DnsCache()
    cache.record("frontend", answers("api.example.com"), now=100.0)
    assert cache.names_for("backend", IP, now=100.0) == ()
    assert cache.names_for_any(IP, now=100.0) == ("api.example.com",)


def test_names_survive_the_ttl_for_the_grace_period_then_expire() -> None:
    cache = DnsCache(grace_s=120.0)
    cache.record("c", answers("api.example.com", ttl=30), now=0.0)
    assert cache.names_for("c", IP, now=29.0) == ("api.example.com",)
    assert cache.names_for("c", IP, now=31.0) == ("api.example.com",)  # past TTL, inside grace
    assert cache.names_for("c", IP, now=150.0) == ("api.example.com",)
    assert cache.names_for("c", IP, now=150.5) == ()
    assert cache.names_for_any(IP, now=150.5) == ()
    assert len(cache) == 0  # expired entries are dropped when met


def test_zero_ttl_still_gets_the_grace_period() -> None:
    cache = DnsCache(grace_s=5.0)
    cache.record("c", answers("short.example.com", ttl=0), now=10.0)
    assert cache.names_for("c", IP, now=14.0) == ("short.example.com",)
    assert cache.names_for("c", IP, now=16.0) == ()


def test_huge_ttl_is_clamped() -> None:
    cache = DnsCache(grace_s=0.0, max_ttl_s=3600.0)
    cache.record("c", answers("x.example.com", ttl=2**31 - 1), now=0.0)
    assert cache.names_for("c", IP, now=3600.0) == ("x.example.com",)
    assert cache.names_for("c", IP, now=3601.0) == ()


def test_cname_aliases_are_names_too_asked_name_first() -> None:
    cache = DnsCache()
    cache.record("c", answers("shop.example.com", aliases=("shop.cdn.net",)), now=0.0)
    assert cache.names_for("c", IP, now=1.0) == ("shop.example.com", "shop.cdn.net")


def test_several_names_for_one_ip_most_recent_first() -> None:
    cache = DnsCache()
    cache.record("c", answers("a.example.com"), now=1.0)
    cache.record("c", answers("b.example.com"), now=2.0)
    assert cache.names_for("c", IP, now=3.0) == ("b.example.com", "a.example.com")
    cache.record("c", answers("a.example.com"), now=4.0)
    assert cache.names_for("c", IP, now=5.0) == ("a.example.com", "b.example.com")


def test_a_refresh_extends_validity() -> None:
    cache = DnsCache(grace_s=0.0)
    cache.record("c", answers("a.example.com", ttl=10), now=0.0)
    cache.record("c", answers("a.example.com", ttl=10), now=8.0)
    assert cache.names_for("c", IP, now=17.0) == ("a.example.com",)


def test_ipv4_mapped_ipv6_lookup_finds_the_ipv4_entry() -> None:
    cache = DnsCache()
    cache.record("c", answers("a.example.com"), now=0.0)
    assert cache.names_for("c", IPv6Address("::ffff:203.0.113.7"), now=1.0) == ("a.example.com",)


def test_ipv6_answers() -> None:
    cache = DnsCache()
    cache.record("c", answers("v6.example.com", ip="2001:db8::5"), now=0.0)
    assert cache.names_for("c", IPv6Address("2001:db8::5"), now=1.0) == ("v6.example.com",)


def test_entries_are_bounded_with_lru_eviction_counted() -> None:
    cache = DnsCache(max_entries=3)
    for i in range(3):
        cache.record("c", answers(f"n{i}.example.com", ip=f"192.0.2.{i}"), now=0.0)
    cache.names_for("c", IPv4Address("192.0.2.0"), now=1.0)  # used: 192.0.2.1 is now the oldest
    cache.record("c", answers("n3.example.com", ip="192.0.2.3"), now=2.0)
    assert len(cache) == 3
    assert cache.evictions == 1
    assert cache.names_for("c", IPv4Address("192.0.2.1"), now=2.0) == ()
    assert cache.names_for_any(IPv4Address("192.0.2.1"), now=2.0) == ()
    assert cache.names_for("c", IPv4Address("192.0.2.0"), now=2.0) == ("n0.example.com",)


def test_names_per_ip_are_bounded() -> None:
    cache = DnsCache(max_names_per_ip=4)
    for i in range(10):
        cache.record("c", answers(f"n{i}.example.com"), now=float(i))
    assert cache.names_for("c", IP, now=10.0) == tuple(f"n{i}.example.com" for i in (9, 8, 7, 6))
    assert cache.names_dropped == 6


def test_expire_sweeps_everything_past_grace() -> None:
    cache = DnsCache(grace_s=10.0)
    for i in range(100):
        cache.record(f"client{i}", answers("a.example.com", ttl=i), now=0.0)
    assert cache.expire(now=60.0) == 50  # ttl 0..49 + 10 s grace < 60
    assert len(cache) == 50


def test_names_for_any_merges_clients() -> None:
    cache = DnsCache()
    cache.record("a", answers("one.example.com"), now=1.0)
    cache.record("b", answers("two.example.com"), now=2.0)
    assert cache.names_for_any(IP, now=3.0) == ("two.example.com", "one.example.com")


# -- trust policy


def test_trusted_servers_are_accepted() -> None:
    policy = DnsTrustPolicy.from_addresses(["10.96.0.10", "10.244.0.2", "fd00::a"])
    assert policy.check(IPv4Address("10.96.0.10"))
    assert policy.check(IPv4Address("10.244.0.2"))
    assert policy.check(IPv6Address("fd00::a"))
    assert policy.check(IPv6Address("::ffff:10.96.0.10"))
    assert (policy.accepted, policy.rejected) == (4, 0)


def test_untrusted_replies_are_counted_and_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    clock = [1000.0]
    policy = DnsTrustPolicy.from_addresses(["10.96.0.10"], log_interval_s=60.0, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="sniffer.dns_trust"):
        for _ in range(500):
            assert not policy.check(IPv4Address("10.244.0.66"), IPv4Address("10.244.0.5"))
            clock[0] += 0.1  # 50 s in total: still one line
        assert len(caplog.records) == 1
        clock[0] += 11.0
        assert not policy.check(IPv4Address("10.244.0.66"))
    assert policy.rejected == 501
    assert len(caplog.records) == 2
    assert "499 more" in caplog.records[1].getMessage()


def test_trust_all_and_replacing_the_trusted_set() -> None:
    assert DnsTrustPolicy(trust_all=True).check(IPv4Address("192.0.2.1"))
    policy = DnsTrustPolicy.from_addresses(["10.96.0.10"])
    policy.set_trusted(["10.96.0.11"])
    assert not policy.is_trusted(IPv4Address("10.96.0.10"))
    assert policy.is_trusted(IPv4Address("10.96.0.11"))
