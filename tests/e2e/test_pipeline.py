"""Sniffer and mapper as separate processes: a mapper that is down when traffic happens loses nothing,
and `netmapper edges` / `netmapper export` read what the sniffer saw."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from netmapper.intents.crd import ClientIntentsValidator
from netmapper.client import MapperError, list_edges
from netmapper.demo.run import free_port
from netmapper.demo.netns import Host, NetLab

pytestmark = pytest.mark.bpf

SNAPSHOT = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web-0, namespace: team-a, uid: u-web, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: web, controller: true}]}
  status: {podIP: 10.245.0.10, podIPs: [{ip: 10.245.0.10}, {ip: "fd00:245::a"}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: db-0, namespace: team-b, uid: u-db, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, controller: true}]}
  status: {podIP: 10.245.0.11, podIPs: [{ip: 10.245.0.11}, {ip: "fd00:245::b"}]}
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "netmapper.cli.main", *args]


@pytest.fixture
def lab(require_bpf: None) -> Iterator[dict[str, Host]]:
    with NetLab("nmpipe", subnet4="10.245.0.0/24", subnet6="fd00:245::/64") as lab:
        yield {"web": lab.add_host("web", ipv4="10.245.0.10", ipv6="fd00:245::a"),
               "db": lab.add_host("db", ipv4="10.245.0.11", ipv6="fd00:245::b")}


def connect(client: Host, host: str, port: int, count: int) -> None:
    subprocess.run(client.exec(sys.executable, "-m", "netmapper.demo.traffic", "call", host, str(port), str(count)),
                   check=False, timeout=60)


def wait_for(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


def test_mapper_down_during_traffic_loses_nothing(lab: dict[str, Host], tmp_path: Path) -> None:
    snapshot = tmp_path / "cluster.yaml"
    snapshot.write_text(SNAPSHOT)
    addr, ready = f"127.0.0.1:{free_port()}", tmp_path / "ready"
    server = lab["db"].popen(sys.executable, "-m", "netmapper.demo.traffic", "serve", "5432", "--lifetime", "120")
    sniffer = subprocess.Popen(cli("sniffer", "run", "--mapper", addr, "--snapshot", str(snapshot), "--node", "n1",
                                   "--interval", "0.3", "--ready-file", str(ready), "--no-dns"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    mapper = None
    try:
        wait_for(ready.exists, 60)
        time.sleep(0.3)
        connect(lab["web"], "10.245.0.11", 5432, 7)  # the mapper is not running yet
        connect(lab["web"], "fd00:245::b", 5432, 3)
        connect(lab["web"], "10.245.0.11", 5999, 2)  # refused: still an attempt the intents must allow
        time.sleep(1.5)  # several failed sends
        assert sniffer.poll() is None, "the sniffer must survive a mapper that is down"
        mapper = subprocess.Popen(cli("mapper", "serve", "--listen", addr), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)

        def team_b_edges() -> list:
            try:
                edges = list_edges(addr).edges
            except MapperError:
                return []
            return [e for e in edges if e.server.workload.namespace == "team-b"]

        wait_for(lambda: sum(e.count for e in team_b_edges()) >= 12, 20)
        edges = {(e.client.workload.name, e.server.workload.name, e.port): e.count for e in team_b_edges()}
        assert edges == {("web", "db", 5432): 10, ("web", "db", 5999): 2}

        table = subprocess.run(cli("edges", "--mapper", addr, "-n", "team-b", "--format", "json"),
                               capture_output=True, text=True, check=True).stdout
        assert {e["port"] for e in json.loads(table)} == {5432, 5999}
        exported = subprocess.run(cli("export", "--mapper", addr, "-n", "team-a"), capture_output=True, text=True,
                                  check=True).stdout
        (doc,) = [d for d in yaml.safe_load_all(exported) if d]
        assert doc["spec"] == {"workload": {"name": "web", "kind": "StatefulSet"},
                               "targets": [{"kubernetes": {"name": "db.team-b", "kind": "StatefulSet"}}]}
        assert ClientIntentsValidator().errors(doc) == []
    finally:
        server.kill()
        for proc in (sniffer, mapper):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


def test_cli_reports_an_unreachable_mapper_in_one_line() -> None:
    run = subprocess.run(cli("edges", "--mapper", f"127.0.0.1:{free_port()}"), capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.startswith("netmapper edges: mapper at 127.0.0.1:") and "UNAVAILABLE" in run.stderr
    assert "Traceback" not in run.stderr
