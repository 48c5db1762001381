"""Benchmark: what the sniffer costs a connect-heavy workload, and whether it loses anything at full speed.

What users run is the whole `netmapper sniffer run` process, so that is what is measured, next to each
of its kernel hooks alone so the cost of each is known:

  none       no probe at all
  sniffer    `netmapper sniffer run --snapshot EMPTY` (both hooks, drain loop, DNS thread, reporter
             talking to a real `netmapper mapper serve` on 127.0.0.1)
  no-dns     the same process with --no-dns (connect hook only, whole process)
  connect    a minimal process: the connect hook (sniffer/connect_probe.py) drained every --interval
  dns        a minimal process: the DNS hook (sniffer/dns_probe.py) polled continuously

A connect loop written in C (Python is too slow to see a 5% effect) connects to a C accept loop on the
loopback of a private network namespace (SO_LINGER 0: no TIME_WAIT). The hooks see every namespace, so
the loop's connects (and its packets, for the DNS hook) go through them exactly as a pod's would.
By default the loop, its server and the probe process share one CPU (--cpu) under SCHED_RR (server
above probe process above loop): throughput is then bound by the CPU time of a connect, the hooks and
the sniffer's own user-space work included, and other work on a shared machine can take at most the
5% that RT throttling leaves it. Unpinned at normal priority the same loop varied 14k-31k connects/s
between runs here (6 other jobs on 2 CPUs), pinned under SCHED_RR 58k-61k.

1. Throughput, A/B in one run: ROUNDS x every mode, a fresh sniffer process per run (started, ready file
   awaited, measured, stopped), the order of the modes rotated every round so drift hits all alike.
   Per mode: median connects/s, min-max spread, ratio of medians to `none`, and the median (min-max) of
   the per-round ratios to the same round's `none` run. The loop's CPU time per connect (the hooks run
   inside its syscalls and softirqs) and the sniffer process's own CPU and RSS are reported too.
2. Loss: the connect probe drained every --interval while the loop cycles over --edges distinct
   destinations (127.1.x.y) at full speed. Every destination must appear and the kernel counts must add
   up to the connect attempts the loop made.

Needs root (namespaces, eBPF) and gcc. Prints a table; --json PATH ("-" = stdout) writes the results.
Exit status 1 if an edge or a connect was lost (or, with --strict, if the sniffer keeps less than
--min-ratio of the no-probe throughput).

  .venv/bin/python bench/connect_throughput.py --rounds 10 --seconds 2
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from sniffer.connect_probe import ConnectProbe, DrainStats  # noqa: E402
from sniffer.records import ConnectObservation, ProbeLoss  # noqa: E402

log = logging.getLogger("bench.connect_throughput")

PORT = 7000
MODES = ("none", "sniffer", "no-dns", "connect", "dns")
EMPTY_SNAPSHOT = "apiVersion: v1\nkind: List\nitems: []\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")

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

/* connect PORT SECONDS NADDRS [BASE]: connect loop over NADDRS destinations (1 = 127.0.0.1, else
   BASE | x.y with x = 1 + i / 250, y = 1 + i % 250; BASE defaults to 127.1.0.0) */
static unsigned base = 0x7f010000;
static int loop(int port, double seconds, int naddrs) {
    long attempts = 0, ok = 0, failed = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    double start = now(), end = start + seconds, t = start;
    int i = 0;
    while (t < end) {
        if (naddrs <= 1) a.sin_addr.s_addr = htonl(0x7f000001);
        else a.sin_addr.s_addr = htonl(base | (((i / 250) + 1) << 8) | ((i % 250) + 1));
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
    if (argc >= 6) base = strtoul(argv[5], NULL, 0);
    if (argc >= 5 && !strcmp(argv[1], "connect")) return loop(atoi(argv[2]), atof(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: %s serve PORT | connect PORT SECONDS NADDRS [BASE]\n", argv[0]);
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
class Run:
    round: int
    mode: str
    rate: float
    cpu_us_per_connect: float
    sniffer_cpu_percent: float = 0.0  # CPU of the probe process during the loop (all threads)
    sniffer_rss_mib: float = 0.0  # its RSS at the end of the loop


@dataclass
class ModeSummary:
    mode: str
    median_rate: float
    min_rate: float
    max_rate: float
    ratio: float  # median rate / median rate of `none`
    paired_ratio_median: float  # median over rounds of rate / same round's `none` rate
    paired_ratio_min: float
    paired_ratio_max: float
    cpu_us_per_connect_median: float
    sniffer_cpu_percent_median: float
    sniffer_rss_mib_median: float


@dataclass
class Results:
    rounds: int
    seconds_per_run: float
    interval: float
    runs: list[Run] = field(default_factory=list)
    summary: list[ModeSummary] = field(default_factory=list)
    loss_edges_expected: int = 0
    loss_edges_seen: int = 0
    loss_attempts: int = 0
    loss_counted: int = 0  # sum of kernel counts over all drains
    loss_reported: int = 0  # ProbeLoss counts
    loss_rate: float = 0.0
    loss_drains: int = 0
    loss_max_drain_keys: int = 0
    loss_max_drain_seconds: float = 0.0


# SCHED_RR priorities on the pinned CPU: the server preempts the loop as soon as a connection waits
# (as it would from another CPU), the probe process preempts the loop whenever it has work.
PRIO_LOOP, PRIO_PROBE, PRIO_SERVER = 10, 15, 20


def terminate(proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGTERM (the sniffer flushes and detaches its probes), SIGKILL if it has not exited in `timeout` s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pinned(cpu: int | None, cmd: list[str], prio: int = PRIO_LOOP) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), "chrt", "-r", str(prio), *cmd]


class Bench:
    def __init__(self, workdir: Path, netns: str, cpu: int | None) -> None:
        self.workdir = workdir
        self.netns = netns
        self.cpu = cpu
        self.binary = workdir / "connloop"

    def build(self) -> None:
        src = self.workdir / "connloop.c"
        src.write_text(C_SOURCE)
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(self.binary), str(src)], check=True)

    def ns(self, *cmd: str, prio: int = PRIO_LOOP) -> list[str]:
        return pinned(self.cpu, ["ip", "netns", "exec", self.netns, *cmd], prio)

    def netns_inode(self) -> int:
        return os.stat(f"/run/netns/{self.netns}").st_ino

    def serve(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.ns(str(self.binary), "serve", str(PORT), prio=PRIO_SERVER), stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("bench listener did not start")
        return proc

    def connect_loop(self, seconds: float, naddrs: int, base: int = 0x7F010000) -> LoopResult:
        out = subprocess.run(
            self.ns(str(self.binary), "connect", str(PORT), str(seconds), str(naddrs), hex(base)),
            check=True, capture_output=True, text=True, timeout=seconds + 60,
        ).stdout
        return LoopResult(**json.loads(out))


class ProbeProcess:
    """One probe process for one measured run: started, awaited until its probes are attached, stopped."""

    def __init__(self, mode: str, workdir: Path, mapper: str, interval: float, cpu: int | None) -> None:
        self.ready = workdir / f"ready-{mode}"
        self.ready.unlink(missing_ok=True)
        snapshot = workdir / "empty.yaml"
        snapshot.write_text(EMPTY_SNAPSHOT)
        py = sys.executable
        if mode in ("sniffer", "no-dns"):
            cmd = [py, "-m", "netmapper.cli.main", "sniffer", "run", "--mapper", mapper, "--snapshot", str(snapshot),
                   "--node", "bench", "--interval", str(interval), "--ready-file", str(self.ready)]
            if mode == "no-dns":
                cmd.append("--no-dns")
        else:
            cmd = [py, str(Path(__file__).resolve()), "--hook-alone", mode, "--interval", str(interval),
                   "--ready-file", str(self.ready)]
        self.log = (workdir / f"{mode}.log").open("ab")
        self.proc = subprocess.Popen(pinned(cpu, cmd, PRIO_PROBE), cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(1200):  # up to 60 s: compile + load
            if self.ready.exists():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{mode} process exited with {self.proc.returncode}: see {self.log.name}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{mode} process not ready after 60 s")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime of all threads

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        terminate(self.proc, timeout=20)
        self.log.close()


def hook_alone(mode: str, interval: float, ready: Path) -> int:
    """The minimal process of the `connect` and `dns` modes: one hook, drained as the sniffer drains it."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if mode == "connect":
        with ConnectProbe() as probe:
            ready.touch()
            while not stop.wait(interval):
                probe.drain()
    else:
        from sniffer.dns_probe import DnsProbe

        with DnsProbe() as dns:
            ready.touch()
            while not stop.is_set():
                dns.poll(100)
    return 0


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


def start_mapper(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"127.0.0.1:{port}"
    log_file = (workdir / "mapper.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen", addr],
                            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    for _ in range(400):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, addr
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mapper did not start")


def summarise(res: Results, modes: list[str]) -> None:
    none = {r.round: r.rate for r in res.runs if r.mode == "none"}
    base = statistics.median(none.values())
    for mode in modes:
        runs = [r for r in res.runs if r.mode == mode]
        rates = [r.rate for r in runs]
        paired = [r.rate / none[r.round] for r in runs]
        res.summary.append(ModeSummary(
            mode=mode,
            median_rate=statistics.median(rates), min_rate=min(rates), max_rate=max(rates),
            ratio=statistics.median(rates) / base,
            paired_ratio_median=statistics.median(paired), paired_ratio_min=min(paired), paired_ratio_max=max(paired),
            cpu_us_per_connect_median=statistics.median(r.cpu_us_per_connect for r in runs),
            sniffer_cpu_percent_median=statistics.median(r.sniffer_cpu_percent for r in runs),
            sniffer_rss_mib_median=statistics.median(r.sniffer_rss_mib for r in runs),
        ))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0, help="duration of each measured run")
    p.add_argument("--interval", type=float, default=1.0, help="drain interval")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--cpu", type=int, default=0,
                   help="run the loop, its server and the probe process on this CPU only, SCHED_RR (-1: anywhere, normal priority)")
    p.add_argument("--settle", type=float, default=1.0, help="pause before each measured run")
    p.add_argument("--edges", type=int, default=10_000)
    p.add_argument("--loss-seconds", type=float, default=5.0, help="0 skips the loss check")
    p.add_argument("--min-ratio", type=float, default=0.95)
    p.add_argument("--strict", action="store_true", help="exit 1 if the sniffer keeps less than --min-ratio")
    p.add_argument("--json", metavar="PATH", help='write results as JSON ("-" for stdout)')
    p.add_argument("--hook-alone", choices=("connect", "dns"), help=argparse.SUPPRESS)
    p.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.hook_alone:
        return hook_alone(args.hook_alone, args.interval, args.ready_file)
    if args.edges > 250 * 250:
        p.error("--edges at most 62500 (127.1.1.1 .. 127.1.250.250)")
    modes = [m for m in args.modes.split(",") if m]
    if "none" not in modes or any(m not in MODES for m in modes):
        p.error(f"--modes must include none and only name {','.join(MODES)}")

    res = Results(rounds=args.rounds, seconds_per_run=args.seconds, interval=args.interval)
    netns = f"nmbench{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="nm-bench-") as tmp:
        work = Path(tmp)
        cpu = None if args.cpu < 0 else args.cpu
        bench = Bench(work, netns, cpu)
        bench.build()
        subprocess.run(["ip", "netns", "add", netns], check=True)
        server = mapper = None
        try:
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
            server = bench.serve()
            mapper, mapper_addr = start_mapper(work)
            bench.connect_loop(0.5, 1)  # warm up caches and the listener
            for rnd in range(args.rounds):
                order = modes[rnd % len(modes):] + modes[:rnd % len(modes)]
                if rnd % 2:
                    order.reverse()
                for mode in order:
                    proc = None if mode == "none" else ProbeProcess(mode, work, mapper_addr, args.interval, cpu)
                    try:
                        # Same pause before every run: start-up work (first drain, DNS thread) and the
                        # previous run's teardown (program and map release in the kernel) settle.
                        time.sleep(args.settle)
                        cpu0 = proc.cpu_seconds() if proc else 0.0
                        loop = bench.connect_loop(args.seconds, 1)
                        run = Run(rnd + 1, mode, loop.rate, loop.cpu_us_per_connect)
                        if proc:
                            run.sniffer_cpu_percent = (proc.cpu_seconds() - cpu0) / loop.seconds * 100
                            run.sniffer_rss_mib = proc.rss_mib()
                    finally:
                        if proc:
                            proc.stop()
                    res.runs.append(run)
                    print(f"round {rnd + 1:2d} {mode:8} {run.rate:9.0f} connects/s {run.cpu_us_per_connect:6.2f} "
                          f"CPU us/connect  probe process {run.sniffer_cpu_percent:5.1f}% CPU {run.sniffer_rss_mib:6.1f} MiB",
                          file=sys.stderr, flush=True)
            summarise(res, modes)

            if args.loss_seconds > 0:
                with ConnectProbe() as probe:
                    drained = run_with_drains(probe, args.interval, lambda: bench.connect_loop(args.loss_seconds, args.edges))
                mine = [o for o in drained.observations if o.netns == bench.netns_inode()]
                res.loss_edges_expected = args.edges
                res.loss_edges_seen = len({(o.daddr, o.dport) for o in mine})
                res.loss_attempts = drained.loop.attempts
                res.loss_counted = sum(o.count for o in mine)
                res.loss_reported = sum(loss.count for loss in drained.losses)
                res.loss_rate = drained.loop.rate
                res.loss_drains = len(drained.drains)
                res.loss_max_drain_keys = max(d.keys for d in drained.drains)
                res.loss_max_drain_seconds = max(d.quiesce_seconds + d.read_seconds for d in drained.drains)
        finally:
            for proc in (server, mapper):
                if proc is not None:
                    proc.kill()
                    proc.wait()
            subprocess.run(["ip", "netns", "del", netns], check=False)

    print(f"{'mode':9}{'median/s':>10}{'min/s':>9}{'max/s':>9}{'ratio':>7}  {'paired (min-max)':<20}"
          f"{'us/conn':>8}{'probe CPU':>10}{'RSS MiB':>9}")
    for s in res.summary:
        print(f"{s.mode:9}{s.median_rate:10.0f}{s.min_rate:9.0f}{s.max_rate:9.0f}{s.ratio:7.3f}  "
              f"{s.paired_ratio_median:.3f} ({s.paired_ratio_min:.3f}-{s.paired_ratio_max:.3f})  "
              f"{s.cpu_us_per_connect_median:8.2f}{s.sniffer_cpu_percent_median:9.1f}%{s.sniffer_rss_mib_median:9.1f}")
    print(f"{res.rounds} rounds x {len(modes)} modes, {res.seconds_per_run:g} s each, drain every {res.interval:g} s; "
          f"ratio = median / median of none; paired = per-round ratio to that round's none run")
    if args.loss_seconds > 0:
        lost_edges = res.loss_edges_expected - res.loss_edges_seen
        lost_connects = res.loss_attempts - res.loss_counted
        print()
        print(f"{'loss check':28}{'value':>14}")
        print(f"{'distinct edges expected':28}{res.loss_edges_expected:14d}")
        print(f"{'distinct edges seen':28}{res.loss_edges_seen:14d}   lost {lost_edges}")
        print(f"{'connect attempts':28}{res.loss_attempts:14d}   at {res.loss_rate:.0f}/s")
        print(f"{'counted by the kernel':28}{res.loss_counted:14d}   lost {lost_connects}")
        print(f"{'reported loss (ProbeLoss)':28}{res.loss_reported:14d}")
        print(f"{'drains / max keys / max s':28}{res.loss_drains:14d}   {res.loss_max_drain_keys} keys, "
              f"{res.loss_max_drain_seconds * 1000:.1f} ms")
    else:
        lost_edges = lost_connects = 0

    if args.json:
        payload = json.dumps(asdict(res), indent=2)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload + "\n")
    failed = lost_edges != 0 or lost_connects != 0 or res.loss_reported != 0
    whole = next((s for s in res.summary if s.mode == "sniffer"), None)
    if args.strict and whole is not None and whole.paired_ratio_median < args.min_ratio:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
