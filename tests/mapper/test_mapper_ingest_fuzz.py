"""Fuzz ReportEdges on a real mapper (hypothesis): random and mutated batches, valid ones among them.

Each example goes over gRPC to a running mapper with a sqlite file. Per example: the stream is
answered (an ack whose accepted + rejected covers every edge, or INVALID_ARGUMENT for bytes that are not
a request) and the mapper keeps serving. Afterwards: every stored edge passes the ingest checks,
ListEdges works, and the CLI's `netmapper edges` (table and JSON) and `netmapper export` succeed,
also after a restart from the file.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_testing import T0, edge, internet, node, service, unresolved, workload
from mapper.edge_view import report_views
from mapper.server import MapperServer, serve
from mapper.validation import NS_PER_S, IngestLimits, check_endpoint, check_numbers
from netmapper_api import keys
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc

NAMES = st.one_of(
    st.sampled_from(["web", "db", "cart", "redis-0", "a.b", "kube-system", "", "-bad", "UPPER", "x" * 64,
                     "x" * 254, "dots..", "ünï", "a\0b", "a b", "default"]),
    st.text(max_size=20),
)
IPS = st.one_of(st.sampled_from(["10.0.0.1", "::1", "fe80::1", "10.0.0.256", "", "example.com", "1.2.3.4"]),
                st.text(max_size=12))
DNS = st.one_of(st.sampled_from(["api.example.com", "_dmarc.example.com", "*.example.com", "a..b", "x" * 300,
                                 "EXAMPLE.com.", "bad name"]), st.text(max_size=15))
SECONDS = st.one_of(st.integers(T0 - 30 * 86400, T0 + 2 * 86400), st.sampled_from([0, -1, 253402300800, 2**40]),
                    st.integers(-(2**62), 2**62))


@st.composite
def endpoints(draw: st.DrawFn) -> edge_pb2.Endpoint:
    kind = draw(st.integers(0, 7))
    builders = {
        1: lambda: workload(draw(NAMES) or "w", draw(NAMES) or "ns", draw(st.sampled_from(["Deployment", "", "bad kind"])),
                            pod=draw(NAMES), ip=draw(IPS),
                            service=draw(st.none() | st.tuples(NAMES, NAMES)), dns=tuple(draw(st.lists(DNS, max_size=3)))),
        2: lambda: service(draw(NAMES), draw(NAMES), ip=draw(IPS)),
        3: lambda: node(draw(NAMES), draw(IPS)),
        4: lambda: internet(draw(IPS), *draw(st.lists(DNS, max_size=70))),
        5: lambda: unresolved(draw(IPS)),
    }
    if kind in builders:
        return builders[kind]()
    return edge_pb2.Endpoint(kind=kind, ip=draw(IPS))  # type: ignore[arg-type]


@st.composite
def edges(draw: st.DrawFn) -> edge_pb2.Edge:
    if draw(st.booleans()):  # a valid edge, so the store fills up and merges happen
        e = edge(workload(draw(st.sampled_from(["web", "api", "batch"]))), workload(draw(st.sampled_from(["db", "cache"]))),
                 draw(st.integers(1, 65535)), count=draw(st.integers(1, 1000)))
        return e
    e = edge_pb2.Edge(client=draw(endpoints()), server=draw(endpoints()), port=draw(st.integers(0, 2**32 - 1)),
                      protocol=draw(st.integers(0, 9)), count=draw(st.integers(0, 2**64 - 1)))  # type: ignore[arg-type]
    e.first_seen.seconds, e.first_seen.nanos = draw(SECONDS), draw(st.integers(-(2**31), 2**31 - 1))
    e.last_seen.seconds, e.last_seen.nanos = draw(SECONDS), draw(st.integers(-(2**31), 2**31 - 1))
    e.reporting_nodes.extend(draw(st.lists(NAMES, max_size=3)))
    return e


NANOS = st.one_of(st.integers((T0 - 30 * 86400) * NS_PER_S, (T0 + 2 * 86400) * NS_PER_S), st.sampled_from([0, -1]),
                  st.integers(-(2**63), 2**63 - 1))


@st.composite
def columns(draw: st.DrawFn) -> mapper_pb2.EdgeColumns:
    """EdgeColumns as sniffers send them, with wild numbers and sometimes columns of different lengths."""
    cols = mapper_pb2.EdgeColumns()
    for e in draw(st.lists(edges(), max_size=8)):
        key = cols.keys.add()
        key.CopyFrom(e)
        if draw(st.booleans()):  # a key as sniffers send it: no numbers inside
            key.ClearField("first_seen"), key.ClearField("last_seen"), key.ClearField("count")
        valid = draw(st.booleans()) and abs(e.first_seen.seconds) < 2**33
        first = e.first_seen.seconds * NS_PER_S if valid else draw(NANOS)
        cols.first_seen_ns.append(first)
        cols.last_seen_ns.append(first if valid else draw(NANOS))
        cols.counts.append(e.count if valid else draw(st.integers(0, 2**64 - 1)))
    if cols.keys and draw(st.integers(0, 9)) == 0:
        del cols.counts[-1]
    return cols


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    req = mapper_pb2.ReportEdgesRequest(node=draw(st.sampled_from(["node-1", "node-2", "", "Bad Node", "x" * 300])),
                                        edges=draw(st.lists(edges(), max_size=8)),
                                        instance=draw(st.sampled_from(["", "run-a", "run-b"])),
                                        sequence=draw(st.one_of(st.integers(0, 5), st.integers(0, 2**64 - 1))))
    if draw(st.booleans()):
        req.columns.CopyFrom(draw(columns()))
    raw = req.SerializeToString()
    if draw(st.booleans()) and raw:  # mutate bytes: flip, cut, insert
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.integers(0, 2))
            pos = draw(st.integers(0, max(0, len(data) - 1)))
            if op == 0 and data:
                data[pos] ^= draw(st.integers(1, 255))
            elif op == 1:
                del data[pos:pos + draw(st.integers(1, 8))]
            else:
                data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        raw = bytes(data)
    return raw


@pytest.fixture()
def mapper(tmp_path: Path) -> Iterator[MapperServer]:
    server = serve("127.0.0.1:0", tmp_path / "edges.db")
    yield server
    server.stop(grace=0)


def send(address: str, raw: bytes) -> tuple[mapper_pb2.ReportEdgesResponse | None, grpc.StatusCode | None]:
    with grpc.insecure_channel(address, options=client_channel_options()) as ch:
        call = ch.stream_stream("/netmapper.v1.Mapper/ReportEdges", request_serializer=lambda b: b,
                                response_deserializer=mapper_pb2.ReportEdgesResponse.FromString)
        try:
            acks = list(call(iter([raw]), timeout=30))
        except grpc.RpcError as e:
            return None, e.code()  # type: ignore[attr-defined]
    assert len(acks) == 1
    return acks[0], None


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netmapper.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def assert_store_valid(stored: list[edge_pb2.Edge]) -> None:
    limits = IngestLimits()
    lo, hi = limits.window_ns(time.time_ns())
    for e in stored:
        keys.edge_key(e)  # raises for an edge without a usable identity
        for side, ep in (("client", e.client), ("server", e.server)):
            check_endpoint(ep, side, limits)
        first, last = e.first_seen.ToNanoseconds(), e.last_seen.ToNanoseconds()
        assert not check_numbers(e, first, last, lo - 60 * NS_PER_S, hi, limits), e
        assert 0 < e.count < 2**63
        e.last_seen.ToDatetime()  # what `netmapper edges` prints; year 10000 used to break it


def test_random_and_mutated_reports_leave_only_valid_edges_and_working_queries(mapper: MapperServer, tmp_path: Path) -> None:
    outcomes = {"acked": 0, "undecodable": 0, "accepted": 0}

    @settings(max_examples=int(os.environ.get("NETMAPPER_FUZZ_EXAMPLES", "150")), deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(raw=batches())
    def one_report(raw: bytes) -> None:
        ack, code = send(mapper.address, raw)
        if ack is None:
            assert code == grpc.StatusCode.INVALID_ARGUMENT  # bytes that are no ReportEdgesRequest
            outcomes["undecodable"] += 1
            return
        # Edges are read the way the mapper reads them: an endpoint that is not a valid Endpoint message
        # costs its own edge (refused with a reason), not the whole batch.
        views, cols = report_views(raw)
        reported = len(views) + (len(cols.keys) if cols is not None else 0)
        outcomes["acked"] += 1
        outcomes["accepted"] += ack.accepted
        if ack.duplicate:
            assert ack.accepted == ack.rejected == 0
        else:
            assert ack.accepted + ack.rejected == reported
            assert len(ack.rejections) == min(ack.rejected, 100)
            assert all(r.reason for r in ack.rejections)

    one_report()
    assert outcomes["acked"] and outcomes["accepted"]  # the fuzz did reach the store, not only the parser
    with grpc.insecure_channel(mapper.address, options=client_channel_options()) as ch:
        stored = list(mapper_pb2_grpc.MapperStub(ch).ListEdges(mapper_pb2.ListEdgesRequest(), timeout=30).edges)
    assert stored
    assert_store_valid(stored)
    for args in (("edges",), ("edges", "--format", "json"), ("export",)):
        run = cli(*args, "--mapper", mapper.address)
        assert run.returncode == 0 and "Traceback" not in run.stderr, (args, run.stderr[-2000:])
    # The same after a restart from the file.
    db = tmp_path / "edges.db"
    mapper.stop(grace=0)
    restarted = serve("127.0.0.1:0", db)
    try:
        assert len(restarted.store) == len(stored)
        assert_store_valid(restarted.store.list())
        assert cli("edges", "--mapper", restarted.address).returncode == 0
    finally:
        restarted.stop(grace=0)
