"""Benchmark: cost of the TCP connect probe on loopback connect throughput, and loss at full speed.

Runs in a private network namespace (so other work on the host neither disturbs the numbers nor shows
up in the edges). A connect loop written in C (Python is too slow to see a 5% effect) connects to a
C accept loop on the namespace's loopback, with SO_LINGER 0 so no TIME_WAIT piles up.

1. Throughput, A/B alternating in one run: ROUNDS x (no probe, probe attached and drained every
   --interval), the order flipped every round so drift hits both sides equally. Median of each side
   and the ratio.
2. Loss: probe attached, the loop cycles over 10k distinct destinations (127.1.x.y: loopback accepts
   all of 127/8, the listener is bound to 0.0.0.0) at full speed, drained every --interval. Every
   destination must appear, and the kernel counts must add up to the connect attempts the loop made.

Needs root (namespaces, eBPF) and gcc. Prints a table; --json PATH ("-" = stdout) writes the results.
Exit status 1 if an edge or a connect was lost (or, with --strict, if the overhead target is missed).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from sniffer.connect_probe import ConnectProbe, DrainStats  # noqa: E402
from sniffer.records import ConnectObservation, ProbeLoss  # noqa: E402

log = logging.getLogger("bench.connect_throughput")

PORT = 7000

C_SOURCE = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void linger0(int fd) {
    struct linger l = {1, 0};  /* close sends RST: no TIME_WAIT, ports never run out */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

/* serve PORT: accept and close forever */
static int serve(int port) {
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4096)) { perror("listen"); return 1; }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c >= 0) { linger0(c); close(c); }
    }
}

/* connect PORT SECONDS NADDRS: connect loop over NADDRS destinations (1 = 127.0.0.1, else 127.1.x.y) */
static int loop(int port, double seconds, int naddrs) {
    long attempts = 0, ok = 0, failed = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    double start = now(), end = start + seconds, t = start;
    int i = 0;
    while (t < end) {
        if (naddrs <= 1) a.sin_addr.s_addr = htonl(0x7f000001);
        else a.sin_addr.s_addr = htonl(0x7f010000 | (((i / 250) + 1) << 8) | ((i % 250) + 1));
        i = (i + 1) % (naddrs > 1 ? naddrs : 1);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { perror("socket"); return 1; }
        linger0(fd);
        attempts++;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) ok++; else failed++;
        close(fd);
        if ((attempts & 15) == 0) t = now();
    }
    t = now();
    struct rusage ru;  /* the probe runs inside connect(): its cost lands in this process's sys time */
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("{\"attempts\": %ld, \"ok\": %ld, \"failed\": %ld, \"seconds\": %.6f, \"cpu_seconds\": %.6f}\n",
           attempts, ok, failed, t - start, cpu);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "serve")) return serve(atoi(argv[2]));
    if (argc >= 5 && !strcmp(argv[1], "connect")) return loop(atoi(argv[2]), atof(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: %s serve PORT | connect PORT SECONDS NADDRS\n", argv[0]);
    return 2;
}
"""


@dataclass
class LoopResult:
    attempts: int
    ok: int
    failed: int
    seconds: float
    cpu_seconds: float  # user+sys of the connect loop

    @property
    def rate(self) -> float:
        return self.attempts / self.seconds

    @property
    def cpu_us_per_connect(self) -> float:
        return self.cpu_seconds / self.attempts * 1e6


@dataclass
class Results:
    rounds: int
    seconds_per_round: float
    interval: float
    without_probe: list[float] = field(default_factory=list)  # connects/s per round
    with_probe: list[float] = field(default_factory=list)
    median_without: float = 0.0
    median_with: float = 0.0
    ratio: float = 0.0  # median with / median without
    overhead: float = 0.0  # 1 - ratio
    # Same round's B/A: pairs share the machine's momentary load, so this is steadier on a busy host.
    paired_ratio_median: float = 0.0
    # CPU cost of one connect in the connecting process (where the probe runs); insensitive to
    # other load on the machine.
    cpu_us_without: list[float] = field(default_factory=list)
    cpu_us_with: list[float] = field(default_factory=list)
    cpu_us_median_without: float = 0.0
    cpu_us_median_with: float = 0.0
    loss_edges_expected: int = 0
    loss_edges_seen: int = 0
    loss_attempts: int = 0
    loss_counted: int = 0  # sum of kernel counts over all drains
    loss_reported: int = 0  # ProbeLoss counts
    loss_rate: float = 0.0
    loss_drains: int = 0
    loss_max_drain_keys: int = 0
    loss_max_drain_seconds: float = 0.0


class Bench:
    def __init__(self, workdir: Path, netns: str) -> None:
        self.workdir = workdir
        self.netns = netns
        self.binary = workdir / "connloop"

    def build(self) -> None:
        src = self.workdir / "connloop.c"
        src.write_text(C_SOURCE)
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(self.binary), str(src)], check=True)

    def ns(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *cmd]

    def netns_inode(self) -> int:
        return os.stat(f"/run/netns/{self.netns}").st_ino

    def serve(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.ns(str(self.binary), "serve", str(PORT)), stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("bench listener did not start")
        return proc

    def connect_loop(self, seconds: float, naddrs: int) -> LoopResult:
        out = subprocess.run(
            self.ns(str(self.binary), "connect", str(PORT), str(seconds), str(naddrs)),
            check=True, capture_output=True, text=True, timeout=seconds + 60,
        ).stdout
        return LoopResult(**json.loads(out))


@dataclass
class DrainedRun:
    loop: LoopResult
    observations: list[ConnectObservation]
    losses: list[ProbeLoss]
    drains: list[DrainStats]


def run_with_drains(probe: ConnectProbe, interval: float, work: Callable[[], LoopResult]) -> DrainedRun:
    """Run `work` in a thread while draining the probe every `interval` (as the sniffer would)."""
    result: list[LoopResult] = []
    worker = threading.Thread(target=lambda: result.append(work()))
    run = DrainedRun(loop=LoopResult(0, 0, 0, 1.0, 0.0), observations=[], losses=[], drains=[])

    def drain() -> None:
        obs, loss = probe.drain()
        run.observations += obs
        run.losses += loss
        assert probe.last_drain is not None
        run.drains.append(probe.last_drain)

    worker.start()
    next_drain = time.monotonic() + interval
    while worker.is_alive():
        worker.join(max(0.0, next_drain - time.monotonic()))
        if time.monotonic() >= next_drain:
            drain()
            next_drain += interval
    drain()  # whatever the last interval aggregated
    if not result:
        raise RuntimeError("connect loop failed")
    run.loop = result[0]
    return run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=2.0, help="duration of each A or B run")
    p.add_argument("--interval", type=float, default=1.0, help="drain interval")
    p.add_argument("--edges", type=int, default=10_000)
    p.add_argument("--loss-seconds", type=float, default=5.0)
    p.add_argument("--max-overhead", type=float, default=0.05)
    p.add_argument("--strict", action="store_true", help="exit 1 if the overhead exceeds --max-overhead")
    p.add_argument("--json", metavar="PATH", help='write results as JSON ("-" for stdout)')
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.edges > 250 * 250:
        p.error("--edges at most 62500 (127.1.1.1 .. 127.1.250.250)")

    res = Results(rounds=args.rounds, seconds_per_round=args.seconds, interval=args.interval)
    netns = f"nmbench{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="nm-bench-") as tmp:
        bench = Bench(Path(tmp), netns)
        bench.build()
        subprocess.run(["ip", "netns", "add", netns], check=True)
        server = None
        try:
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
            server = bench.serve()
            bench.connect_loop(0.5, 1)  # warm up caches and the listener
            # Loaded once; the A/B switch is attach/detach of the tracepoint, so no compile or map
            # setup lands next to a measurement.
            with ConnectProbe() as probe:
                probe.detach()
                for rnd in range(args.rounds):
                    for with_probe in ((False, True) if rnd % 2 == 0 else (True, False)):
                        if with_probe:
                            probe.attach()
                            loop = run_with_drains(probe, args.interval, lambda: bench.connect_loop(args.seconds, 1)).loop
                            probe.detach()
                            res.with_probe.append(loop.rate)
                            res.cpu_us_with.append(loop.cpu_us_per_connect)
                        else:
                            loop = bench.connect_loop(args.seconds, 1)
                            res.without_probe.append(loop.rate)
                            res.cpu_us_without.append(loop.cpu_us_per_connect)
                        print(
                            f"round {rnd + 1}: {'probe   ' if with_probe else 'no probe'} {loop.rate:10.0f} connects/s "
                            f"{loop.cpu_us_per_connect:6.2f} CPU us/connect",
                            file=sys.stderr,
                        )
            res.median_without = statistics.median(res.without_probe)
            res.median_with = statistics.median(res.with_probe)
            res.ratio = res.median_with / res.median_without
            res.overhead = 1 - res.ratio
            res.paired_ratio_median = statistics.median(w / wo for w, wo in zip(res.with_probe, res.without_probe))
            res.cpu_us_median_without = statistics.median(res.cpu_us_without)
            res.cpu_us_median_with = statistics.median(res.cpu_us_with)

            with ConnectProbe() as probe:
                run = run_with_drains(probe, args.interval, lambda: bench.connect_loop(args.loss_seconds, args.edges))
            loop, losses, drains = run.loop, run.losses, run.drains
            mine = [o for o in run.observations if o.netns == bench.netns_inode()]
            res.loss_edges_expected = args.edges
            res.loss_edges_seen = len({(o.daddr, o.dport) for o in mine})
            res.loss_attempts = loop.attempts
            res.loss_counted = sum(o.count for o in mine)
            res.loss_reported = sum(loss.count for loss in losses)
            res.loss_rate = loop.rate
            res.loss_drains = len(drains)
            res.loss_max_drain_keys = max(d.keys for d in drains)
            res.loss_max_drain_seconds = max(d.quiesce_seconds + d.read_seconds for d in drains)
        finally:
            if server is not None:
                server.kill()
                server.wait()
            subprocess.run(["ip", "netns", "del", netns], check=False)

    lost_edges = res.loss_edges_expected - res.loss_edges_seen
    lost_connects = res.loss_attempts - res.loss_counted
    print(f"{'':28}{'connects/s':>14}")
    print(f"{'no probe (median)':28}{res.median_without:14.0f}")
    print(f"{'probe attached (median)':28}{res.median_with:14.0f}")
    print(f"{'ratio with/without':28}{res.ratio:14.3f}   overhead {res.overhead:+.1%} (target <= {args.max_overhead:.0%})")
    print(f"{'paired ratio (median)':28}{res.paired_ratio_median:14.3f}")
    print(f"{'CPU us/connect no probe':28}{res.cpu_us_median_without:14.2f}")
    print(f"{'CPU us/connect probe':28}{res.cpu_us_median_with:14.2f}   "
          f"+{res.cpu_us_median_with - res.cpu_us_median_without:.2f} us ({res.cpu_us_median_with / res.cpu_us_median_without - 1:+.1%})")
    print(f"{'rounds':28}{res.rounds:14d}   x {res.seconds_per_round:g}s each side, drain every {res.interval:g}s")
    print()
    print(f"{'loss check':28}{'value':>14}")
    print(f"{'distinct edges expected':28}{res.loss_edges_expected:14d}")
    print(f"{'distinct edges seen':28}{res.loss_edges_seen:14d}   lost {lost_edges}")
    print(f"{'connect attempts':28}{res.loss_attempts:14d}   at {res.loss_rate:.0f}/s")
    print(f"{'counted by the kernel':28}{res.loss_counted:14d}   lost {lost_connects}")
    print(f"{'reported loss (ProbeLoss)':28}{res.loss_reported:14d}")
    print(f"{'drains / max keys / max s':28}{res.loss_drains:14d}   {res.loss_max_drain_keys} keys, {res.loss_max_drain_seconds * 1000:.1f} ms")

    if args.json:
        payload = json.dumps(asdict(res), indent=2)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload + "\n")
    failed = lost_edges != 0 or lost_connects != 0 or res.loss_reported != 0
    if args.strict and res.overhead > args.max_overhead:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
