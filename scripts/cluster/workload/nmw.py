"""Workload programs for the cluster tests (one image, many roles):

    nmw.py serve PORT                      a TCP server: answers every connection with one line
    nmw.py call HOST PORT [--every S] [--count N] [--v6mapped]
                                           connect to HOST:PORT (a name goes through the pod's resolver) every S
                                           seconds, N times (0: forever); --v6mapped connects an AF_INET6 socket
                                           to the IPv4 address as ::ffff:a.b.c.d (a dual-stack client)
"""
from __future__ import annotations

import argparse
import logging
import socket
import socketserver
import time

log = logging.getLogger("nmw")


class _Reply(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"ok\n")


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(port: int) -> None:
    with _Server(("0.0.0.0", port), _Reply) as srv:
        log.info("serving on :%d", port)
        srv.serve_forever()


def call_once(host: str, port: int, v6mapped: bool) -> str:
    ipv4 = str(socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
    if v6mapped:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        target: tuple[str, int] = (f"::ffff:{ipv4}", port)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (ipv4, port)
    with sock:
        sock.settimeout(3)
        sock.connect(target)
        return sock.recv(16).decode(errors="replace").strip()


def call(host: str, port: int, every: float, count: int, v6mapped: bool) -> None:
    n = 0
    while count == 0 or n < count:
        n += 1
        try:
            log.info("call %d %s:%d -> %s", n, host, port, call_once(host, port, v6mapped))
        except OSError as e:
            log.warning("call %d %s:%d failed: %s", n, host, port, e)
        time.sleep(every)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    c = sub.add_parser("call")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--every", type=float, default=1.0)
    c.add_argument("--count", type=int, default=0)
    c.add_argument("--v6mapped", action="store_true")
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a.port)
    else:
        call(a.host, a.port, a.every, a.count, a.v6mapped)


if __name__ == "__main__":
    main()
