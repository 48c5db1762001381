"""`netmapper demo` end to end: real eBPF sniffer and real mapper as separate processes, real traffic
in network namespaces, the exported ClientIntents exactly as the simulated cluster was designed."""
from __future__ import annotations

import os
import signal
import subprocess
import uuid
import sys
import time
from pathlib import Path

import pytest
import yaml

from netmapper.intents.crd import ClientIntentsValidator
from netmapper.demo import scenario
from netmapper.demo.run import LAB_PREFIX

pytestmark = pytest.mark.bpf


def demo_cmd(output: Path) -> list[str]:
    return [sys.executable, "-m", "netmapper.cli.main", "demo", "-o", str(output)]


def processes_marked(mark: str) -> list[int]:
    """Processes whose environment carries `mark`: the demo's children inherit it, other users' processes don't."""
    needle = f"NETMAPPER_TEST_MARK={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # exited meanwhile, or a kernel thread
    return found


def leftovers() -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line for line in (netns + links).splitlines() if LAB_PREFIX in line]


def test_demo_exports_exactly_the_designed_intents(require_bpf: None, tmp_path: Path) -> None:
    out = tmp_path / "intents.yaml"
    run = subprocess.run(demo_cmd(out), capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    assert scenario.intents_match(docs) == []
    assert {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs} == {
        ("shop", "frontend"), ("shop", "cart"), ("billing", "invoicer")}  # inventory calls nothing
    assert ClientIntentsValidator().validate_all(docs) == []
    assert "shop/frontend (Deployment)  internet 198.51.100.10 (api.partner.example)" in run.stdout
    # The last act: a diff against the bundled intents leaves exactly one call uncovered, and its picture.
    shadow = run.stdout.split("Shadow mode:", 1)[1]
    assert "UNCOVERED (observed, not declared: blocked when enforced): 1\n" in shadow
    assert "billing/invoicer (CronJob)  cart.shop (Deployment)  8080" in shadow
    assert "UNUSED (declared, not observed): 1\n" in shadow and "COVERED: 3\n" in shadow
    svg = (tmp_path / "demo-map.svg").read_text()
    assert "<title>wl/billing/invoicer&#45;&gt;wl/shop/cart</title>" in svg and 'stroke="gold"' in svg
    assert leftovers() == []


def test_demo_cleans_up_on_ctrl_c(require_bpf: None, tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    proc = subprocess.Popen(demo_cmd(tmp_path / "x.yaml"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "NETMAPPER_TEST_MARK": mark})
    deadline = time.monotonic() + 60
    while not any(LAB_PREFIX in line for line in leftovers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the lab: servers and processes are starting
    assert len(processes_marked(mark)) > 1, "the mark should reach the demo's children"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert leftovers() == []
    # The demo's mapper and sniffer are gone too (only its own: other runs on the machine may be live).
    assert processes_marked(mark) == []
