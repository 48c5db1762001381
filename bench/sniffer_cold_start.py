"""Benchmark: the sniffer's start-up with a cold page cache, under the DaemonSet's memory limit.

A freshly scheduled sniffer pod reads the bcc compiler (libclang/LLVM) and the kernel headers for
the first time on its node. The kernel charges those page-cache pages to the pod's memory cgroup and
reclaims them when the cgroup reaches its limit; only anonymous memory (and kernel memory such as the
BPF maps) can get a process OOM-killed. This measures both, so the manifest's limit can be checked
against what matters:

  each round: sync + drop the page cache, start `netmapper sniffer run` (empty snapshot) in a fresh
  memory cgroup limited to the manifest's limit, sample memory.stat every 50 ms until ready and
  --settle seconds more; report anonymous (total_rss) and page-cache (total_cache) peaks, the
  cgroup's high-water mark, OOM kills and the seconds to ready.

Needs root and the v1 memory controller.
  .venv/bin/python bench/sniffer_cold_start.py [--rounds 3] [--limit 272Mi] [--warm]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from connect_throughput import terminate  # noqa: E402
from sniffer_memory import ROOT, MemCgroup  # noqa: E402

MIB = 1 << 20
UNITS = {"Ki": 1 << 10, "Mi": MIB, "Gi": 1 << 30}


@dataclass
class Round:
    seconds_to_ready: float
    anon_peak_mib: float
    cache_peak_mib: float
    cgroup_peak_mib: float
    oom_kills: int


def quantity(text: str) -> int:
    return int(text[:-2]) * UNITS[text[-2:]] if text[-2:] in UNITS else int(text)


def memory_stat(cg: MemCgroup) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in (cg.path / "memory.stat").read_text().splitlines())}


def one_round(limit: int, cold: bool, settle: float, work: Path, n: int) -> Round:
    snap, ready = work / "empty.json", work / f"ready-{n}"
    snap.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
    if cold:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    cg = MemCgroup(f"nmcold-{os.getpid()}-{n}")
    (cg.path / "memory.limit_in_bytes").write_text(str(limit))
    cmd = [sys.executable, "-m", "netmapper.cli.main", "sniffer", "run", "--mapper", "127.0.0.1:1",
           "--snapshot", str(snap), "--node", "bench", "--ready-file", str(ready), "--cluster-cidr", "10.0.0.0/8"]
    log = (work / f"sniffer-{n}.log").open("ab")
    start = time.monotonic()
    proc = subprocess.Popen(cg.wrap(cmd), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    anon = cache = 0
    ready_at = None
    try:
        while ready_at is None or time.monotonic() < ready_at + settle:
            if proc.poll() is not None:
                raise RuntimeError(f"sniffer exited with {proc.returncode}: see {log.name}")
            if time.monotonic() - start > 300:
                raise RuntimeError("sniffer not ready within 300 s")
            stat = memory_stat(cg)
            anon, cache = max(anon, stat["total_rss"]), max(cache, stat["total_cache"])
            if ready_at is None and ready.exists():
                ready_at = time.monotonic()
            time.sleep(0.05)
        oom = dict(line.split() for line in (cg.path / "memory.oom_control").read_text().splitlines())
        return Round(round(ready_at - start, 2), anon / MIB, cache / MIB, cg.mib(peak=True), int(oom["oom_kill"]))
    finally:
        terminate(proc)
        log.close()
        cg.remove()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--limit", default="272Mi", help="the cgroup's limit (the DaemonSet's limits.memory)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds sampled after ready")
    p.add_argument("--warm", action="store_true", help="keep the page cache (a restart on a node that ran it)")
    p.add_argument("--json", metavar="PATH", help="write the rounds as JSON")
    args = p.parse_args()
    if not (Path("/sys/fs/cgroup/memory") / "memory.usage_in_bytes").exists():
        p.error("needs the v1 memory controller at /sys/fs/cgroup/memory")
    limit = quantity(args.limit)
    with tempfile.TemporaryDirectory(prefix="nm-cold-") as tmp:
        rounds = [one_round(limit, not args.warm, args.settle, Path(tmp), n) for n in range(args.rounds)]
    print(f"{'cache' if args.warm else 'cold cache'}, limit {args.limit}, {args.rounds} rounds (MiB):")
    print(f"{'round':>6}{'ready s':>9}{'anon peak':>11}{'cache peak':>12}{'cgroup peak':>13}{'OOM kills':>11}")
    for i, r in enumerate(rounds):
        print(f"{i:6d}{r.seconds_to_ready:9.2f}{r.anon_peak_mib:11.1f}{r.cache_peak_mib:12.1f}"
              f"{r.cgroup_peak_mib:13.1f}{r.oom_kills:11d}")
    anon = [r.anon_peak_mib for r in rounds]
    print(f"anon peak median {statistics.median(anon):.1f} MiB (min {min(anon):.1f}, max {max(anon):.1f}); "
          f"OOM kills {sum(r.oom_kills for r in rounds)}")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rounds], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
