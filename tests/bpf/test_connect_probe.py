"""The TCP connect probe against real connects between network namespaces.

Each test drains first (so earlier traffic is gone), runs a client in the lab's client namespace, then
asserts the exact set of observations from that namespace: edges, counts, pid/comm, netns, cgroup.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sniffer.connect_probe import LOSS_MAP_FULL, ConnectProbe, ConnKey, ConnStats, ConnVal
from sniffer.records import ConnectObservation, ProbeLoss

from .conftest import CLOSED_PORT, NETPEER, SERVER_PORT, TIMEOUT, ClientRun, Lab, RunClient, own_netns

pytestmark = pytest.mark.bpf


def edges(obs: list[ConnectObservation]) -> set[tuple[str, str, int, int]]:
    return {(str(o.saddr), str(o.daddr), o.dport, o.count) for o in obs}


def check_identity(o: ConnectObservation, run: ClientRun, before: float, after: float) -> None:
    assert o.netns == run.netns
    assert o.cgroup_id == run.cgroup_id
    assert o.pid == run.pid
    assert o.comm == run.comm
    assert before <= o.first_seen <= o.last_seen <= after


def test_ipv4_connect_between_namespaces(probe: ConnectProbe, lab: Lab, run_client: RunClient) -> None:
    probe.drain()
    before = time.time()
    run = run_client(f"{lab.server.ipv4}:{SERVER_PORT}")
    after = time.time()
    obs, losses = probe.drain()

    assert run.results == ["OK"]
    mine = own_netns(obs, run.netns)
    assert edges(mine) == {(lab.client.ipv4, lab.server.ipv4, SERVER_PORT, 1)}
    check_identity(mine[0], run, before, after)
    assert losses == []


def test_ipv6_connect_between_namespaces(probe: ConnectProbe, lab: Lab, run_client: RunClient) -> None:
    probe.drain()
    before = time.time()
    run = run_client(f"[{lab.server.ipv6}]:{SERVER_PORT}")
    after = time.time()
    obs, losses = probe.drain()

    assert run.results == ["OK"]
    mine = own_netns(obs, run.netns)
    assert edges(mine) == {(lab.client.ipv6, lab.server.ipv6, SERVER_PORT, 1)}
    assert mine[0].saddr.version == 6
    check_identity(mine[0], run, before, after)
    assert losses == []


def test_refused_connect_is_seen(probe: ConnectProbe, lab: Lab, run_client: RunClient) -> None:
    probe.drain()
    run = run_client(f"{lab.server.ipv4}:{CLOSED_PORT}", f"[{lab.server.ipv6}]:{CLOSED_PORT}")
    obs, _ = probe.drain()

    assert run.results == ["ECONNREFUSED", "ECONNREFUSED"]
    assert edges(own_netns(obs, run.netns)) == {
        (lab.client.ipv4, lab.server.ipv4, CLOSED_PORT, 1),
        (lab.client.ipv6, lab.server.ipv6, CLOSED_PORT, 1),
    }


def test_repeated_connects_aggregate_into_one_key(probe: ConnectProbe, lab: Lab, run_client: RunClient) -> None:
    probe.drain()
    run = run_client(f"{lab.server.ipv4}:{SERVER_PORT}", f"{lab.server.ipv4}:{CLOSED_PORT}", repeat=25)
    obs, _ = probe.drain()

    assert run.results.count("OK") == 25
    assert edges(own_netns(obs, run.netns)) == {
        (lab.client.ipv4, lab.server.ipv4, SERVER_PORT, 25),
        (lab.client.ipv4, lab.server.ipv4, CLOSED_PORT, 25),
    }


def test_cgroup_id_is_the_client_cgroup_inode(
    probe: ConnectProbe, lab: Lab, run_client: RunClient, cgroup_dir: Path
) -> None:
    probe.drain()
    run = run_client(f"{lab.server.ipv4}:{SERVER_PORT}", cgroup=cgroup_dir)
    obs, _ = probe.drain()

    assert run.cgroup_id == os.stat(cgroup_dir).st_ino  # the client really ran in the new cgroup
    mine = own_netns(obs, run.netns)
    assert [o.cgroup_id for o in mine] == [os.stat(cgroup_dir).st_ino]


def test_netns_is_the_client_namespace_not_the_host(probe: ConnectProbe, lab: Lab, run_client: RunClient) -> None:
    probe.drain()
    run = run_client(f"{lab.server.ipv4}:{SERVER_PORT}")
    obs, _ = probe.drain()

    assert run.netns == os.stat(f"/run/netns/{lab.client.name}").st_ino
    assert run.netns != os.stat("/proc/self/ns/net").st_ino
    assert len(own_netns(obs, run.netns)) == 1


def test_drain_loses_nothing_while_connects_run(probe: ConnectProbe, lab: Lab) -> None:
    """Drain every few ms while a client connects in a loop: the counts over all drains add up exactly."""
    probe.drain()
    n = 3000
    argv = [sys.executable, str(NETPEER), "connect", "--repeat", str(n), "--target", f"{lab.server.ipv4}:{CLOSED_PORT}"]
    proc = lab.client.popen(*argv, stdout=subprocess.PIPE)
    netns = os.stat(f"/run/netns/{lab.client.name}").st_ino
    total, drains, losses = 0, 0, []
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        obs, loss = probe.drain()
        total += sum(o.count for o in own_netns(obs, netns))
        losses += loss
        drains += 1
        time.sleep(0.002)
    assert proc.wait(TIMEOUT) == 0
    obs, loss = probe.drain()
    total += sum(o.count for o in own_netns(obs, netns))
    losses += loss

    assert drains >= 10  # the drains really overlapped the connect loop
    assert total == n
    assert losses == []


def test_full_map_counts_lost_connects(lab: Lab, run_client: RunClient) -> None:
    netns = os.stat(f"/run/netns/{lab.client.name}").st_ino
    ports = [9000 + i for i in range(10)]
    targets = [f"{lab.server.ipv4}:{p}" for p in ports]
    with ConnectProbe(map_size=4, netns_filter=netns) as small:
        # 10 distinct edges into a 4-entry buffer, then the first edge again: it still counts.
        run_client(*targets, f"{lab.server.ipv4}:{ports[0]}")
        obs, losses = small.drain()
        assert edges(obs) == {(lab.client.ipv4, lab.server.ipv4, p, 2 if p == ports[0] else 1) for p in ports[:4]}
        assert losses == [ProbeLoss(source=LOSS_MAP_FULL, count=6)]

        # The drained buffer is empty again; the other one was never filled.
        run_client(*targets[4:8])
        obs, losses = small.drain()
        assert edges(obs) == {(lab.client.ipv4, lab.server.ipv4, p, 1) for p in ports[4:8]}
        assert losses == []
        run_client(*targets[6:10])
        obs, losses = small.drain()
        assert edges(obs) == {(lab.client.ipv4, lab.server.ipv4, p, 1) for p in ports[6:10]}
        assert losses == []


def test_netns_filter_drops_other_namespaces(lab: Lab, run_client: RunClient) -> None:
    with ConnectProbe(map_size=16, netns_filter=os.stat(f"/run/netns/{lab.server.name}").st_ino) as other:
        run_client(f"{lab.server.ipv4}:{SERVER_PORT}")
        obs, losses = other.drain()
    assert obs == [] and losses == []


def test_kernel_layouts_match_python_mirrors(probe: ConnectProbe) -> None:
    """bcc's view of the compiled C structs equals the ctypes mirrors the decoder uses."""
    layouts = probe.kernel_layouts()
    for label, mirror in (("conn_key", ConnKey), ("conn_val", ConnVal), ("conn_stats", ConnStats)):
        size, fields = layouts[label]
        assert size == ctypes.sizeof(mirror), label
        assert fields == [(name, getattr(mirror, name).offset) for name, *_ in mirror._fields_], label



def test_detached_probe_sees_nothing_until_reattached(probe: ConnectProbe, lab: Lab, run_client: RunClient) -> None:
    probe.drain()
    probe.detach()
    try:
        hidden = run_client(f"{lab.server.ipv4}:{CLOSED_PORT}")
    finally:
        probe.attach()
    seen = run_client(f"{lab.server.ipv4}:{SERVER_PORT}")
    obs, _ = probe.drain()
    assert edges(own_netns(obs, seen.netns)) == {(lab.client.ipv4, lab.server.ipv4, SERVER_PORT, 1)}
    assert hidden.netns == seen.netns
