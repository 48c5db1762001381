"""Otterize CLI parity over a real mapper: `--exclude-labels` and `--distinct-by-label` on export and edges,
plus the mapper-side filters (`--client-namespace`, `--since`)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest
import yaml

from edge_testing import edge, workload
from mapper.server import MapperServer, serve
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netmapper.cli.main", *args], capture_output=True, text=True,
                          timeout=60)


def _pod(name: str, ns: str, **labels: str) -> edge_pb2.Endpoint:
    ep = workload(name, ns)
    ep.labels.update(labels)
    return ep


@pytest.fixture
def mapper() -> Iterator[MapperServer]:
    server = serve("127.0.0.1:0", None)
    now = time.time()
    edges = [
        # one application deployed into two namespaces, labelled by instance; identical calls
        edge(_pod("web", "prod-eu", instance="shop"), _pod("api", "prod-eu", instance="shop"), 80, last=now),
        edge(_pod("web", "prod-us", instance="shop"), _pod("api", "prod-us", instance="shop"), 80, last=now),
        # a second instance whose calls differ
        edge(_pod("web", "staging", instance="shop"), _pod("api", "staging"), 80, last=now),
        edge(_pod("web", "staging", instance="shop"), _pod("debug", "staging"), 9000, last=now),
        # a canary that must not end up in the intents
        edge(_pod("web", "prod-eu", instance="shop", track="canary"), _pod("cache", "prod-eu"), 6379, last=now - 7200),
    ]
    with grpc.insecure_channel(server.address) as ch:
        list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(
            iter([mapper_pb2.ReportEdgesRequest(node="n", sequence=1, edges=edges)]), timeout=10))
    yield server
    server.stop(grace=None)


def test_export_excludes_labelled_pods_and_collapses_copies_by_label(mapper: MapperServer) -> None:
    plain = cli("export", "--mapper", mapper.address)
    assert plain.returncode == 0, plain.stderr
    assert "cache" in plain.stdout
    run = cli("export", "--mapper", mapper.address, "--exclude-labels", "track=canary",
              "--distinct-by-label", "instance")
    assert run.returncode == 0, run.stderr
    docs = [d for d in yaml.safe_load_all(run.stdout) if d]
    # prod-eu's document stands for prod-us (same calls); staging differs: dropped with a warning.
    assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs] == [("prod-eu", "web")]
    assert docs[0]["spec"]["targets"] == [{"kubernetes": {"name": "api", "kind": "Deployment"}}]
    assert "differ" in run.stderr and "staging" in run.stderr and "Traceback" not in run.stderr


def test_edges_lists_with_label_and_side_filters(mapper: MapperServer) -> None:
    def rows(*flags: str) -> list[tuple[str, str, int]]:
        run = cli("edges", "--mapper", mapper.address, "--format", "json", *flags)
        assert run.returncode == 0, run.stderr
        return [(e["client"]["workload"]["namespace"], e["server"]["workload"]["name"], e["port"])
                for e in json.loads(run.stdout)]

    assert ("prod-eu", "cache", 6379) not in rows("--exclude-labels", "track")
    assert rows("--client-namespace", "staging") == [("staging", "api", 80), ("staging", "debug", 9000)]
    assert ("prod-eu", "cache", 6379) not in rows("--since", "30m")
    assert rows("--distinct-by-label", "instance", "--server-namespace", "prod-eu", "--server-namespace",
                "prod-us") == [("prod-eu", "api", 80), ("prod-eu", "cache", 6379)]
    bad = cli("edges", "--mapper", mapper.address, "--since", "soon")
    assert bad.returncode == 1 and bad.stderr.startswith("netmapper edges: invalid duration")
    bad = cli("edges", "--mapper", mapper.address, "--label", "=x")
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "Traceback" not in bad.stderr


def test_mapper_serve_reports_an_unreachable_database_in_one_line() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = cli("mapper", "serve", "--listen", "127.0.0.1:0", "--db", f"postgresql://nm:secret@127.0.0.1:{port}/x")
    assert run.returncode == 1
    assert run.stderr.startswith("netmapper mapper: cannot use PostgreSQL at ")
    assert "Traceback" not in run.stderr and "secret" not in run.stderr


def test_edges_watch_prints_the_current_set_then_each_change(mapper: MapperServer) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "edges", "--mapper", mapper.address,
                             "--watch", "--format", "json", "--client-namespace", "staging"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = [json.loads(proc.stdout.readline()) for _ in range(2)]  # staging's two edges
        assert {e["server"]["workload"]["name"] for e in first} == {"api", "debug"}
        assert "2 edges so far" in proc.stderr.readline()
        with grpc.insecure_channel(mapper.address) as ch:
            list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(iter([mapper_pb2.ReportEdgesRequest(
                node="n", sequence=2, edges=[edge(_pod("web", "staging"), _pod("queue", "staging"), 5672)])]),
                timeout=10))
        change = json.loads(proc.stdout.readline())
        assert (change["server"]["workload"]["name"], change["port"]) == ("queue", 5672)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
