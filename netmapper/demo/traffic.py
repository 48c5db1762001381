"""Tiny peers run inside the lab's namespaces: `serve PORT...`, `dns NAME=IP...` (a DNS server) and
`call HOST PORT COUNT [--dns SERVER]` (HOST may be a name, then resolved through SERVER first).

Run as `python -m netmapper.demo.traffic ...` through `ip netns exec`. Bounded: servers exit after
`--lifetime` seconds, clients make exactly COUNT connects.
"""
from __future__ import annotations

import argparse
import selectors
import socket
import sys
import time


def serve(ports: list[int], lifetime: float) -> int:
    sel = selectors.DefaultSelector()
    for port in ports:
        for family, addr in ((socket.AF_INET6, "::"),):  # dual-stack: v4 and v6 on one socket
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((addr, port))
            s.listen(128)
            sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
            conn.close()
    return 0


def dns(records: list[str], lifetime: float) -> int:
    """A DNS server on UDP port 53: NAME=IPv4 (A), NAME=IPv6 (AAAA), NAME=>TARGET (CNAME); else NXDOMAIN."""
    from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, A, DNSRecord

    cnames = dict(r.split("=>", 1) for r in records if "=>" in r)
    table = dict(r.split("=", 1) for r in records if "=>" not in r)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 53))
    sock.settimeout(0.2)
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        try:
            data, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        try:
            query = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - a bad query gets no answer, the server goes on
            continue
        reply = query.reply()
        name = str(query.q.qname).rstrip(".")
        for _ in range(8):  # follow our own CNAMEs, bounded
            if name not in cnames:
                break
            reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(cnames[name]), ttl=30))
            name = cnames[name]
        addr = table.get(name)
        if addr is not None and query.q.qtype == QTYPE.A and ":" not in addr:
            reply.add_answer(RR(name, QTYPE.A, rdata=A(addr), ttl=30))
        elif addr is not None and query.q.qtype == QTYPE.AAAA and ":" in addr:
            reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA(addr), ttl=30))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        sock.sendto(reply.pack(), peer)
    return 0


def resolve(name: str, server: str, qtype: str = "A") -> str:
    from dnslib import QTYPE, DNSRecord

    answer = DNSRecord.parse(DNSRecord.question(name, qtype).send(server, 53, timeout=2))
    for rr in answer.rr:
        if rr.rtype == getattr(QTYPE, qtype):
            return str(rr.rdata)
    raise OSError(f"{name}: no {qtype} record from {server}")


def call(host: str, port: int, count: int, dns_server: str | None = None, qtype: str = "A") -> int:
    if dns_server is not None:
        try:
            host = resolve(host, dns_server, qtype)
        except OSError as e:
            print(f"call: {e}", file=sys.stderr)
            return 2
    failures = 0
    for _ in range(count):
        try:
            with socket.create_connection((host, port), timeout=2):
                pass
        except OSError:
            failures += 1
    return 1 if failures == count else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="traffic")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("ports", type=int, nargs="+")
    s.add_argument("--lifetime", type=float, default=120.0)
    d = sub.add_parser("dns")
    d.add_argument("records", nargs="+", metavar="NAME=IP")
    d.add_argument("--lifetime", type=float, default=120.0)
    c = sub.add_parser("call")
    c.add_argument("--dns", default=None, metavar="SERVER", help="resolve HOST through this DNS server first")
    c.add_argument("--qtype", choices=("A", "AAAA"), default="A", help="record type to resolve with --dns")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("count", type=int)
    a = p.parse_args(argv)
    if a.cmd == "serve":
        return serve(a.ports, a.lifetime)
    if a.cmd == "dns":
        return dns(a.records, a.lifetime)
    return call(a.host, a.port, a.count, a.dns, a.qtype)


if __name__ == "__main__":
    sys.exit(main())
