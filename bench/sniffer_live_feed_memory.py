"""Benchmark: what the live Kubernetes feed adds to the sniffer's memory, next to bench/sniffer_memory.py.

bench/sniffer_memory.py feeds the sniffer a snapshot file; a deployed sniffer watches the API server
(`KubeFeed` on its own urllib3 transport, sniffer/kube_http.py: the kubernetes package is not loaded; with
--kubeconfig PyYAML is, to parse it, which in cluster is not). Both are run here idle, alternating, one
fresh `netmapper sniffer run` each, against a real (empty) etcd + kube-apiserver (tests/apiserver) and a
real `netmapper mapper serve`:

  snapshot   --snapshot with an empty List
  live       --kubeconfig of the API server

RSS and RssAnon are sampled every 0.5 s for --seconds after the sniffer is ready; medians of the second
half, then median and spread (min-max) over --rounds. The difference is what a deployed sniffer carries
on top of the snapshot figures.

Needs root, the kube-apiserver binary (make apiserver).
    .venv/bin/python bench/sniffer_live_feed_memory.py [--rounds 3] [--seconds 20]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sniffer_memory import start_mapper, status_mib  # noqa: E402
from tests.apiserver.cluster import ApiServerCluster, ClusterStartError  # noqa: E402


def idle(feed: list[str], mapper: str, work: Path, name: str, seconds: float) -> tuple[float, float]:
    """(RSS, RssAnon) medians in MiB of one idle sniffer fed by `feed`."""
    ready = work / f"ready-{name}"
    with (work / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "-v", "sniffer", "run", "--mapper", mapper,
                                 "--node", "bench", "--ready-file", str(ready), *feed],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(3000):
                if ready.exists():
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"sniffer exited with {proc.returncode}: see {log.name}")
                time.sleep(0.1)
            rss: list[float] = []
            anon: list[float] = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(0.5)
                st = status_mib(proc.pid)
                rss.append(st["VmRSS"])
                anon.append(st["RssAnon"])
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return statistics.median(rss[len(rss) // 2:]), statistics.median(anon[len(anon) // 2:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"snapshot": [], "live": []}
    with tempfile.TemporaryDirectory(prefix="nm-livemem-") as tmp:
        work = Path(tmp)
        empty = work / "empty.json"
        empty.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
        api = ApiServerCluster(workdir=work / "apiserver")
        try:
            api.start()
        except (ClusterStartError, OSError) as e:
            api.stop()
            print(f"sniffer_live_feed_memory: no API server ({e}); run `make apiserver`", file=sys.stderr)
            return 1
        mapper = None
        try:
            with (work / "mapper.log").open("ab") as mapper_log:
                mapper, addr = start_mapper(mapper_log)
                for rnd in range(1, args.rounds + 1):
                    for name, feed in (("snapshot", ["--snapshot", str(empty)]),
                                       ("live", ["--kubeconfig", str(api.kubeconfig_path)])):
                        rss, anon = idle(feed, addr, work, f"{name}-{rnd}", args.seconds)
                        results[name].append((rss, anon))
                        print(f"round {rnd} {name:8} RSS {rss:6.1f} MiB, anon {anon:6.1f} MiB", file=sys.stderr, flush=True)
        finally:
            if mapper is not None:
                mapper.kill()
                mapper.wait()
            api.stop()

    def fmt(values: list[float]) -> str:
        return f"{statistics.median(values):7.1f} ({min(values):.1f}-{max(values):.1f})"

    print(f"{'feed (idle)':12}{'RSS MiB (spread)':>22}{'anon MiB (spread)':>22}   median over {args.rounds} rounds")
    for name, got in results.items():
        print(f"{name:12}{fmt([r for r, _ in got]):>22}{fmt([a for _, a in got]):>22}")
    diff = [lv[0] - sn[0] for sn, lv in zip(results["snapshot"], results["live"], strict=True)]
    print(f"{'live - snap':12}{fmt(diff):>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
