"""Ingest checks: what the mapper refuses, the reasons it gives per edge, and the bounds it keeps."""
from __future__ import annotations

import sqlite3
import subprocess
import threading
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from edge_testing import T0, edge, internet, service, summary, workload
from mapper.server import MapperServer, serve
from mapper.store import EdgeStore
from mapper.validation import MAX_STORED_COUNT, IngestLimits
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc


def year_10000() -> edge_pb2.Edge:
    e = edge(workload("web"), workload("db"), 5432)
    e.last_seen.seconds = 253402300800  # protobuf's own helpers refuse to build it; a wire client does not
    return e


def test_each_bad_field_is_refused_with_its_reason_and_the_rest_merges() -> None:
    bad = [
        year_10000(),
        edge(workload("web"), workload("db"), 5432, first=T0 - 30 * 86400),
        edge(workload("web"), workload("db"), 5432, count=2**40),
        edge(workload("web"), workload("db"), 70000),
        edge(workload("web", namespace="Shop"), workload("db"), 5432),
        edge(workload("web"), service("1db"), 5432),
        edge(workload("web", pod="pod_1"), workload("db"), 5432),
        edge(workload("web"), internet("93.184.216.34", "bad name.example.com"), 443),
        edge(workload("web"), internet("not-an-ip"), 443),
        edge(workload("web"), workload("db", kind="Deploy ment"), 5432),
    ]
    good = edge(workload("web"), workload("db"), 5432, count=3)
    with EdgeStore() as store:
        result = store.merge([*bad, good], "node-1")
        assert (result.accepted, result.rejected) == (1, len(bad))
        reasons = dict(result.rejections)
        assert sorted(reasons) == list(range(len(bad)))
        for index, words in enumerate([
            "ahead of the mapper's clock", "older than the report window", "count", "port 70000",
            "workload.namespace 'Shop' is not a valid DNS-1123 label", "service.name '1db' is not a valid DNS-1035",
            "pod 'pod_1'", "DNS name 'bad name.example.com'", "invalid IP address 'not-an-ip'", "workload.kind",
        ]):
            assert words in reasons[index], (index, reasons[index])
        assert [(summary(e), e.count) for e in store.list()] == [(("web.shop", "db.shop", 5432), 3)]


def test_bad_node_names_and_oversized_batches_are_refused() -> None:
    with EdgeStore(limits=IngestLimits(max_edges=3)) as store:
        assert store.merge([edge(workload("a"), workload("b"))], "Node 1").error.startswith("node name")
        result = store.merge([edge(workload("a"), workload("b"), port) for port in range(1, 6)], "node-1")
        assert (result.accepted, result.rejected) == (3, 2)
        assert [i for i, _ in result.rejections] == [3, 4]
        assert "more than 3 edges" in result.rejections[0][1]


def test_counts_saturate_instead_of_overflowing_64_bits() -> None:
    with EdgeStore(limits=IngestLimits(max_count=2**64 - 1)) as store:
        for _ in range(3):
            store.merge([edge(workload("a"), workload("b"), count=2**62)], "n")
        assert store.list()[0].count == MAX_STORED_COUNT


def test_the_stalest_edges_are_evicted_and_counted_at_the_maximum() -> None:
    with EdgeStore(max_edges=100) as store:
        for i in range(150):
            store.merge([edge(workload("a"), workload("b"), 1000 + i, first=T0 + i)], "n")
        ports = sorted(e.port for e in store.list())
        assert len(ports) <= 100 and ports[-1] == 1149
        evicted = 150 - len(ports)
        assert ports[0] == 1000 + evicted  # exactly the stalest went
        lost = {e.source: e.count for e in store.lost_totals()}
        assert lost == {edge_pb2.LOST_SOURCE_MAPPER_EVICTED: evicted} and store.evicted == evicted


def test_evicted_edges_do_not_come_back_after_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    store = EdgeStore(db, max_edges=10, flush_interval=3600)  # no periodic checkpoint during the test
    for i in range(10):
        store.merge([edge(workload("a"), workload("b"), 1000 + i, first=T0 + i)], "n")
    store.flush()  # the ten are in the file; the batches that made them leave the journal
    for i in range(10, 13):  # journaled as the server does (raw bytes): durable without a checkpoint
        raw = mapper_pb2.ReportEdgesRequest(node="n", edges=[edge(workload("a"), workload("b"), 1000 + i,
                                                                  first=T0 + i)]).SerializeToString()
        assert store.wait_durable(store.merge(None, "n", raw=raw))
    assert store.evicted == 3
    for _ in range(400):  # the eviction asked for a checkpoint: wait (bounded) until the file shows it
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT count(*) FROM edges").fetchone()[0] == 10:
                break
        time.sleep(0.05)
    # A crash now (no close), and a restart with a higher limit: what was evicted stays forgotten (a replay
    # of the journal into a store with room would not evict it again).
    reopened = EdgeStore(db)
    try:
        assert sorted(e.port for e in reopened.list()) == list(range(1003, 1013))
    finally:
        reopened.close()


@pytest.fixture()
def mapper() -> Iterator[MapperServer]:
    server = serve("127.0.0.1:0")
    yield server
    server.stop(grace=0)


def test_a_stream_goes_on_after_refused_edges_and_the_cli_still_works(mapper: MapperServer) -> None:
    """The issue's case: one edge dated in the year 10000 used to break `netmapper edges` for everyone."""
    future = year_10000()
    batches = [
        mapper_pb2.ReportEdgesRequest(node="node-1", sequence=1, edges=[future]),
        mapper_pb2.ReportEdgesRequest(node="node-1", sequence=2, edges=[edge(workload("web"), workload("db"), 5432)]),
    ]
    with grpc.insecure_channel(mapper.address, options=client_channel_options()) as ch:
        acks = list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(iter(batches), timeout=30))
    assert [(a.sequence, a.accepted, a.rejected) for a in acks] == [(1, 0, 1), (2, 1, 0)]
    assert acks[0].rejections[0].index == 0 and "ahead of the mapper's clock" in acks[0].rejections[0].reason
    run = subprocess.run([sys.executable, "-m", "netmapper.cli.main", "edges", "--mapper", mapper.address],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "shop/web" in run.stdout
    assert time.gmtime(mapper.store.list()[0].last_seen.seconds).tm_year < 10000


def test_streams_beyond_the_maximum_are_refused_and_idle_ones_end() -> None:
    server = serve("127.0.0.1:0", max_streams=1, idle_timeout=1.0)
    try:
        with grpc.insecure_channel(server.address) as ch:
            stub = mapper_pb2_grpc.MapperStub(ch)
            hold = threading.Event()

            def quiet() -> Iterator[mapper_pb2.ReportEdgesRequest]:
                yield mapper_pb2.ReportEdgesRequest(node="node-1", sequence=1,
                                                    edges=[edge(workload("a"), workload("b"))])
                hold.wait(60)  # then silence: the mapper ends the stream

            first = stub.ReportEdges(quiet(), timeout=60)
            assert next(first).accepted == 1
            second = stub.ReportEdges(iter([mapper_pb2.ReportEdgesRequest(node="node-2", sequence=1)]), timeout=30)
            with pytest.raises(grpc.RpcError) as refused:
                list(second)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            with pytest.raises(grpc.RpcError) as ended:
                list(first)
            assert ended.value.code() == grpc.StatusCode.CANCELLED  # type: ignore[attr-defined]
            hold.set()
            # The slot is free again (released as the RPC ends; a few tries cover the teardown's last step).
            for attempt in range(20):
                try:
                    again = stub.ReportEdges(iter([mapper_pb2.ReportEdgesRequest(node="node-2", sequence=1)]),
                                             timeout=30)
                    assert [a.sequence for a in again] == [1]
                    break
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and attempt < 19  # type: ignore[attr-defined]
                    time.sleep(0.1)
    finally:
        server.stop(grace=0)


def test_a_quiet_sniffer_closes_its_stream_before_the_mapper_ends_it() -> None:
    from sniffer.reporter import Reporter

    server = serve("127.0.0.1:0", idle_timeout=1.0)
    reporter = Reporter(server.address, "node-1", idle_close=0.3)
    reporter.start()
    try:
        for port in (1, 2):
            assert reporter.offer([edge(workload("a"), workload("b"), port)])
            assert reporter.flush(timeout=30)
            time.sleep(2.5)  # quiet for longer than the mapper's idle timeout
        assert reporter.stats.batches_acked == 2
        assert reporter.stats.send_failures == 0  # no stream was cut under it: it closed its own
    finally:
        reporter.stop()
        server.stop(grace=0)
    assert sorted(e.port for e in server.store.list()) == [1, 2]
