"""Tiny TCP client/server run inside lab namespaces (`ip netns exec NS python netpeer.py ...`).

serve:   dual-stack listener(s) on [::]:PORT that accept and close, until killed; prints "ready".
connect: connects to each --target (ADDR:PORT or [ADDR6]:PORT) --repeat times; prints one JSON line {pid, netns, results} where results
         are errno names per attempt ("OK" on success). With --hold it then waits for stdin EOF, so
         the test can inspect /proc/<pid> of a live process.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import selectors
import socket
import struct
import sys


def parse_target(text: str) -> tuple[int, str, int]:
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        return socket.AF_INET6, host[1:-1], int(port)
    return socket.AF_INET, host, int(port)


def serve(ports: list[int]) -> None:
    sel = selectors.DefaultSelector()
    for port in ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        s.listen(1024)
        sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
            conn.close()


def connect(targets: list[str], repeat: int, hold: bool) -> None:
    results: list[str] = []
    for _ in range(repeat):
        for target in targets:
            family, host, port = parse_target(target)
            s = socket.socket(family, socket.SOCK_STREAM)
            # RST on close: no TIME_WAIT pile-up on the client side across many repeats
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.settimeout(5)
            err = s.connect_ex((host, port))
            results.append("OK" if err == 0 else errno.errorcode.get(err, str(err)))
            s.close()
    print(json.dumps({"pid": os.getpid(), "netns": os.stat("/proc/self/ns/net").st_ino, "results": results}), flush=True)
    if hold:
        sys.stdin.read()


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, action="append", required=True)
    c = sub.add_parser("connect")
    c.add_argument("--target", action="append", required=True)
    c.add_argument("--repeat", type=int, default=1)
    c.add_argument("--hold", action="store_true")
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a.port)
    else:
        connect(a.target, a.repeat, a.hold)


if __name__ == "__main__":
    main()
