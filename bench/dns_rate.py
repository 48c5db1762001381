"""DNS capture benchmark: how many DNS replies per second the sniffer captures and parses with zero loss.

Real packets: a blaster in one network namespace sends distinct, prebuilt DNS replies from port 53 to a
UDP socket in another namespace (a veth pair through a bridge, so each packet is captured once; on
loopback every packet would be seen twice and the dedup would hide half of them). This process runs
the sniffer's DNS path on everything the probe captures: decode -> dedup -> parse -> trust -> cache.

For each offered rate it reports what was sent, what the pipeline parsed, what was lost (sent - parsed;
ring-buffer drops are shown separately), the sniffer's CPU per reply, and the lag: how long after the
blaster stopped the pipeline needed to catch up. A rate counts as sustained only with zero loss and a
small lag; otherwise the 16 MiB ring buffer could hide a pipeline that is slower than the offered rate.

Usage (root): .venv/bin/python bench/dns_rate.py [--rates 5000,10000,20000,...] [--seconds 5]
Bench output goes to stdout (print is fine here).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DNS_SPORT = 53
RECV_PORT = 5301
MAX_LAG_S = 0.5  # a sustained rate drains its backlog within this after the blaster stops


def blast(src: str, dst: str, port: int, rate: int, seconds: float) -> None:
    """Send rate*seconds distinct DNS replies at `rate`/s (paced per millisecond), then print a JSON summary."""
    from dnslib import QTYPE, RR, A, DNSRecord

    r = DNSRecord.question("svc.bench.example.com", "A").reply()
    r.add_answer(RR("svc.bench.example.com", QTYPE.A, rdata=A("198.18.0.0"), ttl=30))
    template = bytearray(r.pack())
    ip_off = len(template) - 4  # the A record's address is the last 4 bytes
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((src, DNS_SPORT))
    total = int(rate * seconds)
    sent = errors = 0
    start = time.monotonic()
    while sent + errors < total:
        # Send what is due by now, then sleep to the next millisecond tick: bounded, paced loop.
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent + errors < due:
            i = sent + errors
            struct.pack_into("!H", template, 0, i & 0xFFFF)  # DNS id
            struct.pack_into("!I", template, ip_off, 0xC6120000 | (i & 0xFFFF) | ((i >> 16) & 0x1) << 16)
            try:
                s.sendto(template, (dst, port))
                sent += 1
            except OSError:
                errors += 1
        time.sleep(0.001)
    print(json.dumps({"sent": sent, "errors": errors, "seconds": time.monotonic() - start}), flush=True)


def receive(bind: str, port: int, idle_s: float) -> None:
    """Drain a UDP socket until it has been idle for idle_s after the first packet; print the count."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((bind, port))
    print("ready", flush=True)
    got = 0
    s.settimeout(30.0)
    try:
        while True:
            s.recv(2048)
            got += 1
            s.settimeout(idle_s)
    except TimeoutError:
        pass
    print(json.dumps({"received": got}), flush=True)


@dataclass
class StepResult:
    rate: int
    sent: int
    parsed: int
    lost: int
    ring_drops: int
    received_by_socket: int
    send_seconds: float
    lag_s: float
    cpu_us_per_reply: float

    @property
    def sustained(self) -> bool:
        return self.lost == 0 and self.ring_drops == 0 and self.lag_s <= MAX_LAG_S


def run_step(rate: int, seconds: float, lab_hosts: tuple[object, object], probe: object) -> StepResult:
    from sniffer.dns_cache import DnsCache
    from sniffer.dns_parse import DnsParseError, ReplyDeduper, parse_dns_packet
    from sniffer.dns_trust import DnsTrustPolicy

    server, client = lab_hosts
    me = Path(__file__).resolve()
    recv = subprocess.Popen(client.exec(sys.executable, str(me), "receive", "--bind", client.ipv4,  # type: ignore[attr-defined]
                                        "--port", str(RECV_PORT)), stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
    dedup, cache = ReplyDeduper(), DnsCache()
    policy = DnsTrustPolicy.from_addresses([server.ipv4])  # type: ignore[attr-defined]
    client_ip = ip_address(client.ipv4)  # type: ignore[attr-defined]
    lost_before = probe.lost_total()  # type: ignore[attr-defined]
    probe.poll(0)  # type: ignore[attr-defined]  # flush anything unrelated
    parsed = 0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    blaster = subprocess.Popen(server.exec(sys.executable, str(me), "blast", "--src", server.ipv4,  # type: ignore[attr-defined]
                                           "--dst", client.ipv4, "--port", str(RECV_PORT), "--rate", str(rate),  # type: ignore[attr-defined]
                                           "--seconds", str(seconds)), stdout=subprocess.PIPE, text=True)
    blaster_done_at: float | None = None
    caught_up_at: float | None = None
    deadline = time.monotonic() + seconds + 30
    expected = int(rate * seconds)
    while time.monotonic() < deadline:
        batch = probe.poll(20)  # type: ignore[attr-defined]
        for pkt in batch:
            if pkt.daddr != client_ip or pkt.dport != RECV_PORT:
                continue
            if dedup.is_duplicate(pkt, pkt.seen_at):
                continue
            try:
                answers = parse_dns_packet(pkt)
            except DnsParseError:
                continue
            if policy.check(pkt.saddr, pkt.daddr):
                cache.record(pkt.daddr, answers, pkt.seen_at)
                parsed += 1
        if blaster_done_at is None and blaster.poll() is not None:
            blaster_done_at = time.monotonic()
        if blaster_done_at is not None and parsed >= expected:
            caught_up_at = time.monotonic()
            break
        if blaster_done_at is not None and not batch and time.monotonic() - blaster_done_at > 2.0:
            break  # nothing more is coming
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out, _ = blaster.communicate(timeout=30)
    summary = json.loads(out.strip().splitlines()[-1])
    recv_out, _ = recv.communicate(timeout=60)
    received = json.loads(recv_out.strip().splitlines()[-1])["received"]
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    sent = int(summary["sent"])
    end = caught_up_at if caught_up_at is not None else time.monotonic()
    return StepResult(
        rate=rate, sent=sent, parsed=parsed, lost=max(0, sent - parsed),
        ring_drops=probe.lost_total() - lost_before,  # type: ignore[attr-defined]
        received_by_socket=received, send_seconds=float(summary["seconds"]),
        lag_s=end - (blaster_done_at or end), cpu_us_per_reply=cpu / max(parsed, 1) * 1e6,
    )


def bench(rates: list[int], seconds: float) -> list[StepResult]:
    from netmapper.demo.netns import NetLab
    from sniffer.dns_probe import DnsProbe

    results: list[StepResult] = []
    n = os.getpid() % 250
    with NetLab(prefix=f"nmb{os.getpid() % 100000}", subnet4=f"10.253.{n}.0/24", subnet6=f"fd00:253:{n:x}::/64") as lab:
        server, client = lab.add_host("dns"), lab.add_host("cli")
        with DnsProbe() as probe:
            print(f"{'rate/s':>8} {'sent':>8} {'parsed':>8} {'lost':>6} {'rb_drop':>7} {'sock_rx':>8} "
                  f"{'achieved/s':>10} {'lag_s':>6} {'cpu_us/reply':>12}  sustained")
            for rate in rates:
                r = run_step(rate, seconds, (server, client), probe)
                results.append(r)
                print(f"{r.rate:>8} {r.sent:>8} {r.parsed:>8} {r.lost:>6} {r.ring_drops:>7} {r.received_by_socket:>8} "
                      f"{r.sent / r.send_seconds:>10.0f} {r.lag_s:>6.2f} {r.cpu_us_per_reply:>12.1f}  {r.sustained}",
                      flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    b = sub.add_parser("blast")
    b.add_argument("--src", required=True)
    b.add_argument("--dst", required=True)
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--rate", type=int, required=True)
    b.add_argument("--seconds", type=float, required=True)
    r = sub.add_parser("receive")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--idle", type=float, default=1.0)
    ap.add_argument("--rates", default="5000,10000,20000,25000,30000,40000,50000")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    if args.cmd == "blast":
        blast(args.src, args.dst, args.port, args.rate, args.seconds)
    elif args.cmd == "receive":
        receive(args.bind, args.port, args.idle)
    else:
        logging.basicConfig(level=logging.WARNING)
        results = bench([int(x) for x in args.rates.split(",")], args.seconds)
        ok = [r.sent / r.send_seconds for r in results if r.sustained]
        print(f"highest sustained zero-loss rate: {max(ok):.0f} replies/s" if ok else "no rate was sustained")


if __name__ == "__main__":
    main()
