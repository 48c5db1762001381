"""Tiny TCP peers run inside the lab's namespaces: `serve PORT...` and `call HOST PORT COUNT`.

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


def call(host: str, port: int, count: int) -> int:
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
    c = sub.add_parser("call")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("count", type=int)
    a = p.parse_args(argv)
    return serve(a.ports, a.lifetime) if a.cmd == "serve" else call(a.host, a.port, a.count)


if __name__ == "__main__":
    sys.exit(main())
