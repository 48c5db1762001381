"""PgEdgeStore against a real PostgreSQL server (tests/postgres_server.py): the SQLite store's merge rules,
durable acknowledgements, idempotent batches, and several replicas sharing one database."""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_testing import T0, edge, internet, node, service, summary, unresolved, workload
from mapper.pg_store import PgEdgeStore
from postgres_server import PostgresServer
from mapper.server import serve
from mapper.store import EdgeStore
from mapper.watch import watch
from netmapper_api.columns import to_columns
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgEdgeStore]:
    store = PgEdgeStore(pg_url)
    yield store
    store.close()


def _labelled(ep: edge_pb2.Endpoint, **labels: str) -> edge_pb2.Endpoint:
    ep.labels.update(labels)
    return ep


def _batches() -> list[tuple[str, list[edge_pb2.Edge]]]:
    """Reports from three nodes that overlap: the same keys with different pods, IPs, Services, names."""
    rnd = random.Random(7)
    out = []
    for i in range(12):
        node_name = f"node-{i % 3}"
        batch = [
            edge(_labelled(workload("frontend", pod=f"frontend-{rnd.randint(1, 4)}", ip=f"10.0.0.{rnd.randint(1, 9)}"),
                           app="frontend", pod=str(rnd.randint(1, 4))),
                 workload("cart", service=(f"cart-{rnd.randint(1, 3)}", "shop"), pod="cart-0"), 8080,
                 first=T0 + rnd.randint(0, 100), last=T0 + 200 + rnd.randint(0, 100), count=rnd.randint(1, 5)),
            edge(workload("cart"), workload("redis", kind="StatefulSet"), 6379, first=T0 + i, last=T0 + i),
            edge(workload("frontend"), internet("93.184.216.34", f"name-{rnd.randint(1, 20)}.example.com"), 443),
            edge(workload("reporter", "ops"), service("kubernetes", "default"), 443, count=2),
            edge(node("node-1"), workload("cart"), 8080),
            edge(unresolved("10.244.9.9"), workload("cart"), 8080 + i % 2),
            # values PostgreSQL array literals must quote: commas, braces, quotes, backslashes, spaces
            edge(_labelled(workload("odd"), note='a,b {c} "d" \\e f', empty=""), internet("192.0.2.1", "x.example"), 80),
        ]
        out.append((node_name, batch))
    return out


def test_merge_gives_the_same_edges_as_the_sqlite_store(pg: PgEdgeStore) -> None:
    sqlite = EdgeStore()
    for node_name, batch in _batches():
        assert pg.merge(batch, node_name) == sqlite.merge(batch, node_name)
    want = sqlite.list()
    got = pg.list()
    assert [summary(e) for e in got] == [summary(e) for e in want]
    assert got == want  # counts, times, nodes, example pod with its labels, bounded unions: all equal
    assert len(want) == 8


def test_batches_in_edge_columns_merge_as_in_the_sqlite_store(pg: PgEdgeStore) -> None:
    sqlite = EdgeStore()
    for node_name, batch in _batches():
        cut = len(batch) // 2
        req = mapper_pb2.ReportEdgesRequest(node=node_name, edges=batch[:cut], columns=to_columns(batch[cut:]))
        assert pg.merge(None, node_name, raw=req.SerializeToString()) == sqlite.merge(None, node_name,
                                                                                     raw=req.SerializeToString())
    assert pg.list() == sqlite.list()
    bad = mapper_pb2.ReportEdgesRequest(node="n", columns=to_columns([edge(workload("a"), workload("b"))]))
    del bad.columns.counts[:]
    result = pg.merge(None, "n", raw=bad.SerializeToString())
    assert (result.accepted, result.rejected) == (0, 1) and "differ in length" in result.error


def test_invalid_edges_are_rejected_with_a_reason_and_the_rest_merged(pg: PgEdgeStore) -> None:
    bad = edge(workload("a"), workload("b"), 8080)
    bad.port = 70000
    result = pg.merge([bad, edge(workload("a"), workload("b"), 80)], "n")
    assert (result.accepted, result.rejected) == (1, 1)
    assert "port" in result.error
    assert [summary(e) for e in pg.list()] == [("a.shop", "b.shop", 80)]


def test_an_acknowledged_batch_is_committed(pg_url: str) -> None:
    store = PgEdgeStore(pg_url)
    store.merge([edge(workload("a"), workload("b"), count=4)], "n")
    # Another connection, before this store does anything else: the row is already there.
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count FROM nm_edges").fetchall() == [(4,)]
    store.close()
    with PgEdgeStore(pg_url) as again:
        assert [e.count for e in again.list()] == [4]


def test_a_resent_batch_is_merged_once(pg: PgEdgeStore, pg_url: str) -> None:
    batch = [edge(workload("a"), workload("b"), count=3), edge(workload("a"), workload("c"), count=1)]
    assert pg.merge(batch, "n", batch=("sniffer-1", 7)).accepted == 2
    assert pg.merge(batch, "n", batch=("sniffer-1", 7)).accepted == 0  # resent: merged before
    with PgEdgeStore(pg_url) as other_replica:  # the resend may land on another replica
        assert other_replica.merge(batch, "n", batch=("sniffer-1", 7)).accepted == 0
        assert other_replica.merge(batch, "n", batch=("sniffer-1", 6)).accepted == 0  # older: merged too
    assert pg.merge(batch, "n", batch=("sniffer-1", 8)).accepted == 2  # the next batch counts
    assert pg.merge(batch, "n", batch=("sniffer-2", 7)).accepted == 2  # and so does another sniffer's
    assert pg.merge(batch, "n").accepted == 2  # no identity: at least once
    assert [e.count for e in pg.list()] == [12, 4]


def test_lost_events_are_shared_totals(pg: PgEdgeStore, pg_url: str) -> None:
    lost = edge_pb2.LostEvents(source=edge_pb2.LOST_SOURCE_RING_BUFFER, count=5)
    lost.first.FromSeconds(T0)
    lost.last.FromSeconds(T0 + 10)
    pg.record_lost([lost], "n1")
    with PgEdgeStore(pg_url) as other:
        other.record_lost([lost], "n2")
        totals = other.lost_totals()
    assert [(t.source, t.count, t.first.seconds, t.last.seconds) for t in pg.lost_totals()] == [
        (edge_pb2.LOST_SOURCE_RING_BUFFER, 10, T0, T0 + 10)]
    assert totals == pg.lost_totals()


def test_two_replicas_merging_concurrently_count_every_observation(pg_url: str) -> None:
    a, b = PgEdgeStore(pg_url), PgEdgeStore(pg_url)
    try:
        keys_ = [edge(workload(f"c{i % 5}"), workload(f"s{i % 7}"), 8000 + i % 3) for i in range(60)]
        errors: list[BaseException] = []

        def report(store: PgEdgeStore, node_name: str, seed: int) -> None:
            rnd = random.Random(seed)
            try:
                for _ in range(15):
                    batch = list(keys_)
                    rnd.shuffle(batch)  # overlapping keys in different orders: must not deadlock
                    result = store.merge(batch, node_name)
                    assert result.rejected == 0
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                errors.append(exc)

        threads = [threading.Thread(target=report, args=(store, f"n{i}", i))
                   for i, store in enumerate((a, b, a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        got_a, got_b = a.list(), b.list()
        assert got_a == got_b
        distinct = {summary(e) for e in keys_}
        per_key = {k: sum(1 for e in keys_ if summary(e) == k) for k in distinct}
        assert {summary(e): e.count for e in got_a} == {k: n * 15 * 4 for k, n in per_key.items()}
        assert {tuple(e.reporting_nodes) for e in got_a} == {("n0", "n1", "n2", "n3")}
    finally:
        a.close()
        b.close()


def _next_event(stream: Iterator[bytes]) -> mapper_pb2.WatchEdgesResponse:
    return mapper_pb2.WatchEdgesResponse.FromString(next(stream))


def test_a_watcher_on_one_replica_sees_edges_merged_on_another(pg_url: str) -> None:
    a, b = PgEdgeStore(pg_url), PgEdgeStore(pg_url)
    try:
        a.merge([edge(workload("a"), workload("b"))], "n")
        # Bounded: the stream ends after this many polls of at most 1 s without news.
        polls = iter(range(30))
        stream = watch(b, mapper_pb2.WatchEdgesRequest(), lambda: next(polls, None) is not None)
        first = _next_event(stream)
        assert summary(first.edge) == ("a.shop", "b.shop", 8080)
        synced = _next_event(stream)
        assert synced.synced.edges == 1 and synced.resume_token
        a.merge([edge(workload("a"), workload("c"), count=2)], "n")
        change = _next_event(stream)
        assert summary(change.edge) == ("a.shop", "c.shop", 8080) and change.edge.count == 2
        # Resuming on the other replica from the synced token replays only what changed after it.
        resumed = watch(a, mapper_pb2.WatchEdgesRequest(resume_token=synced.resume_token), lambda: True)
        assert summary(_next_event(resumed).edge) == ("a.shop", "c.shop", 8080)
        assert _next_event(resumed).synced.edges == 1
        # A reset on one replica reaches the other replica's watcher as forgotten, then the (empty) set.
        a.reset()
        assert _next_event(stream).HasField("forgotten")
        assert _next_event(stream).synced.edges == 0
        assert b.list() == []
    finally:
        a.close()
        b.close()


def test_pages_under_concurrent_writes_return_every_existing_edge_once(pg: PgEdgeStore) -> None:
    pg.merge([edge(workload(f"c{i:02d}"), workload("s"), 80) for i in range(0, 50, 2)], "n")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = mapper_pb2.ListEdgesResponse.FromString(pg.list_response_bytes(page_size=7, page_token=token))
        seen += [e.client.workload.name for e in resp.edges]
        pages += 1
        # Writers between pages: new edges before and after the cursor, and changes to listed ones.
        pg.merge([edge(workload(f"c{pages * 2 + 1:02d}"), workload("s"), 80),
                  edge(workload("c00"), workload("s"), 80)], "n")
        token = resp.next_page_token
        if not token:
            break
    existing = [f"c{i:02d}" for i in range(0, 50, 2)]
    assert [n for n in seen if n in existing] == existing  # each exactly once, in order
    assert len(seen) == len(set(seen))
    assert "c03" not in seen  # created behind the cursor: not in this listing (WatchEdges has it)


def test_two_mapper_servers_on_one_database_serve_one_map(pg_url: str) -> None:
    a, b = serve("127.0.0.1:0", pg_url), serve("127.0.0.1:0", pg_url)
    try:
        with grpc.insecure_channel(a.address, options=client_channel_options()) as ca, \
                grpc.insecure_channel(b.address, options=client_channel_options()) as cb:
            stub_a, stub_b = mapper_pb2_grpc.MapperStub(ca), mapper_pb2_grpc.MapperStub(cb)
            watch_b = stub_b.WatchEdges(mapper_pb2.WatchEdgesRequest(), timeout=30)
            assert next(watch_b).synced.edges == 0
            acks = list(stub_a.ReportEdges(iter([mapper_pb2.ReportEdgesRequest(
                node="n1", sequence=1, edges=[edge(workload("a"), workload("b"), count=3)])]), timeout=30))
            assert acks[0].accepted == 1
            # Acknowledged by A = visible on B at once (B's read model refreshes before answering).
            listed = stub_b.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=30)
            assert [(summary(e), e.count) for e in listed.edges] == [(("a.shop", "b.shop", 8080), 3)]
            change = next(watch_b)
            assert summary(change.edge) == ("a.shop", "b.shop", 8080) and change.edge.count == 3
            watch_b.cancel()
    finally:
        a.stop(grace=None)
        b.stop(grace=None)


def test_a_database_outage_is_unavailable_never_an_acknowledgement(postgres: PostgresServer) -> None:
    server = PostgresServer()  # a server of its own: this test stops it
    try:
        server.start()  # the session's server (the fixture) proves this machine can
        mapper = serve("127.0.0.1:0", server.new_database())
        batch = mapper_pb2.ReportEdgesRequest(node="n1", sequence=1, edges=[edge(workload("a"), workload("b"))])
        try:
            with grpc.insecure_channel(mapper.address, options=client_channel_options()) as ch:
                stub = mapper_pb2_grpc.MapperStub(ch)
                server.pause()
                with pytest.raises(grpc.RpcError) as err:
                    list(stub.ReportEdges(iter([batch]), timeout=30))
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # no ack: the sniffer keeps the batch
                with pytest.raises(grpc.RpcError) as err:
                    stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=30)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                server.start()
                # The pool reconnects (with its own backoff): resent as a sniffer does, a bounded number of
                # times, the batch is taken once and the mapper serves again.
                acks: list[mapper_pb2.ReportEdgesResponse] = []
                for _ in range(20):
                    try:
                        acks = list(stub.ReportEdges(iter([batch]), timeout=30))
                        break
                    except grpc.RpcError as e:
                        assert e.code() == grpc.StatusCode.UNAVAILABLE
                        time.sleep(0.5)
                assert acks and acks[0].accepted == 1
                assert [summary(e) for e in stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=30).edges] == [
                    ("a.shop", "b.shop", 8080)]
        finally:
            mapper.stop(grace=None)
    finally:
        server.stop()


_names = st.sampled_from(["a", "b", "c"])
_endpoints = st.one_of(
    st.builds(lambda n, pod, svc, lab: _labelled(workload(n, pod=pod, service=svc), **lab),
              _names, st.sampled_from(["", "p-1", "p-2"]), st.sampled_from([None, ("s1", "shop"), ("s2", "shop")]),
              st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["x", "y"]), max_size=2)),
    st.builds(lambda ip, names: internet(ip, *names), st.sampled_from(["192.0.2.1", "192.0.2.2"]),
              st.lists(st.sampled_from(["x.example", "y.example", "z.example"]), max_size=2)),
)
_edges = st.builds(lambda c, s, port, count, t: edge(c, s, port, first=T0 + t, last=T0 + t + 5, count=count),
                   _endpoints, _endpoints, st.sampled_from([80, 443]), st.integers(1, 5), st.integers(0, 100))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.tuples(st.sampled_from(["n1", "n2"]), st.lists(_edges, min_size=1, max_size=6)),
                        min_size=1, max_size=5))
def test_any_reports_merge_to_what_the_sqlite_store_holds(pg_url: str,
                                                          batches: list[tuple[str, list[edge_pb2.Edge]]]) -> None:
    sqlite = EdgeStore()
    with PgEdgeStore(pg_url) as pg:
        pg.reset()
        for node_name, batch in batches:
            assert pg.merge(batch, node_name) == sqlite.merge(batch, node_name)
        assert pg.list() == sqlite.list()
