"""Benchmark the mapper's stores and query API: SQLite vs PostgreSQL (one replica, two replicas).

    .venv/bin/python bench/mapper_scale.py [--rounds 3] [--sizes 1000,10000,100000] [--streams 10,100]
                                           [--phases ingest,list,watch]
                                           [--edges 20000] [--batch 500]

Every mapper is its own process (`netmapper mapper serve`, as deployed), PostgreSQL is a real server
started by scripts/postgres.sh in a temporary directory. This process plays the sniffers and the users.
Phases, each repeated --rounds times on fresh stores (median and spread reported):
1. ingest: --streams concurrent ReportEdges streams (split evenly over the replicas) send --edges distinct
   edges once (new) and then once more (steady re-report), pre-serialized; observations/s until the last
   acknowledgement (PostgreSQL: every acknowledgement is a committed transaction);
2. ListEdges (one response) and export (ListEdges + ClientIntents + YAML in this process) at each size;
3. WatchEdges fan-out: 10 watchers synced on one mapper (with two replicas: on the other one than the
   writer), then 1000 new edges in 10 batches; time until every watcher has received all of them.
The mapper processes and this client share the machine's cores: numbers are for this machine only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "bench"))

from mapper_ingest import make_edge  # noqa: E402
from netmapper.intents.export import build_client_intents  # noqa: E402
from netmapper.intents.yaml_writer import render_yaml  # noqa: E402
from netmapper_api.limits import client_channel_options  # noqa: E402
from netmapper_api.v1 import mapper_pb2, mapper_pb2_grpc  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server; yields the URL of its `netmapper` database."""
    tmp = Path(tempfile.mkdtemp(prefix="nm-bench-pg-"))
    tmp.chmod(0o755)
    data = tmp / "data"
    try:
        url = subprocess.run(["bash", str(ROOT / "scripts/postgres.sh"), "start", str(data), str(free_port())],
                             check=True, capture_output=True, text=True).stdout.strip()
        yield url
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/postgres.sh"), "stop", str(data), "immediate"],
                       capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_database(url: str) -> str:
    import psycopg

    name = f"b_{os.urandom(6).hex()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def mappers(db: str | None, replicas: int) -> Iterator[list[str]]:
    """`replicas` mapper processes sharing `db`; yields their addresses once each answers."""
    procs, addrs = [], []
    try:
        for _ in range(replicas):
            addr = f"127.0.0.1:{free_port()}"
            cmd = [sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen", addr]
            if db:
                cmd += ["--db", db]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT))
            addrs.append(addr)
        for addr in addrs:
            with grpc.insecure_channel(addr) as ch:
                grpc.channel_ready_future(ch).result(timeout=60)
        yield addrs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def batches_for(stream: int, streams: int, edges: int, batch: int) -> list[bytes]:
    mine = list(range(stream, edges, streams))
    return [mapper_pb2.ReportEdgesRequest(node=f"node-{stream}", sequence=1 + k // batch,
                                          edges=[make_edge(i, stream) for i in mine[k:k + batch]]).SerializeToString()
            for k in range(0, len(mine), batch)]


def ingest(addrs: list[str], batches: list[list[bytes]], repeat: int) -> float:
    """All streams at once, stream n on replica n % len(addrs); returns observations/s."""
    barrier = threading.Barrier(len(batches) + 1)
    acked = [0] * len(batches)

    def sniffer(n: int) -> None:
        with grpc.insecure_channel(addrs[n % len(addrs)], options=client_channel_options()) as ch:
            call = ch.stream_stream("/netmapper.v1.Mapper/ReportEdges", request_serializer=lambda b: b,
                                    response_deserializer=mapper_pb2.ReportEdgesResponse.FromString)
            barrier.wait()
            for ack in call(iter(batches[n] * repeat), timeout=600):
                acked[n] += ack.accepted
        barrier.wait()

    threads = [threading.Thread(target=sniffer, args=(n,)) for n in range(len(batches))]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    barrier.wait()
    elapsed = time.perf_counter() - started
    for t in threads:
        t.join()
    return sum(acked) / elapsed


def populate(addr: str, edges: int, batch: int = 2000) -> None:
    raw = batches_for(0, 1, edges, batch)
    with grpc.insecure_channel(addr, options=client_channel_options()) as ch:
        acks = list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(
            iter(mapper_pb2.ReportEdgesRequest.FromString(b) for b in raw), timeout=600))
    assert sum(a.accepted for a in acks) == edges


def list_and_export(addr: str, expect: int) -> tuple[float, float]:
    with grpc.insecure_channel(addr, options=client_channel_options()) as ch:
        stub = mapper_pb2_grpc.MapperStub(ch)
        t = time.perf_counter()
        resp = stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=120)
        t_list = time.perf_counter() - t
        assert len(resp.edges) == expect, (len(resp.edges), expect)
        render_yaml(build_client_intents(resp.edges))
        t_export = time.perf_counter() - t
    return t_list, t_export


def watch_fanout(writer: str, reader: str, watchers: int = 10, new: int = 1000) -> float:
    """Seconds from the first new batch until all watchers on `reader` have all `new` edges."""
    synced = threading.Barrier(watchers + 1)
    done = [threading.Event() for _ in range(watchers)]
    stop = threading.Event()

    def watcher(n: int) -> None:
        with grpc.insecure_channel(reader, options=client_channel_options()) as ch:
            stream = mapper_pb2_grpc.MapperStub(ch).WatchEdges(mapper_pb2.WatchEdgesRequest(), timeout=300)
            seen: set[int] = set()
            is_synced = False
            for msg in stream:
                if msg.HasField("synced") and not is_synced:
                    is_synced = True
                    synced.wait()
                elif msg.HasField("edge") and is_synced and msg.edge.client.workload.name.startswith("fan-"):
                    seen.add(msg.edge.port)
                    if len(seen) == new:
                        done[n].set()
                        break
                if stop.is_set():
                    break
            stream.cancel()

    threads = [threading.Thread(target=watcher, args=(n,), daemon=True) for n in range(watchers)]
    for t in threads:
        t.start()
    synced.wait()
    fresh = []
    for i in range(new):
        e = make_edge(i, 0)
        e.client.workload.name = f"fan-{i % 100}"
        e.port = 1 + i  # distinct keys: the watchers count ports
        fresh.append(e)
    started = time.perf_counter()
    with grpc.insecure_channel(writer, options=client_channel_options()) as ch:
        reqs = [mapper_pb2.ReportEdgesRequest(node="fan", sequence=k + 1, edges=fresh[k * 100:(k + 1) * 100])
                for k in range(new // 100)]
        list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(iter(reqs), timeout=120))
    for ev in done:
        if not ev.wait(timeout=120):
            stop.set()
            raise RuntimeError("a watcher did not receive every new edge within 120 s")
    return time.perf_counter() - started


def summary(values: list[float], fmt: Callable[[float], str]) -> str:
    med = statistics.median(values)
    return f"median {fmt(med)} (min {fmt(min(values))}, max {fmt(max(values))}, n={len(values)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--streams", default="10,100")
    ap.add_argument("--edges", type=int, default=20_000, help="distinct edges in the ingest phase")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--phases", default="ingest,list,watch", help="which phases to run (comma-separated)")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]
    stream_counts = [int(s) for s in args.streams.split(",")]
    rate = lambda v: f"{v:,.0f} obs/s"  # noqa: E731
    secs = lambda v: f"{v:.3f} s"  # noqa: E731

    with tempfile.TemporaryDirectory() as tmp, postgres() as pg:
        setups: list[tuple[str, Callable[[], str | None], int]] = [
            ("sqlite", lambda: str(Path(tmp) / f"{os.urandom(4).hex()}.db"), 1),
            ("postgres x1", lambda: fresh_database(pg), 1),
            ("postgres x2", lambda: fresh_database(pg), 2),
        ]
        if "ingest" in phases:
            print(f"== ingest: {args.edges:,} new edges then the same again (steady), batches of {args.batch}")
        for streams in stream_counts if "ingest" in phases else []:
            batches = [batches_for(n, streams, args.edges, args.batch) for n in range(streams)]
            results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _, _ in setups}
            for _ in range(args.rounds):
                for name, db, replicas in setups:  # the setups interleaved in every round
                    with mappers(db(), replicas) as addrs:
                        results[name][0].append(ingest(addrs, batches, 1))
                        results[name][1].append(ingest(addrs, batches, 1))
            for name, (new, steady) in results.items():
                print(f"{streams:>3} streams {name:<12} new: {summary(new, rate)}; steady: {summary(steady, rate)}")

        if "list" in phases:
            print("== ListEdges and export (ListEdges + ClientIntents + YAML), one response")
        for size in sizes if "list" in phases else []:
            timings: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _, _ in setups[:2]}
            for name, db, replicas in setups[:2]:
                with mappers(db(), replicas) as addrs:
                    populate(addrs[0], size)
                    for _ in range(args.rounds):
                        t_list, t_export = list_and_export(addrs[0], size)
                        timings[name][0].append(t_list)
                        timings[name][1].append(t_export)
            for name, (lists, exports) in timings.items():
                print(f"{size:>7,} edges {name:<12} ListEdges: {summary(lists, secs)}; export: {summary(exports, secs)}")

        if "watch" not in phases:
            return
        print("== WatchEdges fan-out: 10 watchers, 1000 new edges in 10 batches")
        fan: dict[str, list[float]] = {name: [] for name, _, _ in setups}
        for _ in range(args.rounds):
            for name, db, replicas in setups:
                with mappers(db(), replicas) as addrs:
                    populate(addrs[0], 1000)
                    fan[name].append(watch_fanout(addrs[0], addrs[-1]))
        for name, values in fan.items():
            where = " (writer and watchers on different replicas)" if name.endswith("x2") else ""
            print(f"{name:<12} all 10 watchers have all 1000: {summary(values, secs)}{where}")


if __name__ == "__main__":
    main()
