"""Benchmark the mapper: ingest over real gRPC, ListEdges and export of ~100k edges.

    .venv/bin/python bench/mapper_ingest.py [--streams 10] [--batch 1000] [--edges 100000] [--rounds 20] [--db]

The mapper runs as its own process (as in production: a GIL of its own); this process plays 10
sniffers, one channel and one ReportEdges stream each, sending pre-serialized batches so that the
number measures the mapper, not the benchmark's protobuf encoding. Phases:
1. new edges: every stream sends its share of the distinct edges once (the slow path: validation,
   identity, serialization caches);
2. steady state: every stream re-reports its edges for --rounds rounds, as sniffers do each interval;
3. ListEdges of all edges, twice (cold: first call after ingest; warm: nothing changed since);
4. export of the listed edges to ClientIntents YAML (v2beta1) in this process.
Also measured in-process (no gRPC) for comparison: the store's merge alone.
Targets: >= 300k observations/s from 10 streams; ListEdges and export of 100k in < 1 s.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from netmapper.intents.export import build_client_intents  # noqa: E402
from netmapper.intents.yaml_writer import render_yaml  # noqa: E402
from mapper.server import serve  # noqa: E402
from netmapper_api.limits import client_channel_options  # noqa: E402
from mapper.store import EdgeStore  # noqa: E402
from netmapper_api.v1 import edge_pb2, mapper_pb2  # noqa: E402

T0 = 1_700_000_000


def make_edge(i: int, stream: int) -> edge_pb2.Edge:
    """Edge number i (distinct for distinct i < 500 * 5000): 500 clients in 50 namespaces, each calling
    servers out of 2000 on its own ports; every 5th edge goes to the internet with a DNS name."""
    client, port = i % 500, 1000 + i // 500
    ns = f"team-{client % 50}"
    e = edge_pb2.Edge(port=port, protocol=edge_pb2.PROTOCOL_TCP, count=1 + i % 5)
    c = e.client
    c.kind = edge_pb2.ENDPOINT_KIND_WORKLOAD
    c.workload.name, c.workload.kind, c.workload.namespace = f"client-{client}", "Deployment", ns
    c.pod, c.ip = f"client-{client}-7d9f-{stream}", f"10.{stream}.{client % 250}.{client // 250 + 1}"
    s = e.server
    if i % 5 == 4:
        s.kind = edge_pb2.ENDPOINT_KIND_INTERNET
        s.ip = f"203.0.{i % 250}.{(i // 250) % 250 + 1}"
        s.dns_names.append(f"api-{i % 3000}.example.com")
    else:
        server = (i * 7) % 2000
        s.kind = edge_pb2.ENDPOINT_KIND_WORKLOAD
        s.workload.name, s.workload.kind, s.workload.namespace = f"server-{server}", "Deployment", ns
        s.service.name, s.service.namespace = f"server-{server}", ns
        s.pod, s.ip = f"server-{server}-0", f"10.100.{server % 250}.{server // 250 + 1}"
        s.dns_names.append(f"server-{server}.{ns}.svc.cluster.local")
    e.first_seen.seconds, e.first_seen.nanos = T0 + i % 60, (i * 7919) % 1_000_000_000
    e.last_seen.seconds, e.last_seen.nanos = T0 + 60 + i % 60, (i * 104729) % 1_000_000_000
    return e


def stream_batches(stream: int, streams: int, edges: int, replicas: int, batch: int) -> list[bytes]:
    """Serialized ReportEdgesRequests (without sequence) of one stream (= one node).

    Every distinct edge is reported by `replicas` nodes, each naming its own pod of the client, as
    when a Deployment has replicas on several nodes: one key arrives with alternating endpoints.
    """
    mine = [i for i in range(edges) if (stream - i) % streams < replicas]
    out = []
    for start in range(0, len(mine), batch):
        chunk = [make_edge(i, stream) for i in mine[start:start + batch]]
        out.append(mapper_pb2.ReportEdgesRequest(node=f"node-{stream}", edges=chunk).SerializeToString())
    return out


def with_sequence(raw: bytes, seq: int) -> bytes:
    # Appending field 2 to a serialized message sets it (protobuf: the last value wins).
    return raw + b"\x10" + edge_pb2.Edge(port=seq).SerializeToString()[1:] if seq else raw


def run_streams(address: str, batches: list[list[bytes]], rounds: int) -> tuple[float, int, int]:
    """All streams concurrently, each sending its batches `rounds` times; (seconds, accepted, rejected)."""
    accepted = [0] * len(batches)
    rejected = [0] * len(batches)
    barrier = threading.Barrier(len(batches) + 1)

    def sniffer(n: int) -> None:
        with grpc.insecure_channel(address, options=client_channel_options()) as ch:
            grpc.channel_ready_future(ch).result(timeout=10)
            call = ch.stream_stream(
                "/netmapper.v1.Mapper/ReportEdges",
                request_serializer=lambda b: b,  # already serialized
                response_deserializer=mapper_pb2.ReportEdgesResponse.FromString,
            )

            def requests() -> Iterator[bytes]:
                seq = 1
                for _ in range(rounds):
                    for raw in batches[n]:
                        yield with_sequence(raw, seq)
                        seq += 1

            barrier.wait()
            for ack in call(requests()):
                accepted[n] += ack.accepted
                rejected[n] += ack.rejected
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
    return elapsed, sum(accepted), sum(rejected)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_forever(db: str | None) -> None:
    """Child mode: run the mapper, print its port, stop when stdin closes."""
    server = serve("127.0.0.1:0", db, max_streams=32)
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop(grace=1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--edges", type=int, default=100_000, help="distinct edges in total")
    ap.add_argument("--rounds", type=int, default=10, help="steady-state re-reports of every edge")
    ap.add_argument("--replicas", type=int, default=2, help="nodes reporting each edge (with their own pod)")
    ap.add_argument("--db", action="store_true", help="give the mapper a sqlite file")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db-path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_forever(args.db_path)
        return

    print(f"building {args.edges} distinct edges, each reported by {args.replicas} of {args.streams} streams, "
          f"batches of {args.batch} ...")
    batches = [stream_batches(n, args.streams, args.edges, args.replicas, args.batch) for n in range(args.streams)]
    total_distinct = args.edges
    observations = total_distinct * args.replicas
    bytes_per_edge = sum(len(b) for bs in batches for b in bs) / observations
    print(f"{bytes_per_edge:.0f} bytes per edge on the wire")

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--serve"]
        if args.db:
            cmd += ["--db-path", str(Path(tmp) / "bench.db")]
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdin is not None
            port = int(child.stdout.readline())
            address = f"127.0.0.1:{port}"
            print(f"mapper pid {child.pid} on {address}{' with sqlite file' if args.db else ''}")

            cpu0 = cpu_seconds(child.pid)
            secs, acc, rej = run_streams(address, batches, 1)
            cpu1 = cpu_seconds(child.pid)
            print(f"new edges:    {acc:>9,} obs in {secs:6.2f} s = {acc / secs:>9,.0f} obs/s "
                  f"(mapper CPU {cpu1 - cpu0:.2f} s, rejected {rej})")

            secs, acc, rej = run_streams(address, batches, args.rounds)
            cpu2 = cpu_seconds(child.pid)
            print(f"steady state: {acc:>9,} obs in {secs:6.2f} s = {acc / secs:>9,.0f} obs/s "
                  f"(mapper CPU {cpu2 - cpu1:.2f} s = {(cpu2 - cpu1) / secs:.2f} cores, "
                  f"{(cpu2 - cpu1) / acc * 1e6:.2f} us/obs, rejected {rej})")

            with grpc.insecure_channel(address, options=client_channel_options()) as ch:
                list_edges = ch.unary_unary(
                    "/netmapper.v1.Mapper/ListEdges",
                    request_serializer=mapper_pb2.ListEdgesRequest.SerializeToString,
                    response_deserializer=lambda b: b,
                )
                for label in ("cold", "warm"):
                    t = time.perf_counter()
                    raw = list_edges(mapper_pb2.ListEdgesRequest(), timeout=60)
                    t_rpc = time.perf_counter() - t
                    reply = mapper_pb2.ListEdgesResponse.FromString(raw)
                    t_all = time.perf_counter() - t
                    print(f"ListEdges {label}: {len(reply.edges):,} edges, {len(raw) / 1e6:.1f} MB: "
                          f"{t_rpc:.3f} s RPC, {t_all:.3f} s with parsing")
                edges = list(reply.edges)
                assert len(edges) == total_distinct, len(edges)

            t = time.perf_counter()
            docs = build_client_intents(edges)
            t_build = time.perf_counter() - t
            text = render_yaml(docs)
            t_all = time.perf_counter() - t
            targets = sum(len(d["spec"]["targets"]) for d in docs)
            print(f"export: {len(docs):,} documents, {targets:,} targets, {len(text) / 1e6:.1f} MB YAML: "
                  f"{t_build:.3f} s build, {t_all:.3f} s with YAML")
        finally:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(timeout=30)

    # The store alone, in this process, on the same batches already parsed: the ceiling without gRPC.
    parsed = [mapper_pb2.ReportEdgesRequest.FromString(raw) for bs in batches for raw in bs]
    store = EdgeStore()
    for req in parsed:
        store.merge(req.edges, req.node)
    t = time.perf_counter()
    rounds = max(1, args.rounds // 4)
    for _ in range(rounds):
        for req in parsed:
            store.merge(req.edges, req.node)
    secs = time.perf_counter() - t
    n = rounds * observations
    print(f"store.merge alone (steady, 1 thread, no gRPC): {n / secs:,.0f} obs/s")
    parse_t = time.perf_counter()
    for bs in batches:
        for raw in bs:
            mapper_pb2.ReportEdgesRequest.FromString(raw)
    print(f"protobuf parse alone: {observations / (time.perf_counter() - parse_t):,.0f} edges/s")


if __name__ == "__main__":
    main()
