"""DnsProbe with real packets: a dnslib DNS server in one network namespace, clients in others, each
client in its own cgroup v2 directory; the probe (attached to the cgroup v2 root) must see exactly
their answers, attributed to the right cgroup; a reply from a rogue namespace is rejected by the trust
policy. Also: the record layout matches the C struct, and the attachment dies with its process.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import NoReturn

import pytest

from netmapper.demo.netns import NetLab
from sniffer.dns_cache import DnsCache
from sniffer.dns_parse import DnsAnswerSet, DnsParseError, ReplyDeduper, parse_dns_packet
from sniffer.cgroups import find_cgroup2_root
from sniffer.dns_probe import BPF_SOURCE, EVENT_OFFSETS, EVENT_SIZE, DnsProbe
from sniffer.records import DnsPacket
from sniffer.dns_trust import DnsTrustPolicy

pytestmark = pytest.mark.bpf

REQUIRE_ENV = "NETMAPPER_REQUIRE_BPF"

ZONE = {
    "web.example.com.": [["A", "192.0.2.10", 300]],
    "v6.example.com.": [["AAAA", "2001:db8::10", 60]],
    "shop.example.com.": [["CNAME", "shop.cdn.test.", 3600]],
    "shop.cdn.test.": [["CNAME", "e1.edge.test.", 120]],
    "e1.edge.test.": [["A", "192.0.2.20", 30], ["A", "192.0.2.21", 30]],
    "tcp.example.com.": [["A", "192.0.2.30", 300]],
    "other.example.com.": [["A", "192.0.2.40", 300]],
}

SERVER = textwrap.dedent("""
    import json, sys, time
    from dnslib import CNAME, QTYPE, RCODE, RR, A, AAAA
    from dnslib.server import BaseResolver, DNSLogger, DNSServer
    zone = json.loads(sys.argv[1])
    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname)
            qtype = QTYPE[request.q.qtype]
            if name not in zone:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            while name in zone:  # follow CNAMEs inside the zone, like a real server
                nxt = None
                for rtype, value, ttl in zone[name]:
                    if rtype == "CNAME":
                        reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(value), ttl=ttl))
                        nxt = value
                    elif rtype == qtype:
                        rd = A(value) if rtype == "A" else AAAA(value)
                        reply.add_answer(RR(name, getattr(QTYPE, rtype), rdata=rd, ttl=ttl))
                if nxt is None:
                    break
                name = nxt
            return reply
    log = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data")
    servers = [DNSServer(Resolver(), address=sys.argv[2], port=53, logger=log),
               DNSServer(Resolver(), address=sys.argv[2], port=53, tcp=True, logger=log),
               DNSServer(Resolver(), address=sys.argv[3], port=53, logger=log)]
    for s in servers:
        s.start_thread()
    print("ready", flush=True)
    time.sleep(60)
""")

CLIENT = textwrap.dedent("""
    import json, sys
    from dnslib import DNSRecord
    server4, server6, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    out = []
    for name, qtype, transport in queries:
        q = DNSRecord.question(name, qtype)
        v6 = transport == "udp6"
        raw = q.send(server6 if v6 else server4, 53, tcp=transport == "tcp", ipv6=v6, timeout=5)
        r = DNSRecord.parse(raw)
        out.append([name, r.header.rcode, sorted(str(rr.rdata) for rr in r.rr if rr.rtype in (1, 28))])
    print(json.dumps(out))
""")

WAIT_FOR_SPOOF = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 5300))
    s.settimeout(10)
    print("ready", flush=True)
    data, peer = s.recvfrom(2048)
    print(peer[0], flush=True)
""")

SPOOF = textwrap.dedent("""
    import socket, sys
    from dnslib import QTYPE, RR, A, DNSRecord
    r = DNSRecord.question("web.example.com", "A").reply()
    r.add_answer(RR("web.example.com", QTYPE.A, rdata=A("198.51.100.66"), ttl=86400))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 53))
    s.sendto(r.pack(), (sys.argv[2], 5300))
""")

# name, qtype, transport -> what the client expects back (name, rcode, sorted addresses)
CLIENT1_QUERIES = [
    ("web.example.com", "A", "udp"),
    ("v6.example.com", "AAAA", "udp6"),
    ("shop.example.com", "A", "udp"),
    ("missing.example.com", "A", "udp"),
    ("tcp.example.com", "A", "tcp"),
]
CLIENT2_QUERIES = [("other.example.com", "A", "udp")]


def dns_probe_loads(unavailable: Callable[[str, str], NoReturn]) -> None:
    """On top of the shared eBPF check (bpf_ready): this probe's own needs, same skip/fail rule."""
    if shutil.which("bpftool") is None:
        unavailable(REQUIRE_ENV, "bpftool is not installed")
    try:
        with DnsProbe():
            pass
    except Exception as e:  # noqa: BLE001 - any failure to load or attach means "not here"
        unavailable(REQUIRE_ENV, f"DNS probe cannot load or attach: {e}")


def in_cgroup(path: Path):  # type: ignore[no-untyped-def]
    """preexec_fn: move the child into a cgroup before it execs (its sockets then belong there)."""
    def move() -> None:
        (path / "cgroup.procs").write_text(str(os.getpid()))
    return move


@dataclass
class Observed:
    cgroup1: int
    cgroup2: int
    server4: str
    server6: str
    client1: str
    client2: str
    rogue: str
    client_output: dict[str, list[list[object]]]
    packets: list[DnsPacket] = field(default_factory=list)
    accepted: list[tuple[DnsPacket, DnsAnswerSet]] = field(default_factory=list)
    rejected: list[DnsPacket] = field(default_factory=list)
    parse_errors: list[str] = field(default_factory=list)
    policy: DnsTrustPolicy = field(default_factory=DnsTrustPolicy)
    cache: DnsCache = field(default_factory=DnsCache)
    duplicates: int = 0


@pytest.fixture(scope="module")
def observed(bpf_ready: None, unavailable: Callable[[str, str], NoReturn]) -> Iterator[Observed]:
    dns_probe_loads(unavailable)
    cg_root = Path(find_cgroup2_root()) / f"netmapper-dnstest-{os.getpid()}"
    cg1, cg2 = cg_root / "client1", cg_root / "client2"
    # Named and numbered after our pid, so parallel sessions do not collide (as in conftest.py).
    n = os.getpid() % 250
    lab = NetLab(prefix=f"nmd{os.getpid() % 100000}", subnet4=f"10.252.{n}.0/24", subnet6=f"fd00:252:{n:x}::/64")
    procs: list[subprocess.Popen[str]] = []
    try:
        cg1.mkdir(parents=True)
        cg2.mkdir()
        lab.start()
        dns, c1, c2, rogue = (lab.add_host(n) for n in ("dns", "client1", "client2", "rogue"))
        with DnsProbe() as probe:
            server = subprocess.Popen(dns.exec(sys.executable, "-c", SERVER, json.dumps(ZONE), dns.ipv4, dns.ipv6),
                                      stdout=subprocess.PIPE, text=True)
            procs.append(server)
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"

            outputs: dict[str, list[list[object]]] = {}
            for name, host, cg, queries in (("client1", c1, cg1, CLIENT1_QUERIES), ("client2", c2, cg2, CLIENT2_QUERIES)):
                done = subprocess.run(host.exec(sys.executable, "-c", CLIENT, dns.ipv4, dns.ipv6, json.dumps(queries)),
                                      capture_output=True, text=True, timeout=60, preexec_fn=in_cgroup(cg), check=True)
                outputs[name] = json.loads(done.stdout)

            # A rogue namespace (not a DNS server) answers client1's open socket from port 53.
            waiter = subprocess.Popen(c1.exec(sys.executable, "-c", WAIT_FOR_SPOOF, c1.ipv4), stdout=subprocess.PIPE,
                                      text=True, preexec_fn=in_cgroup(cg1))
            procs.append(waiter)
            assert waiter.stdout is not None and waiter.stdout.readline().strip() == "ready"
            subprocess.run(rogue.exec(sys.executable, "-c", SPOOF, rogue.ipv4, c1.ipv4), check=True, timeout=30)
            assert waiter.stdout.readline().strip() == rogue.ipv4  # it was really delivered
            waiter.wait(timeout=10)

            obs = Observed(cgroup1=cg1.stat().st_ino, cgroup2=cg2.stat().st_ino, server4=dns.ipv4,
                           server6=dns.ipv6, client1=c1.ipv4, client2=c2.ipv4, rogue=rogue.ipv4,
                           client_output=outputs,
                           policy=DnsTrustPolicy.from_addresses([dns.ipv4, dns.ipv6]))
            # The sniffer's DNS path: dedup -> parse -> trust -> cache, keyed here by cgroup id.
            dedup = ReplyDeduper()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                for pkt in probe.poll(100):
                    if pkt.cgroup_id not in (obs.cgroup1, obs.cgroup2):
                        continue  # other traffic on this host
                    obs.packets.append(pkt)
                    if dedup.is_duplicate(pkt, pkt.seen_at):
                        continue
                    try:
                        answers = parse_dns_packet(pkt)
                    except DnsParseError as e:
                        obs.parse_errors.append(str(e))
                        continue
                    if obs.policy.check(pkt.saddr, pkt.daddr):
                        obs.accepted.append((pkt, answers))
                        obs.cache.record(pkt.cgroup_id, answers, pkt.seen_at)
                    else:
                        obs.rejected.append(pkt)
                if len(obs.accepted) >= len(CLIENT1_QUERIES) + len(CLIENT2_QUERIES) and obs.rejected:
                    break
            obs.duplicates = dedup.duplicates
            assert probe.lost_total() == 0
        yield obs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        lab.close()
        for d in (cg1, cg2, cg_root):
            if d.exists():
                d.rmdir()


def summary(obs: Observed, cgroup: int) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(a.query_name, a.rcode_name, tuple(sorted(str(x.ip) for x in a.answers)))
            for p, a in obs.accepted if p.cgroup_id == cgroup}


def test_clients_got_real_answers(observed: Observed) -> None:
    # Sanity check of the lab itself: the server answered as the zone says.
    assert observed.client_output["client1"] == [
        ["web.example.com", 0, ["192.0.2.10"]],
        ["v6.example.com", 0, ["2001:db8::10"]],
        ["shop.example.com", 0, ["192.0.2.20", "192.0.2.21"]],
        ["missing.example.com", 3, []],
        ["tcp.example.com", 0, ["192.0.2.30"]],
    ]


def test_probe_saw_exactly_client1_answers_in_its_cgroup(observed: Observed) -> None:
    assert summary(observed, observed.cgroup1) == {
        ("web.example.com", "NOERROR", ("192.0.2.10",)),
        ("v6.example.com", "NOERROR", ("2001:db8::10",)),
        ("shop.example.com", "NOERROR", ("192.0.2.20", "192.0.2.21")),
        ("missing.example.com", "NXDOMAIN", ()),
        ("tcp.example.com", "NOERROR", ("192.0.2.30",)),
    }
    assert len([1 for p, _ in observed.accepted if p.cgroup_id == observed.cgroup1]) == len(CLIENT1_QUERIES)


def test_probe_saw_exactly_client2_answers_in_its_cgroup(observed: Observed) -> None:
    assert summary(observed, observed.cgroup2) == {("other.example.com", "NOERROR", ("192.0.2.40",))}


def test_packet_fields(observed: Observed) -> None:
    by_name = {a.query_name: p for p, a in observed.accepted}
    v4, v6, tcp = by_name["web.example.com"], by_name["v6.example.com"], by_name["tcp.example.com"]
    assert (v4.family, v4.protocol, v4.sport) == (socket.AF_INET, socket.IPPROTO_UDP, 53)
    assert (v4.saddr, v4.daddr) == (IPv4Address(observed.server4), IPv4Address(observed.client1))
    assert (v6.family, v6.saddr) == (socket.AF_INET6, IPv6Address(observed.server6))
    assert tcp.protocol == socket.IPPROTO_TCP
    for p, _ in observed.accepted:
        assert not p.truncated
        assert abs(p.seen_at - time.time()) < 120  # monotonic -> wall clock conversion
        assert p.dport > 1023


def test_cname_chain_names_in_the_cache(observed: Observed) -> None:
    now = max(p.seen_at for p in observed.packets)
    for ip in ("192.0.2.20", "192.0.2.21"):
        assert observed.cache.names_for(observed.cgroup1, ip_address(ip), now) == (
            "shop.example.com", "shop.cdn.test", "e1.edge.test")
    assert observed.cache.names_for(observed.cgroup1, ip_address("192.0.2.40"), now) == ()
    assert observed.cache.names_for(observed.cgroup2, ip_address("192.0.2.40"), now) == ("other.example.com",)


def test_spoofed_reply_from_rogue_namespace_is_rejected(observed: Observed) -> None:
    assert [str(p.saddr) for p in observed.rejected] == [observed.rogue]
    assert observed.rejected[0].cgroup_id == observed.cgroup1
    assert observed.policy.rejected == 1
    now = max(p.seen_at for p in observed.packets)
    assert observed.cache.names_for_any(ip_address("198.51.100.66"), now) == ()
    assert observed.cache.names_for(observed.cgroup1, ip_address("192.0.2.10"), now) == ("web.example.com",)


def test_no_parse_errors(observed: Observed) -> None:
    # TCP: pure ACKs are filtered in the kernel; the one data segment holds the whole reply.
    assert observed.parse_errors == []


def test_event_layout_matches_the_c_struct(tmp_path: Path, unavailable: Callable[[str, str], NoReturn]) -> None:
    """Compile struct dns_event from bpf/dns_reply.bpf.c with the host compiler and compare offsets."""
    cc = shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if cc is None:
        unavailable("NETMAPPER_REQUIRE_TOOLS", "no C compiler (scripts/setup.sh installs gcc)")
    src = BPF_SOURCE.read_text()
    struct_src = re.search(r"struct dns_event \{.*?\};", src, re.S)
    assert struct_src is not None
    fields = "\n".join(f'    printf("{f} %zu\\n", offsetof(struct dns_event, {f}));' for f in EVENT_OFFSETS)
    prog = tmp_path / "layout.c"
    prog.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n"
        "typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;\n"
        "#define DNS_MAX_PAYLOAD 512\n" + struct_src.group(0) + "\nint main(void) {\n" + fields +
        '\n    printf("size %zu\\n", sizeof(struct dns_event));\n    return 0;\n}\n')
    subprocess.run([cc, "-o", str(tmp_path / "layout"), str(prog)], check=True)
    out = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True).stdout
    got = dict(line.split() for line in out.splitlines())
    assert {k: int(v) for k, v in got.items()} == {**EVENT_OFFSETS, "size": EVENT_SIZE}


def _links_of(prog_name: str) -> set[int]:
    out = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    links = json.loads(out.strip() or "[]")
    ids = set()
    for link in links:
        prog = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(link["prog_id"])],
                              capture_output=True, text=True).stdout
        if prog.strip() and json.loads(prog).get("name") == prog_name:
            ids.add(int(link["id"]))
    return ids


def _cgroup_progs(root: str) -> set[int]:
    out = subprocess.run(["bpftool", "-j", "cgroup", "show", root], capture_output=True, text=True, check=True).stdout
    return {int(p["id"]) for p in json.loads(out.strip() or "[]") if p.get("name") == "dns_reply_ingress"}


def test_attachment_disappears_when_the_process_is_killed(bpf_ready: None,
                                                         unavailable: Callable[[str, str], NoReturn]) -> None:
    dns_probe_loads(unavailable)
    root = find_cgroup2_root()
    before_links, before_progs = _links_of("dns_reply_ingress"), _cgroup_progs(root)
    child = subprocess.Popen(
        [sys.executable, "-c", "from sniffer.dns_probe import DnsProbe\nimport time\n"
         "p = DnsProbe(); p.start(); print('attached', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).resolve().parents[2]))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "attached"
        ours_links = _links_of("dns_reply_ingress") - before_links
        ours_progs = _cgroup_progs(root) - before_progs
        assert len(ours_links) == 1 and len(ours_progs) == 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not (_links_of("dns_reply_ingress") & ours_links) and not (_cgroup_progs(root) & ours_progs):
            break
        time.sleep(0.1)
    assert not (_links_of("dns_reply_ingress") & ours_links)
    assert not (_cgroup_progs(root) & ours_progs)
