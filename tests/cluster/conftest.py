"""Fixtures for the real-cluster tests: a single-node Kubernetes v1.20.2 cluster from scripts/cluster.sh.

The first test here starts the cluster (building what is missing: minutes cold, seconds warm) or reuses one that is
already running, and it is stopped after the last test of this package unless it was running before (or NETMAPPER_CLUSTER_KEEP=1). When it
cannot start the tests skip on a developer machine and fail in CI (NETMAPPER_REQUIRE_CLUSTER=1).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster.sh"
KUBECTL = Path(os.environ.get("NETMAPPER_KUBE_CACHE", "/var/cache/netmapper/kubernetes-v1.20.2")) / "kubectl"


class KubectlError(RuntimeError):
    pass


@dataclass(frozen=True)
class Cluster:
    """A running cluster and a kubectl bound to its admin kubeconfig."""

    kubeconfig: Path
    start_seconds: float

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 180) -> str:
        proc = subprocess.run([str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args], input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args))

    def apply(self, manifest: str, *extra: str) -> str:
        return self.kubectl("apply", *extra, "-f", "-", input=manifest)


def _status() -> bool:
    return subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0


# Package scope: shared by every test under tests/cluster and stopped after the last of them, so the rest of
# a `make test` session never runs beside kube-proxy's rules and a sniffer DaemonSet.
@pytest.fixture(scope="package")
def cluster(unavailable: Callable[[str, str], NoReturn]) -> Iterator[Cluster]:
    was_running = _status()
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True)
    if proc.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True)
        tail = "\n".join(proc.stderr.splitlines()[-25:])
        unavailable("NETMAPPER_REQUIRE_CLUSTER", f"test cluster did not start (scripts/cluster.sh start):\n{tail}")
    c = Cluster(kubeconfig=Path(proc.stdout.strip().splitlines()[-1]), start_seconds=time.monotonic() - t0)
    log.info("cluster %s in %.0fs", "reused" if was_running else "started", c.start_seconds)
    try:
        yield c
    finally:
        if not was_running and os.environ.get("NETMAPPER_CLUSTER_KEEP", "") in ("", "0"):
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True)
