"""Fixtures for the real-eBPF tests: a probe, a two-namespace lab with a listener, client runs.

Everything is named after the test process id (lab prefix, subnets, cgroup dirs), so parallel
sessions on one machine do not collide. Observations are always selected by the client's network
namespace: the probe sees the whole host, other processes may connect at the same time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netmapper.demo.netns import Host, NetLab
from sniffer.connect_probe import ConnectProbe
from sniffer.records import ConnectObservation

NETPEER = Path(__file__).with_name("netpeer.py")
SERVER_PORT = 8080
CLOSED_PORT = 8081  # nothing listens here: connects are refused
TIMEOUT = 30


@dataclass(frozen=True)
class Lab:
    client: Host
    server: Host


@dataclass(frozen=True)
class ClientRun:
    """What a finished client did, and facts read from /proc while it was still alive."""

    pid: int
    comm: str
    netns: int  # os.stat(/proc/<pid>/ns/net).st_ino
    cgroup_id: int  # inode of the client's cgroup v2 directory
    results: list[str]  # per connect attempt: "OK" or an errno name


RunClient = Callable[..., ClientRun]


def cgroup2_root() -> Path:
    """Mount point of the cgroup v2 hierarchy (/sys/fs/cgroup/unified on hybrid hosts)."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    raise RuntimeError("no cgroup2 hierarchy mounted")


def own_netns(obs: list[ConnectObservation], netns: int) -> list[ConnectObservation]:
    return [o for o in obs if o.netns == netns]


@pytest.fixture(scope="module")
def bpf_ready(require_bpf: None) -> None:
    """Every fixture here that touches the kernel depends on this (skip/fail rule in tests/conftest.py)."""


@pytest.fixture(scope="module")
def probe(bpf_ready: None) -> Iterator[ConnectProbe]:
    with ConnectProbe() as p:
        yield p


@pytest.fixture(scope="module")
def lab(bpf_ready: None) -> Iterator[Lab]:
    n = os.getpid() % 250
    with NetLab(prefix=f"nmc{os.getpid() % 100000}", subnet4=f"10.251.{n}.0/24", subnet6=f"fd00:251:{n:x}::/64") as netlab:
        client = netlab.add_host("a")
        server = netlab.add_host("b")
        srv = server.popen(sys.executable, str(NETPEER), "serve", "--port", str(SERVER_PORT), stdout=subprocess.PIPE)
        try:
            assert srv.stdout is not None
            if srv.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"lab listener did not start (exit code {srv.poll()})")
            yield Lab(client=client, server=server)
        finally:
            srv.kill()
            srv.wait(TIMEOUT)


@pytest.fixture
def cgroup_dir(bpf_ready: None) -> Iterator[Path]:
    path = cgroup2_root() / f"netmapper-test-{os.getpid()}"
    path.mkdir(exist_ok=True)
    try:
        yield path
    finally:
        path.rmdir()  # the client has exited by now, so the directory is empty


@pytest.fixture
def run_client(lab: Lab) -> RunClient:
    """Run netpeer.py connect in the client namespace; returns once it exited."""

    def run(*targets: str, repeat: int = 1, cgroup: Path | None = None) -> ClientRun:
        argv = lab.client.exec(sys.executable, str(NETPEER), "connect", "--hold", "--repeat", str(repeat))
        for t in targets:
            argv += ["--target", t]
        if cgroup is not None:
            # Join the cgroup before `ip netns exec`: it mounts a fresh /sys, hiding the cgroupfs.
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *argv]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = proc.stdout.readline()
            assert line, f"client exited early with {proc.wait(TIMEOUT)}"
            report = json.loads(line)
            assert report["pid"] == proc.pid  # ip netns exec execs: no wrapper process in between
            proc_dir = Path(f"/proc/{proc.pid}")
            cg_path = next(
                ln.split("::", 1)[1] for ln in (proc_dir / "cgroup").read_text().splitlines() if ln.startswith("0::")
            )
            run_info = ClientRun(
                pid=proc.pid,
                comm=(proc_dir / "comm").read_text().strip(),
                netns=os.stat(proc_dir / "ns" / "net").st_ino,
                cgroup_id=os.stat(cgroup2_root() / cg_path.lstrip("/")).st_ino,
                results=report["results"],
            )
            assert run_info.netns == report["netns"]
        finally:
            proc.stdin.close()
            rc = proc.wait(TIMEOUT)
        assert rc == 0
        return run_info

    return run
