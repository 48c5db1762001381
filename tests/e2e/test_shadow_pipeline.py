"""Shadow mode end to end: calls seen by the real eBPF sniffer in network namespaces, merged by the real
mapper, held against an intents folder by `netmapper diff`, fixed by `--write`, drawn by `visualize`."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
  metadata: {name: web-0, namespace: team-a, uid: u-web, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: web, controller: true}]}
  status: {podIP: 10.246.0.10}
- apiVersion: v1
  kind: Pod
  metadata: {name: db-0, namespace: team-b, uid: u-db, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, controller: true}]}
  status: {podIP: 10.246.0.11}
- apiVersion: v1
  kind: Pod
  metadata: {name: cache-0, namespace: team-b, uid: u-cache, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: cache, controller: true}]}
  status: {podIP: 10.246.0.12}
"""
INTENTS = """\
# team-a's intents, in Git
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: web, namespace: team-a}
spec:
  workload: {name: web, kind: StatefulSet}
  targets:
  - kubernetes: {name: db.team-b}   # the orders database
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netmapper.cli.main", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def lab(require_bpf: None) -> Iterator[dict[str, Host]]:
    with NetLab("nmshadow", subnet4="10.246.0.0/24", subnet6="fd00:246::/64") as lab:
        yield {"web": lab.add_host("web", ipv4="10.246.0.10"), "db": lab.add_host("db", ipv4="10.246.0.11"),
               "cache": lab.add_host("cache", ipv4="10.246.0.12")}


def wait_for(check, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached: {what}"
        time.sleep(0.1)


def test_diff_write_and_visualize_on_real_traffic(lab: dict[str, Host], tmp_path: Path) -> None:
    snapshot, ready, repo = tmp_path / "cluster.yaml", tmp_path / "ready", tmp_path / "intents"
    snapshot.write_text(SNAPSHOT)
    repo.mkdir()
    (repo / "web.yaml").write_text(INTENTS)
    addr = f"127.0.0.1:{free_port()}"
    servers = [lab["db"].popen(sys.executable, "-m", "netmapper.demo.traffic", "serve", "5432", "--lifetime", "120"),
               lab["cache"].popen(sys.executable, "-m", "netmapper.demo.traffic", "serve", "6379", "--lifetime", "120")]
    mapper = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen", addr],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sniffer = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "sniffer", "run", "--mapper", addr,
                                "--snapshot", str(snapshot), "--node", "n1", "--interval", "0.3",
                                "--ready-file", str(ready), "--no-dns"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(ready.exists, "sniffer ready", 60)
        for host, port in (("10.246.0.11", 5432), ("10.246.0.12", 6379)):
            subprocess.run(lab["web"].exec(sys.executable, "-m", "netmapper.demo.traffic", "call", host, str(port), "3"),
                           check=True, timeout=60)

        def seen() -> bool:
            try:
                return {e.server.workload.name for e in list_edges(addr).edges
                        if e.client.workload.namespace == "team-a"} >= {"db", "cache"}
            except MapperError:
                return False

        wait_for(seen, "both calls in the mapper")
        run = cli("diff", "--mapper", addr, "--intents", str(repo), "--format", "json")
        assert run.returncode == 1, run.stderr
        out = json.loads(run.stdout)
        mine = {k: [(e["client"]["name"], e["target"], e["port"]) for e in v if e["client"]["namespace"] == "team-a"]
                for k, v in out.items()}
        assert mine == {
            "covered": [("web", {"kubernetes": {"name": "db.team-b", "kind": "StatefulSet"}}, 5432)],
            "uncovered": [("web", {"kubernetes": {"name": "cache.team-b", "kind": "StatefulSet"}}, 6379)],
            "unused": [],
        }
        wrote = cli("diff", "--mapper", addr, "--intents", str(repo), "--write", str(repo))
        assert wrote.returncode == 1 and (repo / "web.yaml").read_text() == INTENTS + (
            "  - kubernetes:\n      name: cache.team-b\n      kind: StatefulSet\n")
        again = cli("diff", "--mapper", addr, "--intents", str(repo), "--format", "json")
        assert not [e for e in json.loads(again.stdout)["uncovered"] if e["client"]["namespace"] == "team-a"]
        picture = tmp_path / "map.dot"
        assert cli("visualize", "--mapper", addr, "-n", "team-a", "--intents", str(repo), "-o", str(picture)).returncode == 0
        assert '"wl/team-a/web" -> "wl/team-b/cache"' in picture.read_text()
    finally:
        for s in servers:
            s.kill()
        for proc in (sniffer, mapper):
            proc.terminate()
            proc.wait(timeout=10)
