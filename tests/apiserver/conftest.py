"""Fixtures for tests against a real kube-apiserver (see cluster.py and scripts/kube-apiserver.sh).

The control plane is started once per session. When the binary is missing or the processes cannot
start, the tests are skipped on a developer machine but fail in CI (NETMAPPER_REQUIRE_APISERVER=1),
so a broken build step can never turn into a silently green run.
"""
from __future__ import annotations

import itertools
import logging
import uuid
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from sniffer.kube_http import KubeSettings

from .cluster import ApiServerCluster, ClusterStartError
from .kube_objects import Kube

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def apiserver(unavailable: Callable[[str, str], NoReturn]) -> Iterator[ApiServerCluster]:
    """A running etcd + kube-apiserver on 127.0.0.1, stopped after the session."""
    with tempfile.TemporaryDirectory(prefix="netmapper-apiserver-") as tmp:
        cluster = ApiServerCluster(workdir=Path(tmp))
        try:
            cluster.start()
        except (ClusterStartError, OSError) as e:
            cluster.stop()
            # Skip on a developer machine, fail in CI (tests/conftest.py: NETMAPPER_REQUIRE_APISERVER).
            unavailable("NETMAPPER_REQUIRE_APISERVER", f"real API server unavailable: {e}")
        log.info("apiserver started in %.1fs (kubeconfig %s)", cluster.start_seconds, cluster.kubeconfig_path)
        try:
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def kube_config(apiserver: ApiServerCluster) -> KubeSettings:
    """The sniffer's connection settings with the admin token."""
    return apiserver.configuration()


@pytest.fixture(scope="session")
def kubeconfig_path(apiserver: ApiServerCluster) -> Path:
    """A kubeconfig file for the admin user (what `--kubeconfig` takes)."""
    return apiserver.kubeconfig_path


@pytest.fixture(scope="session")
def ip_counter() -> Iterator[int]:
    """Pod IPs are unique across the session: the cluster (and every feed's view) is shared."""
    return itertools.count(1)


@pytest.fixture
def kube(apiserver: ApiServerCluster, ip_counter: Iterator[int]) -> Kube:
    api = apiserver.api_client()
    ns = f"t-{uuid.uuid4().hex[:8]}"
    kube = Kube(core=client.CoreV1Api(api), dyn=DynamicClient(api), namespace=ns, _ips=ip_counter)
    kube.create("v1", "Namespace", {"metadata": {"name": ns}})
    return kube
