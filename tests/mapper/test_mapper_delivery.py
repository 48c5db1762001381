"""Delivery with real processes: an acknowledged batch survives `kill -9`, a resent batch merges once.

The mapper runs as `netmapper mapper serve --db FILE` (in the kill loop with TLS and bearer tokens, as
deployed); the client is the sniffer's own Reporter (the code that keeps and resends unacknowledged
batches), fed the way the agent feeds it.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from edge_testing import T0, edge, internet, summary, workload
from netmapper_api.limits import client_channel_options
from netmapper_api.columns import to_columns
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc
from netmapper_api.channel import ClientCredentials, open_channel
from sniffer.reporter import Reporter
from tests.mapper.mapper_process import MapperProcess
from tests.mapper.tls_files import make_ca

REPORT_TOKEN = "kill-loop-report-token-0123"
READ_TOKEN = "kill-loop-read-token-012345"


@pytest.fixture()
def mapper(tmp_path: Path) -> Iterator[MapperProcess]:
    proc = MapperProcess(tmp_path / "edges.db")
    proc.start()
    yield proc
    proc.stop()


def listed(address: str, creds: ClientCredentials | None = None) -> list[edge_pb2.Edge]:
    with open_channel(address, creds, client_channel_options()) as ch:
        return list(mapper_pb2_grpc.MapperStub(ch).ListEdges(mapper_pb2.ListEdgesRequest(), timeout=30).edges)


def round_edges(r: int, distinct: int) -> list[edge_pb2.Edge]:
    """Round r of a sniffer's reports: every distinct edge with a count that depends on (r, i)."""
    out = []
    for i in range(distinct):
        server = workload(f"svc-{i % 17}") if i % 5 else internet(f"203.0.113.{i % 200 + 1}", "api.example.com")
        out.append(edge(workload(f"client-{i % 13}", pod=f"client-{i % 13}-abc"), server, 1000 + i,
                        first=T0 + r, last=T0 + r + i % 7, count=1 + (r * 7 + i) % 11))
    return out


def test_kill_9_loop_loses_nothing_acknowledged_and_counts_stay_exact(tmp_path: Path) -> None:
    rounds, distinct, kills = 80, 300, 8
    ca = make_ca(tmp_path / "pki")
    crt, key = ca.issue("server", "/CN=mapper", server=True)
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"{REPORT_TOKEN},sniffer,report,node-1\n{READ_TOKEN},reader,read\n")
    mapper = MapperProcess(tmp_path / "edges.db", "--tls-cert", str(crt), "--tls-key", str(key),
                           "--token-file", str(tokens))
    mapper.start()
    reader = ClientCredentials(token=READ_TOKEN, ca=ca.cert)
    reporter = Reporter(mapper.address, "node-1", ack_timeout=5.0, max_backoff=0.2,
                        credentials=ClientCredentials(token=REPORT_TOKEN, ca=ca.cert))
    reporter.start()
    offer = AgentOffer(reporter)
    expected: dict[tuple[str, str, int], list[int]] = {}  # (client, server, port) -> [count, first s, last s]
    pending: dict[tuple[str, str, int], edge_pb2.Edge] = {}  # what the agent's accumulator would hold
    done = threading.Event()
    killed = 0

    def chaos() -> None:
        nonlocal killed
        rng = random.Random(9)
        while killed < kills and not done.is_set():
            time.sleep(rng.uniform(0.05, 0.3))
            mapper.kill9()
            killed += 1
            mapper.start()

    killer = threading.Thread(target=chaos)
    killer.start()
    try:
        for r in range(rounds):
            for e in round_edges(r, distinct):
                k = summary(e)
                exp = expected.setdefault(k, [0, e.first_seen.seconds, e.last_seen.seconds])
                exp[0] += e.count
                exp[1] = min(exp[1], e.first_seen.seconds)
                exp[2] = max(exp[2], e.last_seen.seconds)
                # Merge by key while the reporter is busy, as the sniffer's accumulator does.
                cur = pending.get(k)
                if cur is None:
                    pending[k] = e
                else:
                    cur.count += e.count
                    cur.last_seen.CopyFrom(max(cur.last_seen, e.last_seen, key=lambda t: t.ToNanoseconds()))
            if offer(list(pending.values())):
                pending = {}
            time.sleep(0.01)  # the agent drains every interval; keep several rounds per mapper life
        killer.join()
        for _ in range(600):  # bounded: hand over the rest once the reporter is idle
            if not pending or offer(list(pending.values())):
                break
            time.sleep(0.05)
        assert reporter.flush(timeout=120), f"not everything acknowledged: {reporter.stats}"
        assert killed == kills
        got = {summary(e): [e.count, e.first_seen.seconds, e.last_seen.seconds]
               for e in listed(mapper.address, reader)}
        assert got == expected
        # Once more after a last kill: what was acknowledged is on disk, not only in memory.
        mapper.kill9()
        mapper.start()
        got = {summary(e): [e.count, e.first_seen.seconds, e.last_seen.seconds]
               for e in listed(mapper.address, reader)}
        assert got == expected
        assert reporter.stats.send_failures > 0  # the kills did interrupt streams
        assert offer.columns > 0  # most batches went as EdgeColumns, as the sniffer sends them
    finally:
        done.set()
        killer.join()
        reporter.stop()
        mapper.stop()


class AgentOffer:
    """Offers as the sniffer's agent does: as EdgeColumns once the mapper said it reads them."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.columns = 0  # batches offered as EdgeColumns

    def __call__(self, edges: list[edge_pb2.Edge]) -> bool:
        if not self.reporter.reads_columns:
            return self.reporter.offer(edges)
        chunk = mapper_pb2.ReportEdgesRequest(columns=to_columns(edges)).SerializeToString()
        offered = self.reporter.offer_serialized([(len(edges), chunk)], columns=True)
        self.columns += offered
        return offered


def report_raw(address: str, req: mapper_pb2.ReportEdgesRequest) -> mapper_pb2.ReportEdgesResponse:
    with grpc.insecure_channel(address) as ch:
        acks = list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(iter([req]), timeout=30))
    assert len(acks) == 1
    return acks[0]


def test_a_resent_batch_merges_once_also_across_a_restart(mapper: MapperProcess) -> None:
    batch = mapper_pb2.ReportEdgesRequest(node="node-1", instance="run-1", sequence=1,
                                          edges=round_edges(0, 20))
    first = report_raw(mapper.address, batch)
    assert (first.accepted, first.duplicate) == (20, False)
    # The acknowledgement was lost: the sniffer resends on a new stream, then after a mapper crash.
    again = report_raw(mapper.address, batch)
    assert (again.accepted, again.duplicate) == (0, True)
    mapper.kill9()
    mapper.start()
    after_crash = report_raw(mapper.address, batch)
    assert after_crash.duplicate
    counts = {summary(e): e.count for e in listed(mapper.address)}
    assert counts == {summary(e): e.count for e in round_edges(0, 20)}
    # The next sequence merges; another instance (a restarted sniffer) starts its own numbering.
    batch.sequence = 2
    assert report_raw(mapper.address, batch).accepted == 20
    batch.instance, batch.sequence = "run-2", 1
    assert report_raw(mapper.address, batch).accepted == 20
    counts = {summary(e): e.count for e in listed(mapper.address)}
    assert counts == {summary(e): 3 * e.count for e in round_edges(0, 20)}


def test_edge_ttl_expires_durably(tmp_path: Path) -> None:
    proc = MapperProcess(tmp_path / "edges.db", "--edge-ttl", "2s")
    proc.start()
    try:
        now = time.time()
        fresh = edge(workload("web"), workload("db"), 5432, first=now + 60, last=now + 60)
        stale = edge(workload("web"), workload("old"), 5432, first=now - 3600, last=now - 3600)
        ack = report_raw(proc.address, mapper_pb2.ReportEdgesRequest(node="n", edges=[fresh, stale]))
        assert ack.accepted == 2
        for _ in range(200):  # bounded wait for the expiry round (every second with a 2 s TTL)
            if len(listed(proc.address)) == 1:
                break
            time.sleep(0.05)
        assert [summary(e) for e in listed(proc.address)] == [("web.shop", "db.shop", 5432)]
        proc.kill9()
        proc.start()
        assert [summary(e) for e in listed(proc.address)] == [("web.shop", "db.shop", 5432)]
    finally:
        proc.stop()
