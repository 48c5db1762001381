"""Run the demo: lab up, mapper + sniffer as separate processes, traffic, edges, ClientIntents.

Everything started here is stopped in `finally`, so Ctrl-C (SIGINT), SIGTERM or a failure leaves no
namespace, bridge or process behind.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from netmapper.client import MapperError, filters_from, list_edges
from netmapper.demo import scenario
from netmapper.demo.lab import build_lab
from netmapper.demo.netns import NetLab
from netmapper.demo.shadow import shadow_act
from netmapper.edge_table import render_table
from netmapper.intents.export import ExportOptions, export_intents
from netmapper.intents.output import write_intents
from netmapper_api.v1 import edge_pb2
from sniffer.snapshot_feed import read_snapshot

log = logging.getLogger(__name__)
LAB_PREFIX = "nmdemo"


@dataclass(frozen=True)
class DemoResult:
    edges: list[edge_pb2.Edge]
    intents: list[dict[str, object]]
    output: Path
    problems: list[str]
    seconds: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "netmapper.cli.main", *args]


@contextmanager
def _process(cmd: list[str], name: str, logdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    logfile = open(logdir / f"{name}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logfile.close()


def _wait(what: str, check: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes] | None = None,
          logfile: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = logfile.read_text()[-3000:] if logfile and logfile.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        if check():
            return
        time.sleep(0.1)
    tail = logfile.read_text()[-3000:] if logfile and logfile.exists() else ""
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s\n{tail}")


def _mapper_up(addr: str) -> bool:
    try:
        list_edges(addr, timeout=1.0)
        return True
    except MapperError:
        return False


def _edges_complete(addr: str) -> bool:
    got = list_edges(addr, filters_from(scenario.NAMESPACES)).edges
    seen = {(e.client.workload.namespace, e.client.workload.name) for e in got}
    return all((ns, name) in seen for ns, name, _ in scenario.EXPECTED)


def _sigterm_as_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run_demo(output: Path, *, interval: float = 0.5) -> DemoResult:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    objects = read_snapshot(scenario.SNAPSHOT)
    addr = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="netmapper-demo-") as tmp, \
            NetLab(LAB_PREFIX, subnet4="10.244.0.0/24", subnet6="fd00:244::/64") as lab:
        logdir, ready = Path(tmp), Path(tmp) / "sniffer.ready"
        hosts = build_lab(lab, objects)
        for name, ip in scenario.EXTERNAL.items():
            hosts[name] = lab.add_host(f"x{len(hosts)}", ipv4=ip)
        log.info("lab: %d pods and %d outside hosts as network namespaces", len(hosts) - len(scenario.EXTERNAL),
                 len(scenario.EXTERNAL))
        servers = [hosts[s.pod].popen(sys.executable, "-m", "netmapper.demo.traffic", "serve",
                                      *map(str, s.ports), "--lifetime", "300") for s in scenario.LISTENS]
        servers.append(hosts[scenario.COREDNS_POD].popen(
            sys.executable, "-m", "netmapper.demo.traffic", "dns", "--lifetime", "300",
            *(f"{name}={ip}" for name, ip in scenario.DNS_RECORDS.items())))
        try:
            with _process(_cli("mapper", "serve", "--listen", addr), "mapper", logdir) as mapper:
                _wait("mapper", lambda: _mapper_up(addr), 20, mapper, logdir / "mapper.log")
                sniffer_cmd = _cli("sniffer", "run", "--mapper", addr, "--snapshot", str(scenario.SNAPSHOT),
                                   "--node", "demo-node", "--interval", str(interval), "--ready-file", str(ready))
                with _process(sniffer_cmd, "sniffer", logdir) as sniffer:
                    _wait("sniffer", ready.exists, 60, sniffer, logdir / "sniffer.log")
                    for call in scenario.CALLS:
                        dns = ("--dns", scenario.KUBE_DNS) if call.by_name else ()
                        subprocess.run(hosts[call.pod].exec(sys.executable, "-m", "netmapper.demo.traffic", "call",
                                                            *dns, call.host, str(call.port), str(call.count)),
                                       check=True)
                    _wait("edges", lambda: _edges_complete(addr), 15, sniffer, logdir / "sniffer.log")
                    time.sleep(interval * 2)  # one more drain: the last connects of each call
                    edges = list(list_edges(addr).edges)
        finally:
            for s in servers:
                s.kill()
                s.wait()
    docs = export_intents(edges, ExportOptions()).documents
    write_intents(docs, output)
    return DemoResult(edges=edges, intents=docs, output=output, problems=scenario.intents_match(docs),
                      seconds=time.monotonic() - started)


def main(output: Path) -> int:
    if os.geteuid() != 0:
        print("netmapper demo: must run as root (network namespaces, eBPF); try `sudo make demo`", file=sys.stderr)
        return 1
    started = time.monotonic()
    result = run_demo(output)
    demo_edges = [e for e in result.edges
                  if e.client.workload.namespace in scenario.NAMESPACES]
    print("\nEdges seen in the simulated cluster:\n")
    print(render_table(demo_edges))
    others = len(result.edges) - len(demo_edges)
    if others:
        print(f"\n(+{others} edges on this machine outside the simulated cluster; `netmapper edges` shows all)")
    print(f"\nClientIntents written to {result.output}:\n")
    print(result.output.read_text())
    if result.problems:
        print("MISMATCH against the simulated cluster:\n  " + "\n  ".join(result.problems), file=sys.stderr)
        return 1
    print(f"ClientIntents match the simulated cluster exactly ({len(result.intents)} clients).")
    act = shadow_act(demo_edges, result.output.with_name("demo-map.svg"))
    print(f"\nShadow mode: `netmapper diff --intents {scenario.INTENTS_DIR}` (declared intents in Git):\n")
    print(act.report)
    print(f"Map coloured by coverage (green covered, yellow uncovered, dashed grey unused): {act.picture}")
    if act.problems:
        print("MISMATCH against the shadow-mode scenario:\n  " + "\n  ".join(act.problems), file=sys.stderr)
        return 1
    print(f"Exactly one call would be blocked if enforced now. Demo took {time.monotonic() - started:.1f}s.")
    return 0
