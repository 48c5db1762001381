"""Benchmark: memory of the whole `netmapper sniffer run` process, idle and at 10k pods x 10k edges.

What the DaemonSet's memory request and limit must cover, measured on the real process:

  idle      empty snapshot, no traffic
  loaded    a snapshot of --pods pods (each its own Deployment -> ReplicaSet -> pod, with a Service),
            no traffic
  traffic   the same, while a C connect loop cycles over --pods distinct pod IPs for --seconds
            (one edge per pod: --pods distinct edges drained, resolved, accumulated and reported to
            a real `netmapper mapper serve`)

Each phase is a fresh sniffer process in its own memory cgroup (v1 memory controller or a v2 folder),
so next to RSS (sampled every 0.5 s; median and max of the second half of the phase) the cgroup's
charge is reported: that is what a pod's memory limit is enforced on, and it includes kernel memory
charged to the pod (the BPF maps: two 64k-entry connect buffers and the DNS ring buffer).

Remedies (--remedies): RSS of a process that imported the sniffer and loaded both probes
  bcc in process       bcc compiles and loads in the sniffer itself (how it was before)
  + malloc_trim(0)     the same, then glibc's free memory returned to the kernel
  loader child         bcc in a short-lived child, fds passed back (what the sniffer does now)

Rounds (--rounds N): the phases run N times, each a fresh sniffer; the table shows per phase the median
over rounds of each figure and the spread (min-max) of the RSS and anonymous medians. RSS splits into
anonymous memory (the process's own: stable from run to run) and file-backed + shared pages (libraries,
whose resident part varies by several MiB with what the page cache holds, and the DNS ring buffer, whose
4 MiB data area is mapped twice and so counted twice in RSS, once in the cgroup). --smaps DIR keeps, per phase and
round, /proc/PID/smaps of the sniffer taken at the end of the phase (where the RSS is, mapping by mapping).

Live feed (--feed live): the loaded and traffic phases watch a real etcd + kube-apiserver (tests/apiserver)
holding the same objects (created through the API, pods' IPs set through their status, owners by the uids
the server gave), as a deployed sniffer does; the idle phase stays an empty snapshot.

Needs root and gcc.   .venv/bin/python bench/sniffer_memory.py [--pods 10000] [--seconds 20] [--pods-per-workload 1]
                      [--rounds 3] [--phases idle,loaded,traffic] [--smaps DIR] [--feed snapshot|live]
"""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.apiserver for --feed live
sys.path.insert(0, str(Path(__file__).resolve().parent))

from connect_throughput import C_SOURCE, PORT, terminate  # noqa: E402
from tests.apiserver.cluster import ApiServerCluster  # noqa: E402

POD_BASE = 0x0A000000  # pods get 10.0.x.y, x = 1 + i / 250, y = 1 + i % 250 (the loop's address walk)
MEMCG_V1 = Path("/sys/fs/cgroup/memory")


def pod_ip(i: int) -> str:
    return str(ipaddress.IPv4Address(POD_BASE | ((i // 250 + 1) << 8) | (i % 250 + 1)))


def snapshot(pods: int, per_deploy: int = 1) -> dict[str, Any]:
    """A cluster as `kubectl get deploy,rs,pods,svc -A -o json` prints it (JSON is YAML).

    per_deploy 1: one workload per pod, so --pods destinations are --pods distinct edges (the mapper
    keys edges by workload); the most objects per pod (Deployment, ReplicaSet, Service each)."""
    items: list[dict[str, Any]] = []
    for d in range(max(1, pods // per_deploy)):
        ns, app = f"team-{d % 50}", f"svc-{d}"
        labels = {"app": app, "pod-template-hash": "5d8f7c9b6d"}
        items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": app, "namespace": ns, "uid": f"dep-{d}", "labels": {"app": app}},
                      "spec": {"replicas": per_deploy, "selector": {"matchLabels": {"app": app}}}})
        rs = f"{app}-5d8f7c9b6d"
        items.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                      "metadata": {"name": rs, "namespace": ns, "uid": f"rs-{d}", "labels": labels,
                                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                                                        "uid": f"dep-{d}", "controller": True}]}})
        items.append({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": app, "namespace": ns, "uid": f"svc-{d}"},
                      "spec": {"selector": {"app": app}, "clusterIP": f"10.96.{d // 250}.{d % 250 + 1}",
                               "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
        for r in range(per_deploy):
            i = d * per_deploy + r
            if i >= pods:
                break
            items.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{rs}-{i:05x}", "namespace": ns, "uid": f"pod-{i}", "labels": labels,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                                  "uid": f"rs-{d}", "controller": True}]},
                "spec": {"nodeName": f"node-{i % 100}", "serviceAccountName": "default", "containers": [{
                    "name": "app", "image": f"registry.example.com/{app}:1.2.3",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "PORT", "value": "8080"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                }]},
                "status": {"phase": "Running", "podIP": pod_ip(i), "podIPs": [{"ip": pod_ip(i)}],
                           "hostIP": f"192.168.0.{i % 100 + 1}", "startTime": "2026-01-01T00:00:00Z",
                           "conditions": [{"type": "Ready", "status": "True"}]},
            })
    return {"apiVersion": "v1", "kind": "List", "items": items}



def load_into_apiserver(apiserver: Any, items: list[dict[str, Any]], workers: int = 8) -> None:
    """The snapshot's objects created in a real API server (no controllers run there): each workload's
    Deployment, then its ReplicaSet and pods owned by the uids the server gave, pods' IPs set through the
    status subresource, as a kubelet would. Parallel over workloads; a few minutes for 10k pods here."""
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client  # the bench's tool, never the sniffer's

    api = apiserver.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for ns in sorted({o["metadata"]["namespace"] for o in items}):
        core.create_namespace({"metadata": {"name": ns}})
    by_app: dict[str, list[dict[str, Any]]] = {}
    for o in items:
        app = o["metadata"].get("labels", {}).get("app") or o["metadata"]["name"]
        by_app.setdefault(app, []).append(o)

    def template(labels: dict[str, str], app: str) -> dict[str, Any]:
        return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": f"x/{app}:1"}]}}

    def one(objs: list[dict[str, Any]]) -> None:
        kinds = {o["kind"]: o for o in objs}
        dep, rs = kinds["Deployment"], kinds["ReplicaSet"]
        ns, app = dep["metadata"]["namespace"], dep["metadata"]["name"]
        labels = rs["metadata"]["labels"]
        d = apps.create_namespaced_deployment(ns, {"metadata": {"name": app, "labels": {"app": app}}, "spec": {
            "replicas": dep["spec"]["replicas"], "selector": {"matchLabels": {"app": app}},
            "template": template({"app": app}, app)}})
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "uid": d.metadata.uid, "controller": True}
        r = apps.create_namespaced_replica_set(ns, {"metadata": {"name": rs["metadata"]["name"], "labels": labels,
                                                                  "ownerReferences": [owner]}, "spec": {
            "replicas": dep["spec"]["replicas"], "selector": {"matchLabels": labels}, "template": template(labels, app)}})
        core.create_namespaced_service(ns, {"metadata": {"name": app}, "spec": {
            "selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
        rs_owner = {**owner, "kind": "ReplicaSet", "name": r.metadata.name, "uid": r.metadata.uid}
        for pod in (o for o in objs if o["kind"] == "Pod"):
            name = pod["metadata"]["name"]
            core.create_namespaced_pod(ns, {"metadata": {"name": name, "labels": labels, "ownerReferences": [rs_owner]},
                                            "spec": pod["spec"]})
            core.patch_namespaced_pod_status(name, ns, {"status": pod["status"]})

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, by_app.values()))

@dataclass
class Phase:
    name: str
    pods: int
    round: int = 1
    edges_at_mapper: int = 0  # edges the mapper holds after the phase (all phases share one mapper)
    rss_mib_median: float = 0.0
    rss_mib_max: float = 0.0
    anon_mib_median: float = 0.0  # RssAnon: the process's own memory
    file_mib_median: float = 0.0  # RssFile + RssShmem: mapped libraries (varies with the page cache) and the ring buffer
    memcg_mib_max: float = 0.0  # the cgroup's charge (user + kernel memory), max over the phase
    memcg_peak_mib: float = 0.0  # the cgroup's high-water mark since start (start-up: bcc child, snapshot child)
    samples: list[float] = field(default_factory=list)
    anon_samples: list[float] = field(default_factory=list)
    file_samples: list[float] = field(default_factory=list)


@dataclass
class Results:
    pods: int
    seconds: float
    pods_per_workload: int
    phases: list[Phase] = field(default_factory=list)
    remedies: dict[str, float] = field(default_factory=dict)  # RSS MiB


class MemCgroup:
    """A fresh memory cgroup for one process (v1 memory controller if mounted, else a v2 folder)."""

    def __init__(self, name: str) -> None:
        if (MEMCG_V1 / "memory.usage_in_bytes").exists():
            self.path, self.usage, self.peak = MEMCG_V1 / name, "memory.usage_in_bytes", "memory.max_usage_in_bytes"
        else:
            self.path, self.usage, self.peak = Path("/sys/fs/cgroup") / name, "memory.current", "memory.peak"
        self.path.mkdir()

    def wrap(self, cmd: list[str]) -> list[str]:
        # Joined before exec, so the loader child and every thread are charged here too.
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *cmd]

    def mib(self, peak: bool = False) -> float:
        f = self.path / (self.peak if peak else self.usage)
        return int(f.read_text()) / 2**20 if f.exists() else 0.0

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def rss_mib(pid: int) -> float:
    return status_mib(pid)["VmRSS"]


def status_mib(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile, RssShmem of a process, MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) / 1024
    return out


def start_mapper(log_file: Any) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen",
                             f"127.0.0.1:{port}"], cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    for _ in range(400):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mapper did not start")


def run_phase(name: str, pods: int, feed: list[str], mapper: str, work: Path, seconds: float,
              traffic: list[str] | None, smaps: Path | None = None) -> Phase:
    phase = Phase(name, pods)
    cg = MemCgroup(f"nmbench-{os.getpid()}-{name}")
    ready = work / f"ready-{name}"
    log_file = (work / f"sniffer-{name}.log").open("ab")
    cmd = [sys.executable, "-m", "netmapper.cli.main", "-v", "sniffer", "run", "--mapper", mapper, *feed,
           "--node", "bench", "--ready-file", str(ready), "--cluster-cidr", "10.0.0.0/8"]
    proc = subprocess.Popen(cg.wrap(cmd), cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    loop = None
    try:
        for _ in range(3000):  # up to 5 min: a 10k-pod snapshot parse + compile
            if ready.exists():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"sniffer exited with {proc.returncode}: see {log_file.name}")
            time.sleep(0.1)
        if traffic is not None:
            loop = subprocess.Popen(traffic, stdout=subprocess.DEVNULL)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.5)
            st = status_mib(proc.pid)
            phase.samples.append(st["VmRSS"])
            phase.anon_samples.append(st["RssAnon"])
            phase.file_samples.append(st["RssFile"] + st["RssShmem"])
            phase.memcg_mib_max = max(phase.memcg_mib_max, cg.mib())
        phase.memcg_peak_mib = cg.mib(peak=True)
        if smaps is not None:
            smaps.write_text(Path(f"/proc/{proc.pid}/smaps").read_text())
    finally:
        if loop is not None:
            loop.wait()
        terminate(proc)
        log_file.close()
        cg.remove()
    tail = phase.samples[len(phase.samples) // 2:]
    phase.rss_mib_median, phase.rss_mib_max = statistics.median(tail), max(tail)
    phase.anon_mib_median = statistics.median(phase.anon_samples[len(phase.anon_samples) // 2:])
    phase.file_mib_median = statistics.median(phase.file_samples[len(phase.file_samples) // 2:])
    return phase


def mapper_edges(addr: str) -> int:
    out = subprocess.run([sys.executable, "-m", "netmapper.cli.main", "edges", "--mapper", addr, "--format", "json"],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout
    data = json.loads(out)
    return len(data if isinstance(data, list) else data.get("edges", []))


REMEDY_SNIPPET = textwrap.dedent("""
    import ctypes, json, os, sys
    sys.path.insert(0, os.getcwd())
    import netmapper.cli.main, sniffer.agent, sniffer.kube_feed  # what the sniffer imports anyway
    mode = sys.argv[1]
    if mode == "child":
        from sniffer.connect_probe import ConnectProbe
        from sniffer.dns_probe import DnsProbe
        c, d = ConnectProbe(), DnsProbe()
        c.open(); d.start()
    else:
        from bcc import BPF
        from sniffer import btf
        from sniffer.connect_probe import BPF_SOURCE
        from sniffer.dns_probe import BPF_SOURCE as DNS_SOURCE
        flags = btf.connect_offsets(btf.load()).cflags() + ["-DNM_MAP_SIZE=65536", "-DNM_FILTER_NETNS=0"]
        c = BPF(src_file=str(BPF_SOURCE).encode(), cflags=flags)
        c.load_func(b"nm_inet_sock_set_state", BPF.RAW_TRACEPOINT)
        d = BPF(src_file=str(DNS_SOURCE).encode(), cflags=["-DDNS_RINGBUF_PAGES=1024"])
        d.load_func(b"dns_reply_ingress", BPF.CGROUP_SKB)
        if mode == "trim":
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            print(int(line.split()[1]) / 1024)
""")


def remedies() -> dict[str, float]:
    out = {}
    for label, mode in (("bcc in process", "bcc"), ("+ malloc_trim(0)", "trim"), ("loader child", "child")):
        res = subprocess.run([sys.executable, "-c", REMEDY_SNIPPET, mode], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, env={**os.environ, "BCC_KERNEL_SOURCE": "/usr/src/netmapper-kernel-src"})
        if res.returncode != 0:
            raise RuntimeError(f"remedy {label}: {res.stderr.strip().splitlines()[-1:]}")
        out[label] = float(res.stdout.strip().splitlines()[-1])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", type=int, default=10_000, help="pods in the snapshot = distinct edges (<= 62500)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    p.add_argument("--pods-per-workload", type=int, default=1,
                   help="pods per Deployment (1: every pod its own workload, so --pods distinct edges)")
    p.add_argument("--rounds", type=int, default=1, help="run the phases this many times (median and spread)")
    p.add_argument("--phases", default="idle,loaded,traffic", help="comma-separated subset of idle,loaded,traffic")
    p.add_argument("--smaps", type=Path, metavar="DIR", help="keep the sniffer's /proc/PID/smaps of each phase here")
    p.add_argument("--feed", choices=("snapshot", "live"), default="snapshot",
                   help="live: the loaded and traffic phases watch a real kube-apiserver (tests/apiserver) holding "
                        "the same objects, as a deployed sniffer does (needs `make apiserver`)")
    p.add_argument("--remedies", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--json", metavar="PATH", help='write results as JSON ("-" for stdout)')
    args = p.parse_args()
    if not 1 <= args.pods <= 250 * 250:
        p.error("--pods between 1 and 62500")
    wanted = args.phases.split(",")
    if not wanted or set(wanted) - {"idle", "loaded", "traffic"} or args.rounds < 1:
        p.error("--phases: a subset of idle,loaded,traffic; --rounds at least 1")
    if args.smaps is not None:
        args.smaps.mkdir(parents=True, exist_ok=True)
    res = Results(pods=args.pods, seconds=args.seconds, pods_per_workload=args.pods_per_workload)
    netns = f"nmmem{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="nm-mem-") as tmp:
        work = Path(tmp)
        (work / "loop.c").write_text(C_SOURCE)
        subprocess.run(["gcc", "-O2", "-o", str(work / "loop"), str(work / "loop.c")], check=True)
        empty, full = work / "empty.json", work / "cluster.json"
        empty.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
        full.write_text(json.dumps(snapshot(args.pods, args.pods_per_workload)))
        subprocess.run(["ip", "netns", "add", netns], check=True)
        server = mapper = None
        mapper_log = (work / "mapper.log").open("ab")
        stack = contextlib.ExitStack()
        try:
            ns = ["ip", "netns", "exec", netns]
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
            # Every pod IP is local in the namespace, so the loop's connects to them are accepted.
            subprocess.run(["ip", "-n", netns, "route", "add", "local", "10.0.0.0/16", "dev", "lo"], check=True)
            server = subprocess.Popen([*ns, str(work / "loop"), "serve", str(PORT)], stdout=subprocess.PIPE)
            assert server.stdout is not None
            server.stdout.readline()
            mapper, addr = start_mapper(mapper_log)
            full_feed = ["--snapshot", str(full)]
            if args.feed == "live":
                apiserver = stack.enter_context(ApiServerCluster(workdir=work / "apiserver"))
                load_into_apiserver(apiserver, snapshot(args.pods, args.pods_per_workload)["items"])
                full_feed = ["--kubeconfig", str(apiserver.kubeconfig_path)]
            traffic = [*ns, str(work / "loop"), "connect", str(PORT), str(args.seconds), str(args.pods), hex(POD_BASE)]
            plan = [("idle", ["--snapshot", str(empty)], 0, None), ("loaded", full_feed, args.pods, None),
                    ("traffic", full_feed, args.pods, traffic)]
            for rnd in range(1, args.rounds + 1):
                for name, snap, pods, loop in plan:
                    if name not in wanted:
                        continue
                    smaps = None if args.smaps is None else args.smaps / f"{name}-{rnd}.smaps"
                    phase = run_phase(name, pods, snap, addr, work, args.seconds, loop, smaps)
                    phase.round = rnd
                    phase.edges_at_mapper = mapper_edges(addr)
                    res.phases.append(phase)
                    print(f"round {rnd} {name:8} RSS median {phase.rss_mib_median:6.1f} MiB (anon "
                          f"{phase.anon_mib_median:5.1f}, file {phase.file_mib_median:5.1f}) max {phase.rss_mib_max:6.1f} "
                          f"MiB, cgroup max {phase.memcg_mib_max:6.1f} MiB", file=sys.stderr, flush=True)
            if args.remedies:
                res.remedies = remedies()
        finally:
            for proc in (server, mapper):
                if proc is not None:
                    proc.kill()
                    proc.wait()
            mapper_log.close()
            stack.close()
            subprocess.run(["ip", "netns", "del", netns], check=False)

    print(f"{'phase':10}{'pods':>7}{'RSS median':>12}{'spread':>15}{'anon':>7}{'spread':>13}{'file':>7}{'RSS max':>9}"
          f"{'cgroup max':>12}{'cgroup peak':>13}{'mapper edges':>14}")
    print(f"  (MiB; median over {args.rounds} round(s) of: RSS median and max over the second half of {args.seconds:g} s "
          "(anon: RssAnon, file: RssFile + RssShmem, which varies with the page cache), cgroup max over all of it, "
          "peak since start-up; spread: min-max over rounds)")
    for name in ("idle", "loaded", "traffic"):
        got = [ph for ph in res.phases if ph.name == name]
        if not got:
            continue
        med = [ph.rss_mib_median for ph in got]
        anon = [ph.anon_mib_median for ph in got]

        def m(attr: str) -> float:
            return statistics.median(getattr(ph, attr) for ph in got)

        print(f"{name:10}{got[0].pods:7d}{statistics.median(med):12.1f}{f'{min(med):.1f}-{max(med):.1f}':>15}"
              f"{statistics.median(anon):7.1f}{f'{min(anon):.1f}-{max(anon):.1f}':>13}{m('file_mib_median'):7.1f}"
              f"{m('rss_mib_max'):9.1f}{m('memcg_mib_max'):12.1f}{m('memcg_peak_mib'):13.1f}"
              f"{int(m('edges_at_mapper')):14d}")
    if res.remedies:
        print()
        print(f"{'remedy (both probes loaded, idle)':36}{'RSS MiB':>8}")
        for label, mib in res.remedies.items():
            print(f"{label:36}{mib:8.1f}")
    if args.json:
        payload = json.dumps(asdict(res), indent=2)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
