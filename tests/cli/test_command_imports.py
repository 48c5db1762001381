"""The sniffer process carries only what it runs: the other commands' libraries stay out of its memory.

Counted by modules, not bytes: the mapper, the shadow diff, Graphviz, ruamel.yaml, PyYAML (parsed in a child) and prometheus_client
(without --metrics-listen) cost ~6 MiB RSS in each sniffer (bench/sniffer_memory.py); the kubernetes package
~20 MiB more (bench/sniffer_live_feed_memory.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Modules of the commands (and libraries) a sniffer never uses.
FOREIGN = ("mapper", "netmapper.shadow", "netmapper.intents", "netmapper.graph", "graphviz", "ruamel",
           "prometheus_client", "sniffer.metrics", "psycopg", "yaml", "kubernetes")


def modules_after(argv: list[str]) -> tuple[int, list[str]]:
    """Exit status of netmapper `argv` run in a fresh interpreter, and the modules it imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from netmapper.cli.main import main
        try:
            status = main({argv!r})
        except SystemExit as e:  # argparse's usage errors
            status = e.code
        print(json.dumps([status, sorted(sys.modules)]))
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    status, modules = json.loads(res.stdout.strip().splitlines()[-1])
    return status, modules


def foreign(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FOREIGN)]


def test_sniffer_run_imports_no_other_command(tmp_path: Path) -> None:
    # A snapshot that does not exist: run() goes as far as starting the feed, then fails with one line.
    status, modules = modules_after(["sniffer", "run", "--mapper", "127.0.0.1:1", "--snapshot",
                                     str(tmp_path / "missing.yaml")])
    assert status == 1
    assert "netmapper.cli.sniffer_run" in modules and "sniffer.snapshot_feed" in modules
    assert foreign(modules) == []


def test_live_feed_imports_no_kubernetes_package(tmp_path: Path) -> None:
    # The kubernetes package costs ~20 MiB RSS (bench/sniffer_live_feed_memory.py): the sniffer has its own
    # transport (sniffer/kube_http.py). A kubeconfig whose user runs a plugin is refused with one line.
    config = tmp_path / "config"
    config.write_text(json.dumps({
        "current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"exec": {"command": "aws"}}}]}))
    argv = ["sniffer", "run", "--mapper", "127.0.0.1:1", "--kubeconfig", str(config)]
    status, modules = modules_after(argv)
    assert status == 1 and "sniffer.kube_feed" in modules
    assert [m for m in modules if m == "kubernetes" or m.startswith("kubernetes.")] == []
    res = subprocess.run([sys.executable, "-m", "netmapper.cli.main", *argv], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and "'exec'" in res.stderr, res.stderr


def test_sniffer_outside_a_pod_without_kubeconfig_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE_")}
    res = subprocess.run([sys.executable, "-m", "netmapper.cli.main", "sniffer", "run", "--mapper", "127.0.0.1:1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "KUBERNETES_SERVICE_HOST" in res.stderr and "--kubeconfig" in res.stderr


def test_help_still_lists_every_command() -> None:
    res = subprocess.run([sys.executable, "-m", "netmapper.cli.main", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    for command in ("mapper", "sniffer", "edges", "export", "diff", "visualize", "reset", "demo"):
        assert f"\n    {command} " in res.stdout, command
    status, modules = modules_after(["edgs"])  # a typo: the error lists every command, so all are loaded
    assert status == 2
    assert foreign(modules) != []
