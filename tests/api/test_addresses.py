"""One address normaliser for every consumer: IPv4-mapped IPv6 is the IPv4 address everywhere."""
from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from edge_testing import internet, node
from netmapper_api import keys
from netmapper_api.addresses import normalize_ip, normalize_ip_text
from netmapper_api.endpoints import Endpoint, EndpointKind
from sniffer.dns_cache import DnsCache
from sniffer.dns_parse import DnsAnswer
from sniffer.dns_trust import DnsTrustPolicy


@pytest.mark.parametrize(("given", "expected"), [
    ("::ffff:10.0.0.1", IPv4Address("10.0.0.1")),
    ("::ffff:0a00:0001", IPv4Address("10.0.0.1")),  # the same address written in hex
    (IPv6Address("::ffff:192.0.2.7"), IPv4Address("192.0.2.7")),
    ("10.0.0.1", IPv4Address("10.0.0.1")),
    ("2001:db8::0001", IPv6Address("2001:db8::1")),
    ("::1", IPv6Address("::1")),  # loopback is not IPv4-mapped
    ("64:ff9b::a00:1", IPv6Address("64:ff9b::a00:1")),  # NAT64 prefix is a real IPv6 address
])
def test_normalize_ip(given: str | IPv4Address | IPv6Address, expected: IPv4Address | IPv6Address) -> None:
    assert normalize_ip(given) == expected


def test_normalize_ip_text_is_compressed() -> None:
    assert normalize_ip_text("2001:0db8:0000::0001") == "2001:db8::1"
    assert normalize_ip_text("::ffff:10.0.0.1") == "10.0.0.1"


def test_not_an_address_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalize_ip("10.0.0.256")


def test_mapper_keys_use_the_ipv4_address_for_mapped_peers() -> None:
    assert keys.endpoint_identity(internet("::ffff:198.51.100.10"), "server") == \
        keys.endpoint_identity(internet("198.51.100.10"), "server")
    assert keys.endpoint_identity(node("", ip="::ffff:10.0.0.2"), "client") == (keys.NODE, "", "10.0.0.2", "")


def test_sniffer_identity_matches_the_mapper_key_of_what_it_sends() -> None:
    ep = Endpoint(kind=EndpointKind.INTERNET, ip="::ffff:198.51.100.10")
    assert keys.endpoint_id(ep) == keys.endpoint_identity(internet("198.51.100.10"), "server")


def test_dns_cache_and_trust_see_a_mapped_address_as_its_ipv4() -> None:
    cache = DnsCache()
    cache.record("client", [DnsAnswer(ip=ip_address("::ffff:198.51.100.10"), name="api.example.com", aliases=(), ttl=30)], 0.0)
    assert cache.names_for("client", ip_address("198.51.100.10"), 1.0) == ("api.example.com",)
    policy = DnsTrustPolicy.from_addresses(["10.96.0.10"])
    assert policy.is_trusted(ip_address("::ffff:10.96.0.10"))
