"""`netmapper diff`, `netmapper visualize` and `mapper serve --webhook` as users run them: a real mapper
process fed real edges over gRPC (as a sniffer sends them), the CLI as a separate process."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from edge_testing import edge, internet, workload
from netmapper.demo.run import free_port
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc
from webhook_testing import WebhookServer

NOW = time.time()
EDGES = [
    edge(workload("frontend"), workload("cart", service=("cart", "shop")), 8080, first=NOW - 60, last=NOW),
    edge(workload("frontend"), internet("198.51.100.7", "api.partner.example"), 443, first=NOW - 60, last=NOW),
    edge(workload("cart"), workload("redis", kind="StatefulSet"), 6379, first=NOW - 30 * 86400, last=NOW - 29 * 86400),
]
INTENTS = """\
# shop team
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: frontend, namespace: shop}
spec:
  workload: {name: frontend, kind: Deployment}
  targets:
  - kubernetes: {name: cart}   # checkout
  - kubernetes: {name: search}
---
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: cart, namespace: shop}
spec:
  service: {name: cart}
  calls: [{name: redis}]
"""


def cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netmapper.cli.main", *args], capture_output=True, text=True,
                          timeout=60, check=check)


def start_mapper(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
    addr = f"127.0.0.1:{free_port()}"
    # The report window is widened: EDGES holds a call last seen a month ago (the mapper refuses older than 7d).
    proc = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen", addr,
                             "--max-report-age", "60d", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            with grpc.insecure_channel(addr) as ch:
                mapper_pb2_grpc.MapperStub(ch).ListEdges(mapper_pb2.ListEdgesRequest(), timeout=1)
            return proc, addr
        except grpc.RpcError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"mapper did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)


def report(addr: str, edges: list[edge_pb2.Edge]) -> None:
    with grpc.insecure_channel(addr, options=client_channel_options()) as ch:
        acks = list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(
            iter([mapper_pb2.ReportEdgesRequest(node="n1", sequence=1, edges=edges)]), timeout=30))
    assert acks[0].accepted == len(edges)


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    return err.decode() if err else ""


@pytest.fixture(scope="module")
def mapper() -> Iterator[str]:
    proc, addr = start_mapper()
    try:
        report(addr, EDGES)
        yield addr
    finally:
        stop(proc)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "intents").mkdir()
    (tmp_path / "intents" / "shop.yaml").write_text(INTENTS)
    return tmp_path / "intents"


def test_uncovered_calls_fail_the_check(mapper: str, repo: Path) -> None:
    run = cli("diff", "--mapper", mapper, "--intents", str(repo))
    assert run.returncode == 1, run.stderr
    assert "UNCOVERED (observed, not declared: blocked when enforced): 1" in run.stdout
    assert "internet api.partner.example :443" in run.stdout
    assert f"{repo}/shop.yaml:9" in run.stdout  # the unused `search` target, by line
    assert run.stderr == ""


def test_json_and_markdown(mapper: str, repo: Path) -> None:
    out = json.loads(cli("diff", "--mapper", mapper, "--intents", str(repo), "--format", "json").stdout)
    assert [(e["client"]["name"], e["target"], e["port"]) for e in out["uncovered"]] == [
        ("frontend", {"internet": {"domains": ["api.partner.example"], "ports": [443]}}, 443)]
    assert [e["target"] for e in out["unused"]] == [{"kubernetes": {"name": "search"}}]
    assert len(out["covered"]) == 2
    md = cli("diff", "--mapper", mapper, "--intents", str(repo), "--format", "markdown")
    assert md.returncode == 1 and md.stdout.startswith("### netmapper diff")


def test_since_window(mapper: str, repo: Path) -> None:
    out = json.loads(cli("diff", "--mapper", mapper, "--intents", str(repo), "--format", "json",
                         "--since", "7d").stdout)
    assert [e["client"]["name"] for e in out["covered"]] == ["frontend"]  # cart->redis is a month old
    assert {json.dumps(e["target"]) for e in out["unused"]} == {
        '{"kubernetes": {"name": "search"}}', '{"kubernetes": {"name": "redis"}}'}


def test_write_then_the_check_passes_and_a_second_write_changes_nothing(mapper: str, repo: Path) -> None:
    first = cli("diff", "--mapper", mapper, "--intents", str(repo), "--write", str(repo), "--prune-unused")
    assert first.returncode == 1  # the check ran against the intents as they were
    assert "wrote 1 missing targets, removed 1 unused (1 files changed, 0 created)" in first.stderr
    text = (repo / "shop.yaml").read_text()
    assert "# shop team" in text and "# checkout" in text and "search" not in text
    assert "api.partner.example" in text
    second = cli("diff", "--mapper", mapper, "--intents", str(repo), "--write", str(repo), "--prune-unused")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "wrote 0 missing targets, removed 0 unused (0 files changed, 0 created)" in second.stderr
    assert (repo / "shop.yaml").read_text() == text


def test_malformed_documents_are_skipped_and_reported(mapper: str, repo: Path) -> None:
    (repo / "broken.yaml").write_text("apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: [\n")
    run = cli("diff", "--mapper", mapper, "--intents", str(repo))
    assert run.returncode == 1
    assert f"skipped {repo}/broken.yaml:" in run.stderr and "invalid YAML" in run.stderr
    assert "UNCOVERED (observed, not declared: blocked when enforced): 1" in run.stdout


@pytest.mark.parametrize("args, message", [
    (("--intents", "/nonexistent/intents"), "/nonexistent/intents: no such file or directory"),
    (("--intents", "{repo}", "--since", "soon"), "--since: 'soon' is not a duration"),
    (("--intents", "{repo}", "--prune-unused"), "--prune-unused needs --write DIR"),
    (("--intents", "{repo}", "--mapper", "127.0.0.1:1"), "mapper at 127.0.0.1:1: UNAVAILABLE"),
    (("--from-cluster", "--kubeconfig", "/nonexistent/kubeconfig"), "cannot read ClientIntents from the cluster"),
])
def test_errors_exit_2_in_one_line(mapper: str, repo: Path, args: tuple[str, ...], message: str) -> None:
    args = tuple(a.replace("{repo}", str(repo)) for a in args)
    run = cli("diff", "--mapper", mapper, *args) if "--mapper" not in args else cli("diff", *args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("netmapper diff: ") and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_usage_errors_exit_2(mapper: str) -> None:
    run = cli("diff", "--mapper", mapper)  # no intents source
    assert run.returncode == 2 and "Traceback" not in run.stderr


def test_visualize(mapper: str, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "map.dot"
    run = cli("visualize", "--mapper", mapper, "--intents", str(repo), "-o", str(out))
    assert run.returncode == 0, run.stderr
    source = out.read_text()
    assert '"wl/shop/frontend" -> "net/api.partner.example"' in source and "color=gold" in source
    svg = tmp_path / "map.svg"
    assert cli("visualize", "--mapper", mapper, "-o", str(svg), "-n", "shop").returncode == 0
    assert svg.read_text().lstrip().startswith("<?xml")
    bad = cli("visualize", "--mapper", mapper, "-o", str(tmp_path / "map.gif"))
    assert bad.returncode == 1 and "must end in .svg, .png or .dot" in bad.stderr


def test_mapper_serve_posts_uncovered_calls_to_the_webhook(repo: Path) -> None:
    with WebhookServer().running() as hook:
        proc, addr = start_mapper("--intents", str(repo), "--webhook", hook.url)
        try:
            report(addr, EDGES)
            deadline = time.monotonic() + 30
            while not hook.delivered and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            err = stop(proc)
    assert [m["target"] for m in hook.delivered] == [
        {"internet": {"domains": ["api.partner.example"], "ports": [443]}}]
    assert "1 uncovered calls, 1 delivered, 0 failed, 0 dropped" in err


def test_mapper_serve_refuses_a_webhook_without_intents() -> None:
    run = cli("mapper", "serve", "--listen", f"127.0.0.1:{free_port()}", "--webhook", "http://127.0.0.1:1/")
    assert run.returncode == 1
    assert "--webhook needs --intents PATH or --intents-from-cluster" in run.stderr and "Traceback" not in run.stderr


def test_no_intents_at_all_is_warned_about(mapper: str, tmp_path: Path) -> None:
    run = cli("diff", "--mapper", mapper, "--intents", str(tmp_path))
    assert run.returncode == 1
    assert f"warning: no ClientIntents found under {tmp_path}" in run.stderr
    assert "UNCOVERED (observed, not declared: blocked when enforced): 3" in run.stdout
