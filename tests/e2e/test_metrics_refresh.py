"""Sniffer and mapper processes with --metrics-listen: both scraped over HTTP; and --refresh: a known edge is
not re-sent on every connect, its connects are kept and arrive at the next refresh (here: shutdown)."""
from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netmapper.client import MapperError, list_edges
from netmapper.demo.netns import Host, NetLab
from netmapper.demo.run import free_port

pytestmark = pytest.mark.bpf

SNAPSHOT = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web-0, namespace: team-m, uid: u-web, labels: {app: web}, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: web, controller: true}]}
  status: {podIP: 10.246.0.10, podIPs: [{ip: 10.246.0.10}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: db-0, namespace: team-m, uid: u-db, labels: {app: db}, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, controller: true}]}
  status: {podIP: 10.246.0.11, podIPs: [{ip: 10.246.0.11}]}
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "netmapper.cli.main", *args]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def wait_for(check, tries: int = 200) -> None:  # type: ignore[no-untyped-def]
    """Poll `check` a bounded number of times (0.1 s apart); no wall-clock assertion."""
    import time

    for _ in range(tries):
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met")


@pytest.fixture
def lab(require_bpf: None) -> Iterator[dict[str, Host]]:
    with NetLab("nmmetr", subnet4="10.246.0.0/24") as lab:
        yield {"web": lab.add_host("web", ipv4="10.246.0.10"), "db": lab.add_host("db", ipv4="10.246.0.11")}


def connect(client: Host, host: str, port: int, count: int) -> None:
    subprocess.run(client.exec(sys.executable, "-m", "netmapper.demo.traffic", "call", host, str(port), str(count)),
                   check=False, timeout=60)


def test_both_daemons_serve_metrics_and_refresh_holds_known_edges(lab: dict[str, Host], tmp_path: Path) -> None:
    snapshot = tmp_path / "cluster.yaml"
    snapshot.write_text(SNAPSHOT)
    addr, ready = f"127.0.0.1:{free_port()}", tmp_path / "ready"
    mapper_metrics, sniffer_metrics = free_port(), free_port()
    server = lab["db"].popen(sys.executable, "-m", "netmapper.demo.traffic", "serve", "5432", "--lifetime", "120")
    mapper = subprocess.Popen(cli("mapper", "serve", "--listen", addr, "--metrics-listen",
                                  f"127.0.0.1:{mapper_metrics}"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sniffer = subprocess.Popen(cli("sniffer", "run", "--mapper", addr, "--snapshot", str(snapshot), "--node", "n1",
                                   "--interval", "0.3", "--refresh", "3600", "--ready-file", str(ready),
                                   "--metrics-listen", f"127.0.0.1:{sniffer_metrics}"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def web_db() -> int:
        try:
            edges = list_edges(addr).edges
        except MapperError:
            return -1
        return sum(e.count for e in edges if e.server.workload.name == "db" and e.server.workload.namespace == "team-m")

    try:
        wait_for(ready.exists, 600)
        connect(lab["web"], "10.246.0.11", 5432, 5)
        wait_for(lambda: web_db() == 5)
        before = scrape(sniffer_metrics)
        connect(lab["web"], "10.246.0.11", 5432, 4)  # a known edge: counted, held until its refresh
        cycles = before[("netmapper_sniffer_drain_seconds_count", ())]
        wait_for(lambda: scrape(sniffer_metrics)[("netmapper_sniffer_drain_seconds_count", ())] >= cycles + 5)
        assert web_db() == 5

        s = scrape(sniffer_metrics)
        assert s[("netmapper_sniffer_connects_total", ())] >= 9
        assert s[("netmapper_sniffer_index_objects", (("kind", "Pod"),))] == 2
        assert 0 <= s[("netmapper_sniffer_map_fill_ratio", ())] <= 1
        assert s[("netmapper_sniffer_edges_known", ())] >= 1
        assert s[("netmapper_sniffer_edges_pending", ())] >= 1  # the held web -> db connects
        assert ("netmapper_sniffer_dns_replies_rejected_total", (("reason", "untrusted_server"),)) in s
        assert s[("netmapper_sniffer_batches_acked_total", ())] >= 1

        m = scrape(mapper_metrics)
        assert m[("netmapper_mapper_edges_merged_total", ())] >= 1
        assert m[("netmapper_mapper_edges_stored", ())] >= 1
        assert m[("netmapper_mapper_node_last_report_timestamp_seconds", (("node", "n1"),))] > 0
        assert m[("netmapper_mapper_store_commit_seconds_count", ())] >= 1

        sniffer.terminate()  # shutdown sends what is held: nothing was lost by waiting
        sniffer.wait(timeout=30)
        assert web_db() == 9
    finally:
        server.kill()
        for proc in (sniffer, mapper):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
