"""Fixtures for tests against a real kube-apiserver (see cluster.py and scripts/kube-apiserver.sh).

The control plane is started once per session. When the binary is missing or the processes cannot
start, the tests are skipped on a developer machine but fail in CI (NETMAPPER_REQUIRE_APISERVER=1),
so a broken build step can never turn into a silently green run.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from .cluster import ApiServerCluster, ClusterStartError

log = logging.getLogger(__name__)


def _unavailable(reason: str) -> None:
    if os.environ.get("NETMAPPER_REQUIRE_APISERVER") == "1":
        pytest.fail(f"real API server required (NETMAPPER_REQUIRE_APISERVER=1) but unavailable: {reason}",
                    pytrace=False)
    pytest.skip(f"real API server unavailable: {reason}")


@pytest.fixture(scope="session")
def apiserver() -> Iterator[ApiServerCluster]:
    """A running etcd + kube-apiserver on 127.0.0.1, stopped after the session."""
    with tempfile.TemporaryDirectory(prefix="netmapper-apiserver-") as tmp:
        cluster = ApiServerCluster(workdir=Path(tmp))
        try:
            cluster.start()
        except (ClusterStartError, OSError) as e:
            cluster.stop()
            _unavailable(str(e))
        log.info("apiserver started in %.1fs (kubeconfig %s)", cluster.start_seconds, cluster.kubeconfig_path)
        try:
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def kube_config(apiserver: ApiServerCluster) -> client.Configuration:
    """kubernetes client configuration with the admin token."""
    return apiserver.configuration()


@pytest.fixture(scope="session")
def kubeconfig_path(apiserver: ApiServerCluster) -> Path:
    """A kubeconfig file for the admin user (what `--kubeconfig` takes)."""
    return apiserver.kubeconfig_path
