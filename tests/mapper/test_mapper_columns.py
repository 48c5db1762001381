"""EdgeColumns, the form sniffers report in: the store merges it exactly as the same edges sent as Edge
messages, refuses what is wrong per edge, and keeps what it acknowledged across a crash."""
from __future__ import annotations

import random
import time
from pathlib import Path

import grpc

from edge_testing import T0, edge, internet, workload
from mapper.server import serve
from mapper.store import EdgeStore
from netmapper_api.columns import to_columns
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc


def _random_edges(rng: random.Random, n: int) -> list[edge_pb2.Edge]:
    """Edges over few keys, so that keys repeat with other pods, IPs, Services and DNS names."""
    out = []
    for _ in range(n):
        c = rng.randrange(4)
        client = workload(f"client-{c}", pod=f"client-{c}-{rng.randrange(3)}", ip=f"10.0.{c}.{rng.randrange(3) + 1}")
        if rng.random() < 0.3:
            server = internet(f"203.0.113.{rng.randrange(3) + 1}", *rng.sample(["a.example", "b.example", "c.example"], 2))
        else:
            s = rng.randrange(3)
            server = workload(f"server-{s}", pod=f"server-{s}-{rng.randrange(2)}", ip=f"10.1.{s}.1",
                              service=(f"svc-{rng.randrange(2)}", "shop"))
        first = T0 + rng.randrange(3600)
        out.append(edge(client, server, 8000 + rng.randrange(2), first=first, last=first + rng.randrange(100),
                        count=rng.randrange(1, 50)))
    return out


def _request(edges: list[edge_pb2.Edge], columns: list[edge_pb2.Edge], sequence: int = 0) -> bytes:
    req = mapper_pb2.ReportEdgesRequest(node="node-a", edges=edges, sequence=sequence, instance="inst" if sequence else "")
    if columns:
        req.columns.CopyFrom(to_columns(columns))
    return req.SerializeToString()


def test_columns_merge_exactly_as_the_same_edges_sent_as_messages() -> None:
    rng = random.Random(7)
    batches = [_random_edges(rng, rng.randrange(1, 40)) for _ in range(60)]
    as_edges, as_columns, mixed = EdgeStore(), EdgeStore(), EdgeStore()
    for i, batch in enumerate(batches):
        node = f"node-{i % 3}"
        assert as_edges.merge(None, node, raw=_request(batch, [])).accepted == len(batch)
        assert as_columns.merge(None, node, raw=_request([], batch)).accepted == len(batch)
        cut = len(batch) // 2
        assert mixed.merge(None, node, raw=_request(batch[:cut], batch[cut:])).accepted == len(batch)
    want = as_edges.list()
    assert len(want) > 10
    assert as_columns.list() == want
    assert mixed.list() == want


def test_bad_columns_are_refused_per_edge_with_their_index_after_the_edges() -> None:
    store = EdgeStore()
    good = edge(workload("web"), workload("db"), 5432)
    bad_port = edge(workload("web"), workload("db"), 0)
    bad_name = edge(workload("Not_A_Name"), workload("db"), 5432)
    too_many = edge(workload("web"), workload("cache"), 6379, count=10**12)
    future = edge(workload("web"), workload("queue"), 5672, first=time.time() + 86400)
    raw = _request([good], [bad_port, good, bad_name, too_many, future])
    result = store.merge(None, "node-a", raw=raw)
    assert (result.accepted, result.rejected) == (2, 4)
    reasons = dict(result.rejections)
    assert sorted(reasons) == [1, 3, 4, 5]  # columns' indexes start after the one Edge
    assert "port 0" in reasons[1] and "Not_A_Name" in reasons[3] and "count" in reasons[4]
    assert "ahead of the mapper's clock" in reasons[5]
    [stored] = store.list()
    assert stored.count == 2
    # A key refused once is refused again (nothing of it was cached), and garbage is refused, not raised.
    again = store.merge(None, "node-a", raw=_request([], [bad_name]))
    assert (again.accepted, again.rejected) == (0, 1)
    garbage = mapper_pb2.ReportEdgesRequest(node="node-a")
    garbage.columns.keys.add()  # an empty key: no client
    garbage.columns.first_seen_ns.append(T0 * 10**9)
    garbage.columns.last_seen_ns.append(T0 * 10**9)
    garbage.columns.counts.append(1)
    result = store.merge(None, "node-a", raw=garbage.SerializeToString() + b"\x32\x05\x0a\x03\xff\xff\xff")
    assert result.accepted == 0 and result.rejected >= 1


def test_columns_of_different_lengths_refuse_the_columns_only() -> None:
    store = EdgeStore()
    req = mapper_pb2.ReportEdgesRequest(node="node-a", edges=[edge(workload("web"), workload("db"))])
    req.columns.CopyFrom(to_columns([edge(workload("web"), workload("api")), edge(workload("web"), workload("cache"))]))
    del req.columns.counts[-1]
    result = store.merge(None, "node-a", raw=req.SerializeToString())
    assert (result.accepted, result.rejected) == (1, 2)
    assert [i for i, _ in result.rejections] == [1, 2] and "differ in length" in result.error


def test_a_forgotten_edge_reported_again_in_columns_starts_over() -> None:
    store = EdgeStore()
    raw = _request([], [edge(workload("web"), workload("db"), count=5)])
    store.merge(None, "node-a", raw=raw)
    store.merge(None, "node-a", raw=raw)
    assert [e.count for e in store.list()] == [10]
    store.reset()
    store.merge(None, "node-a", raw=raw)
    assert [e.count for e in store.list()] == [5]
    now = time.time()  # the expiry threshold: the edge was last seen (T0) before it
    assert store.expire(now) == 1
    assert store.list() == []
    result = store.merge(None, "node-a", raw=raw)
    assert result.accepted == 1 and len(result.new_edges) == 1  # a new record again, observers told
    assert [e.count for e in store.list()] == [5]


def test_new_edges_from_columns_are_reported_as_sent() -> None:
    store = EdgeStore()
    sent = edge(workload("web", pod="web-1", ip="10.0.0.1"), internet("203.0.113.9", "api.example"), 443,
                first=T0, last=T0 + 5, count=3)
    result = store.merge(None, "node-a", raw=_request([], [sent]))
    assert list(result.new_edges) == [sent]
    assert store.merge(None, "node-a", raw=_request([], [sent])).new_edges == ()


def test_columns_journaled_before_the_ack_come_back_after_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    rng = random.Random(3)
    batches = [_random_edges(rng, 20) for _ in range(10)]
    reference = EdgeStore()
    store = EdgeStore(db, flush_interval=3600)  # no checkpoint: everything is in the journal only
    for seq, batch in enumerate(batches, 1):
        raw = _request([], batch, seq)  # the identity is in the request, as the server journals it
        reference.merge(None, "node-a", raw=raw)
        assert store.wait_durable(store.merge(None, "node-a", batch=("inst", seq), raw=raw))
    # No close(): the process "dies" here; a second store opens the same files.
    reopened = EdgeStore(db)
    try:
        assert reopened.list() == reference.list()
        # A resend of an acknowledged batch after the restart is not merged twice.
        assert reopened.merge(None, "node-a", batch=("inst", 10), raw=_request([], batches[-1], 10)).duplicate
    finally:
        reopened.close()


def test_the_mapper_says_it_reads_columns_and_merges_them_over_grpc() -> None:
    with serve("127.0.0.1:0", None) as server:
        with grpc.insecure_channel(server.address, options=client_channel_options()) as ch:
            stub = mapper_pb2_grpc.MapperStub(ch)
            req = mapper_pb2.ReportEdgesRequest(node="node-a", sequence=1, instance="i-1")
            req.columns.CopyFrom(to_columns([edge(workload("web"), workload("db"), 5432, count=4)]))
            [ack] = list(stub.ReportEdges(iter([req]), timeout=10))
            assert (ack.sequence, ack.accepted, ack.rejected, ack.columns) == (1, 1, 0, True)
            [listed] = stub.ListEdges(mapper_pb2.ListEdgesRequest(), timeout=10).edges
            assert (listed.client.workload.name, listed.server.workload.name, listed.count) == ("web", "db", 4)
