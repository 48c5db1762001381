"""Benchmark the mapper: ingest over real gRPC, ListEdges and export of ~100k edges.

    .venv/bin/python bench/mapper_ingest.py [--streams 10] [--batch 1000] [--edges 100000] [--rounds 30] [--db] [--tls]
    .venv/bin/python bench/mapper_ingest.py --compare 3      # A/B: plain, durable, durable+TLS+tokens
    .venv/bin/python bench/mapper_ingest.py --db --tls --profile out/mapper.prof   # cProfile of the mapper

--db: the mapper has a sqlite file, so every acknowledgement waits for the group commit (durable).
--tls: TLS on the port and every stream authenticated with a bearer token (report role).
Batches carry an instance and a sequence, as the sniffer's do (exactly-once bookkeeping included).

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
import statistics
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
from mapper.auth import ReloadingTls, ReloadingTokens  # noqa: E402
from mapper.server import serve  # noqa: E402
from netmapper_api.channel import ClientCredentials, open_channel  # noqa: E402
from netmapper_api.columns import to_columns  # noqa: E402
from netmapper_api.limits import client_channel_options  # noqa: E402
from mapper.store import EdgeStore  # noqa: E402
from netmapper_api.v1 import edge_pb2, mapper_pb2  # noqa: E402

T0 = int(time.time()) - 3600  # within the report window the mapper accepts (refuses > 7 days old)


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


def stream_batches(stream: int, streams: int, edges: int, replicas: int, batch: int,
                   form: str = "columns") -> list[bytes]:
    """Serialized ReportEdgesRequests (without sequence) of one stream (= one node), the edges in
    `form`: "columns" (EdgeColumns, what the sniffer sends a mapper that reads them) or "edges".

    Every distinct edge is reported by `replicas` nodes, each naming its own pod of the client, as
    when a Deployment has replicas on several nodes: one key arrives with alternating endpoints.
    """
    mine = [i for i in range(edges) if (stream - i) % streams < replicas]
    out = []
    for start in range(0, len(mine), batch):
        chunk = [make_edge(i, stream) for i in mine[start:start + batch]]
        req = mapper_pb2.ReportEdgesRequest(node=f"node-{stream}")
        if form == "columns":
            req.columns.CopyFrom(to_columns(chunk))
        else:
            req.edges.extend(chunk)
        out.append(req.SerializeToString())
    return out


def with_sequence(raw: bytes, seq: int, instance: bytes = b"") -> bytes:
    # Appending fields to a serialized message sets them (protobuf: the last value wins): field 2 is the
    # sequence, field 5 the instance.
    out = raw + b"\x10" + edge_pb2.Edge(port=seq).SerializeToString()[1:] if seq else raw
    return out + b"\x2a" + bytes([len(instance)]) + instance if instance else out


class Tls:
    """A CA, a server certificate for 127.0.0.1 and a token file with one report and one read token."""

    def __init__(self, directory: Path) -> None:
        def ssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

        ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-subj", "/CN=bench-ca", "-days", "1")
        ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "srv.key", "-out",
            "srv.csr", "-subj", "/CN=mapper")
        (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        ssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "srv.crt", "-days", "1", "-extfile", "san.ext")
        self.dir = directory
        self.report_token, self.read_token = "bench-report-token-0123456789", "bench-read-token-0123456789"
        (directory / "tokens.csv").write_text(f"{self.report_token},bench,report\n{self.read_token},reader,read\n")

    def credentials(self, token: str) -> ClientCredentials:
        return ClientCredentials(token=token, ca=self.dir / "ca.crt")


def run_streams(address: str, batches: list[list[bytes]], rounds: int, creds: ClientCredentials | None = None,
                first_sequence: int = 1) -> tuple[float, int, int]:
    """All streams concurrently, each sending its batches `rounds` times; (seconds, accepted, rejected)."""
    accepted = [0] * len(batches)
    rejected = [0] * len(batches)
    barrier = threading.Barrier(len(batches) + 1)

    def sniffer(n: int) -> None:
        with open_channel(address, creds, client_channel_options()) as ch:
            grpc.channel_ready_future(ch).result(timeout=10)
            call = ch.stream_stream(
                "/netmapper.v1.Mapper/ReportEdges",
                request_serializer=lambda b: b,  # already serialized
                response_deserializer=mapper_pb2.ReportEdgesResponse.FromString,
            )

            def requests() -> Iterator[bytes]:
                seq = first_sequence
                instance = f"bench-{n}".encode()
                for _ in range(rounds):
                    for raw in batches[n]:
                        yield with_sequence(raw, seq, instance)
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


def serve_forever(db: str | None, tls_dir: str | None, profile: str | None) -> None:
    """Child mode: run the mapper, print its port, stop when stdin closes."""
    if profile:
        import cProfile
        import threading as th

        prof = cProfile.Profile()
        th.setprofile(lambda *_: None)  # cProfile sees only the thread it runs in: profile every thread
        profilers: list[cProfile.Profile] = []

        def start_thread_profile(*_: object) -> None:
            p = cProfile.Profile()
            profilers.append(p)
            p.enable()
            th.setprofile(None)

        th.setprofile(start_thread_profile)
    kw: dict[str, object] = {}
    if tls_dir:
        d = Path(tls_dir)
        kw = {"tls": ReloadingTls(d / "srv.crt", d / "srv.key"), "tokens": ReloadingTokens(d / "tokens.csv")}
    server = serve("127.0.0.1:0", db, max_streams=32, **kw)  # type: ignore[arg-type]
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop(grace=1.0)
    if profile:
        import pstats

        stats = pstats.Stats(profilers[0]) if profilers else None
        for p in profilers[1:]:
            p.disable()
            stats.add(p)  # type: ignore[union-attr]
        if stats is not None:
            stats.dump_stats(profile)


def start_mapper(db: str | None, tls: Tls | None, profile: str | None = None) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, __file__, "--serve"]
    if db:
        cmd += ["--db-path", db]
    if tls:
        cmd += ["--tls-dir", str(tls.dir)]
    if profile:
        cmd += ["--profile", profile]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, f"127.0.0.1:{int(child.stdout.readline())}"


def stop_mapper(child: subprocess.Popen[str]) -> None:
    if child.stdin is not None:
        child.stdin.close()
    child.wait(timeout=60)


def measure(batches: list[list[bytes]], rounds: int, db: str | None, tls: Tls | None) -> tuple[float, float, float]:
    """(new-edge obs/s, steady obs/s, mapper us/obs steady) of one fresh mapper."""
    child, address = start_mapper(db, tls)
    creds = tls.credentials(tls.report_token) if tls else None
    try:
        c0 = cpu_seconds(child.pid)
        secs, acc, _ = run_streams(address, batches, 1, creds)
        new_rate = acc / secs
        c1 = cpu_seconds(child.pid)
        secs, acc, rej = run_streams(address, batches, rounds, creds, first_sequence=1000)
        c2 = cpu_seconds(child.pid)
        assert rej == 0
        return new_rate, acc / secs, (c2 - c1) / acc * 1e6
    finally:
        stop_mapper(child)


def compare(batches: list[list[bytes]], args: argparse.Namespace, tmp: Path) -> None:
    """A/B in one run: each configuration on a fresh mapper, configurations alternating, --compare rounds."""
    tls = Tls(tmp)
    configs = {"in memory, plaintext": (False, None), "durable acks": (True, None),
               "durable acks + TLS + tokens": (True, tls)}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configs}
    for r in range(args.compare):
        for name, (durable, t) in configs.items():
            db = str(tmp / f"bench-{r}-{len(results[name])}-{durable}-{t is not None}.db") if durable else None
            results[name].append(measure(batches, args.rounds, db, t))
            print(f"round {r + 1} {name:30s} new {results[name][-1][0]:>9,.0f}/s  steady {results[name][-1][1]:>9,.0f}/s"
                  f"  {results[name][-1][2]:.2f} us/obs", flush=True)
    print(f"\n{args.streams} streams, {args.edges:,} distinct edges x {args.replicas} replicas, batches of {args.batch}, "
          f"{args.rounds} steady rounds; median [min-max] of {args.compare} runs")
    for name, rs in results.items():
        steady = sorted(x[1] for x in rs)
        new = sorted(x[0] for x in rs)
        cost = sorted(x[2] for x in rs)
        print(f"{name:30s} steady {statistics.median(steady):>9,.0f} obs/s [{steady[0]:,.0f}-{steady[-1]:,.0f}]  "
              f"new {statistics.median(new):>8,.0f}/s [{new[0]:,.0f}-{new[-1]:,.0f}]  "
              f"mapper CPU {statistics.median(cost):.2f} us/obs [{cost[0]:.2f}-{cost[-1]:.2f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--edges", type=int, default=100_000, help="distinct edges in total")
    ap.add_argument("--rounds", type=int, default=30,
                    help="steady-state re-reports of every edge (30: ~15 s, several checkpoints, the first of "
                         "them writing the new edges whole, as a mapper that runs for hours takes them)")
    ap.add_argument("--replicas", type=int, default=2, help="nodes reporting each edge (with their own pod)")
    ap.add_argument("--form", choices=("columns", "edges"), default="columns",
                    help="how batches carry their edges: EdgeColumns (as the sniffer sends) or Edge messages")
    ap.add_argument("--db", action="store_true", help="give the mapper a sqlite file (durable acknowledgements)")
    ap.add_argument("--tls", action="store_true", help="TLS and a bearer token on every stream")
    ap.add_argument("--compare", type=int, default=0, metavar="N",
                    help="A/B: in memory vs durable vs durable+TLS, N alternating runs each (medians, spread)")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the mapper process (all threads) into FILE")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db-path", help=argparse.SUPPRESS)
    ap.add_argument("--tls-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_forever(args.db_path, args.tls_dir, args.profile)
        return

    print(f"building {args.edges} distinct edges, each reported by {args.replicas} of {args.streams} streams, "
          f"batches of {args.batch} ...")
    batches = [stream_batches(n, args.streams, args.edges, args.replicas, args.batch, args.form)
               for n in range(args.streams)]
    total_distinct = args.edges
    observations = total_distinct * args.replicas
    bytes_per_edge = sum(len(b) for bs in batches for b in bs) / observations
    print(f"{bytes_per_edge:.0f} bytes per edge on the wire ({args.form})")

    with tempfile.TemporaryDirectory() as tmp:
        if args.compare:
            compare(batches, args, Path(tmp))
            return
        tls = Tls(Path(tmp)) if args.tls else None
        child, address = start_mapper(str(Path(tmp) / "bench.db") if args.db else None, tls, args.profile)
        report_creds = tls.credentials(tls.report_token) if tls else None
        read_creds = tls.credentials(tls.read_token) if tls else None
        try:
            print(f"mapper pid {child.pid} on {address}{' with sqlite file (durable acks)' if args.db else ''}"
                  f"{', TLS + tokens' if tls else ''}")

            cpu0 = cpu_seconds(child.pid)
            secs, acc, rej = run_streams(address, batches, 1, report_creds)
            cpu1 = cpu_seconds(child.pid)
            print(f"new edges:    {acc:>9,} obs in {secs:6.2f} s = {acc / secs:>9,.0f} obs/s "
                  f"(mapper CPU {cpu1 - cpu0:.2f} s, rejected {rej})")

            secs, acc, rej = run_streams(address, batches, args.rounds, report_creds, first_sequence=1000)
            cpu2 = cpu_seconds(child.pid)
            print(f"steady state: {acc:>9,} obs in {secs:6.2f} s = {acc / secs:>9,.0f} obs/s "
                  f"(mapper CPU {cpu2 - cpu1:.2f} s = {(cpu2 - cpu1) / secs:.2f} cores, "
                  f"{(cpu2 - cpu1) / acc * 1e6:.2f} us/obs, rejected {rej})")

            with open_channel(address, read_creds, client_channel_options()) as ch:
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
            stop_mapper(child)
        if args.profile:
            import pstats

            print(f"\nmapper profile ({args.profile}), by own time:")
            pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)
            if args.profile:
                return

    # The store alone, in this process, on the same serialized batches, as the server merges them (the
    # edges read once, through the store's view): the ceiling without gRPC, threads and durability.
    nodes = [f"node-{n}" for n, bs in enumerate(batches) for _ in bs]
    raws = [raw for bs in batches for raw in bs]
    store = EdgeStore()
    for raw, node in zip(raws, nodes):
        store.merge(None, node, raw=raw)
    t = time.perf_counter()
    rounds = max(1, args.rounds // 4)
    for _ in range(rounds):
        for raw, node in zip(raws, nodes):
            store.merge(None, node, raw=raw)
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
