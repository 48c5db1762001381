"""DNS names end to end: real DNS server and clients in namespaces, the real sniffer (connect + DNS
probes) and mapper as processes, and the `internet` targets of the exported ClientIntents.

Client a resolves a CNAME chain (A) and an AAAA name and connects to both; client b asks a rogue pod
that answers DNS itself (untrusted) and connects to the same address; client c gets NXDOMAIN and
connects by IP. Exactly a's asked names may appear, only on a's intents.
"""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from netmapper.intents.crd import ClientIntentsValidator
from netmapper.client import MapperError, list_edges
from netmapper.demo.lab import build_lab
from netmapper.demo.run import free_port
from netmapper.demo.netns import Host, NetLab
from sniffer.snapshot_feed import read_snapshot

pytestmark = pytest.mark.bpf

EXT4, EXT6 = "198.51.100.20", "fd00:248::1:20"  # outside the cluster CIDRs given to the sniffer
KUBE_DNS = "10.96.0.10"


def pod(name: str, ip: str, labels: str = "{}", namespace: str = "dns-test") -> str:
    return f"""
- apiVersion: v1
  kind: Pod
  metadata: {{name: {name}-0, namespace: {namespace}, uid: u-{name}, labels: {labels},
             ownerReferences: [{{apiVersion: apps/v1, kind: StatefulSet, name: {name}, controller: true}}]}}
  status: {{podIP: {ip}, podIPs: [{{ip: {ip}}}, {{ip: "fd00:248::{ip.rsplit('.', 1)[1]}"}}]}}"""


SNAPSHOT = "apiVersion: v1\nkind: List\nitems:" + "".join([
    pod("a", "10.248.0.10"), pod("b", "10.248.0.11"), pod("c", "10.248.0.12"), pod("rogue", "10.248.0.13"),
    pod("coredns", "10.248.0.53", "{k8s-app: kube-dns}", namespace="kube-system"),
]) + f"""
- apiVersion: v1
  kind: Service
  metadata: {{name: kube-dns, namespace: kube-system, labels: {{k8s-app: kube-dns}}}}
  spec: {{clusterIP: {KUBE_DNS}, selector: {{k8s-app: kube-dns}}}}
"""


def traffic(host: Host, *args: str) -> list[str]:
    return host.exec(sys.executable, "-m", "netmapper.demo.traffic", *args)


@pytest.fixture
def cluster(require_bpf: None, tmp_path: Path) -> Iterator[tuple[dict[str, Host], Path]]:
    snap = tmp_path / "cluster.yaml"
    snap.write_text(SNAPSHOT)
    with NetLab("nmdns", subnet4="10.248.0.0/24", subnet6="fd00:248::/64") as lab:
        hosts = {k.split("/")[1].removesuffix("-0"): h for k, h in build_lab(lab, read_snapshot(snap)).items()}
        hosts["ext"] = lab.add_host("ext", ipv4=EXT4, ipv6=EXT6)
        yield hosts, snap


def test_names_on_the_right_clients_and_spoofing_changes_nothing(cluster: tuple[dict[str, Host], Path],
                                                                  tmp_path: Path) -> None:
    hosts, snap = cluster
    procs = [
        subprocess.Popen(traffic(hosts["coredns"], "dns", "--lifetime", "120", "www.example=>cdn.example",
                                 f"cdn.example={EXT4}", f"v6.example={EXT6}")),
        subprocess.Popen(traffic(hosts["rogue"], "dns", "--lifetime", "120", f"evil.example={EXT4}")),
        subprocess.Popen(traffic(hosts["ext"], "serve", "443", "8443", "--lifetime", "120")),
    ]
    addr, ready = f"127.0.0.1:{free_port()}", tmp_path / "ready"
    mapper = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen", addr],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sniffer = subprocess.Popen(
        [sys.executable, "-m", "netmapper.cli.main", "sniffer", "run", "--mapper", addr, "--snapshot", str(snap),
         "--node", "n1", "--interval", "0.3", "--ready-file", str(ready), "--cluster-cidr", "10.248.0.0/24",
         "--cluster-cidr", "fd00:248::/120", "--cluster-cidr", "10.96.0.0/12"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline and sniffer.poll() is None, "sniffer did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # the DNS server must be listening

        def run(host: str, *args: str) -> None:
            subprocess.run(traffic(hosts[host], "call", *args), check=True, timeout=30)

        run("a", "--dns", KUBE_DNS, "www.example", "443", "2")  # CNAME chain -> EXT4
        run("a", "--dns", KUBE_DNS, "--qtype", "AAAA", "v6.example", "443", "1")  # -> EXT6
        run("b", "--dns", hosts["rogue"].ipv4, "evil.example", "443", "1")  # untrusted answer
        assert subprocess.run(traffic(hosts["c"], "call", "--dns", KUBE_DNS, "nx.example", "443", "1")).returncode == 2
        run("c", EXT4, "8443", "1")

        def exported() -> dict[str, list[object]]:
            try:
                if sum(e.count for e in list_edges(addr).edges if e.client.workload.namespace == "dns-test") < 5:
                    return {}
            except MapperError:
                return {}
            out = subprocess.run([sys.executable, "-m", "netmapper.cli.main", "export", "--mapper", addr,
                                  "-n", "dns-test"], capture_output=True, text=True, check=True).stdout
            docs = [d for d in yaml.safe_load_all(out) if d]
            assert ClientIntentsValidator().validate_all(docs) == []
            return {d["metadata"]["name"]: d["spec"]["targets"] for d in docs}

        deadline = time.monotonic() + 15
        while not (got := exported()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert got == {
            "a": [{"internet": {"domains": ["v6.example"], "ports": [443]}},  # one target per asked name,
                  {"internet": {"domains": ["www.example"], "ports": [443]}}],  # not the CNAME's cdn.example
            "b": [{"internet": {"ips": [EXT4], "ports": [443]}}],
            "c": [{"internet": {"ips": [EXT4], "ports": [8443]}}],
        }
    finally:
        for p in (*procs, sniffer, mapper):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
