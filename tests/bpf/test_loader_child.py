"""The sniffer's helper children never outlive it: a sniffer killed while its BPF loader compiles
leaves no compiler behind (PR_SET_PDEATHSIG in sniffer/child_process.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.bpf


def children_of(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_loader_dies_with_a_killed_sniffer(require_bpf: None, tmp_path: Path) -> None:
    snapshot = tmp_path / "empty.yaml"
    snapshot.write_text("apiVersion: v1\nkind: List\nitems: []\n")
    # 127.0.0.1:9 answers nothing: the sniffer is killed long before it would report.
    sniffer = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "sniffer", "run", "--mapper",
                                "127.0.0.1:9", "--snapshot", str(snapshot), "--node", "n1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    loader = None
    try:
        for _ in range(2000):  # bounded: the loader starts within the first seconds
            loader = next((c for c in children_of(sniffer.pid)
                           if b"sniffer.probe_loader" in Path(f"/proc/{c}/cmdline").read_bytes()), None)
            if loader is not None or sniffer.poll() is not None:
                break
            time.sleep(0.01)
        assert loader is not None, "the sniffer should load its probes in a child process"
        for _ in range(2000):  # bcc is imported after the child's start-up, where it asks for the signal
            if b"libbcc" in Path(f"/proc/{loader}/maps").read_bytes():
                break
            time.sleep(0.01)
        # Stopped, the loader cannot finish and exit on its own: only the kernel's death signal ends it.
        os.kill(loader, signal.SIGSTOP)
        os.kill(sniffer.pid, signal.SIGKILL)
        sniffer.wait()
        for _ in range(500):
            if not alive(loader):
                break
            time.sleep(0.01)
        assert not alive(loader), "the loader child outlived the sniffer"
    finally:
        if loader is not None and alive(loader):
            os.kill(loader, signal.SIGKILL)
        if sniffer.poll() is None:
            sniffer.kill()
            sniffer.wait()
