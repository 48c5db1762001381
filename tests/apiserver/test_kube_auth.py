"""The sniffer's own transport (sniffer/kube_http.py) against a real kube-apiserver: each way a kubeconfig
can authenticate, token rotation, and a feed process that never loads the `kubernetes` package."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sniffer.cluster import ClusterIndex
from sniffer.kube_feed import KubeFeed

from .cluster import ADMIN_TOKEN, NOBODY_TOKEN, ApiServerCluster
from .kube_objects import NODE, Kube, eventually

ROOT = Path(__file__).resolve().parents[2]


def kubeconfig(path: Path, apiserver: ApiServerCluster, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    """A kubeconfig whose current context is `user` on this API server (YAML, as kubectl writes it)."""
    path.write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        current-context: test
        clusters:
        - name: test
          cluster: {json.dumps({"server": apiserver.host, **cluster})}
        users:
        - name: someone
          user: {json.dumps(user)}
        contexts:
        - name: test
          context: {{cluster: test, user: someone}}
        """))
    return path


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def feeds() -> Iterator[list[KubeFeed]]:
    started: list[KubeFeed] = []
    yield started
    for f in started:
        f.stop()


def sees_pod(feed: KubeFeed, feeds: list[KubeFeed], kube: Kube, ip: str) -> None:
    index = ClusterIndex()
    feeds.append(feed)
    feed.start(index)
    assert feed.wait_synced(15), feed.stats()
    got = index.pod_at(ip, time.time())
    assert got is not None and got.namespace == kube.namespace, feed.stats()


def test_client_certificate_and_ca_as_data(apiserver: ApiServerCluster, kube: Kube, tmp_path: Path,
                                           feeds: list[KubeFeed]) -> None:
    ip = kube.next_ip()
    kube.pod("by-cert", ip=ip)
    path = kubeconfig(tmp_path / "config", apiserver, {"certificate-authority-data": b64(apiserver.ca_file)},
                      {"client-certificate-data": b64(apiserver.client_cert),
                       "client-key-data": b64(apiserver.client_key)})
    sees_pod(KubeFeed.from_kubeconfig(path, node_name=NODE), feeds, kube, ip)


def test_relative_files_are_read_next_to_the_kubeconfig(apiserver: ApiServerCluster, kube: Kube, tmp_path: Path,
                                                        feeds: list[KubeFeed]) -> None:
    ip = kube.next_ip()
    kube.pod("by-relative-cert", ip=ip)
    home = tmp_path / "kube"
    (home / "pki").mkdir(parents=True)
    for src, name in ((apiserver.ca_file, "ca.crt"), (apiserver.client_cert, "me.crt"),
                      (apiserver.client_key, "me.key")):
        shutil.copy(src, home / "pki" / name)
    path = kubeconfig(home / "config", apiserver, {"certificate-authority": "pki/ca.crt"},
                      {"client-certificate": "pki/me.crt", "client-key": "pki/me.key"})
    sees_pod(KubeFeed.from_kubeconfig(path, node_name=NODE), feeds, kube, ip)


def test_token_file_is_read_again_after_rotation(apiserver: ApiServerCluster, kube: Kube, tmp_path: Path,
                                                 feeds: list[KubeFeed]) -> None:
    ip = kube.next_ip()
    kube.pod("by-token-file", ip=ip)
    token = tmp_path / "token"
    token.write_text(NOBODY_TOKEN + "\n")
    path = kubeconfig(tmp_path / "config", apiserver, {"certificate-authority": str(apiserver.ca_file)},
                      {"tokenFile": "token"})
    feed = KubeFeed.from_kubeconfig(path, node_name=NODE, backoff_initial=0.05, backoff_max=0.2)
    index = ClusterIndex()
    feeds.append(feed)
    feed.start(index)
    assert feed.wait_synced(15)
    assert index.pod_at(ip, time.time()) is None  # forbidden: nothing listed
    token.write_text(ADMIN_TOKEN + "\n")  # what kubelet does when it rotates a projected token
    got = eventually(lambda: index.pod_at(ip, time.time()), timeout=15)
    assert got.namespace == kube.namespace


def test_feed_process_never_imports_kubernetes(apiserver: ApiServerCluster, kube: Kube) -> None:
    # Everything the live feed does (discovery, list, watch, owner lookups of an unwatched kind, stop) in a
    # fresh interpreter: the `kubernetes` package (~20 MiB RSS) must not be loaded by any of it.
    ip = kube.next_ip()
    kube.pod("imports", ip=ip)
    code = textwrap.dedent(f"""
        import json, sys, time
        import netmapper.cli.sniffer_run
        from pathlib import Path
        from sniffer.cluster import ClusterIndex
        from sniffer.kube_feed import KubeFeed
        feed = KubeFeed.from_kubeconfig(Path({str(apiserver.kubeconfig_path)!r}), node_name={NODE!r})
        index = ClusterIndex()
        feed.start(index)
        synced = feed.wait_synced(30)
        seen = index.pod_at({ip!r}, time.time()) is not None
        owner = feed.lookup_owner("apps/v1", "ControllerRevision", {kube.namespace!r}, "missing")
        feed.stop()
        print(json.dumps([synced, seen, owner, sorted(sys.modules)]))
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    synced, seen, owner, modules = json.loads(res.stdout.strip().splitlines()[-1])
    assert (synced, seen, owner) == (True, True, None)
    assert [m for m in modules if m == "kubernetes" or m.startswith("kubernetes.")] == []
