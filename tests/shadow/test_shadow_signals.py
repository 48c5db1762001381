"""Signals: a real mapper (gRPC) with the signaller as its observer posts to a real local HTTP server."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from edge_testing import T0, edge, iso, node, workload
from mapper.server import MapperServer, serve
from netmapper.shadow.diff import diff
from netmapper.shadow.load import load_paths, load_text
from netmapper.shadow.signals import UncoveredCallSignaller
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc
from webhook_testing import WebhookServer

INTENTS = """\
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: frontend, namespace: shop}
spec:
  workload: {name: frontend, kind: Deployment}
  targets:
  - kubernetes: {name: cart}
"""


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll; the timeout only bounds a hung test, nothing is asserted about time."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {what}")
        time.sleep(0.02)


@pytest.fixture
def intents_dir(tmp_path: Path) -> Path:
    (tmp_path / "intents").mkdir()
    (tmp_path / "intents" / "frontend.yaml").write_text(INTENTS)
    return tmp_path / "intents"


def start(hook: WebhookServer, intents_dir: Path, **kw: object) -> tuple[UncoveredCallSignaller, MapperServer]:
    options = {"backoff": 0.01, "rate": 1000.0, **kw}
    signaller = UncoveredCallSignaller(hook.url, lambda: load_paths([intents_dir]), **options).start()  # type: ignore[arg-type]
    return signaller, serve("127.0.0.1:0", observer=signaller)


def report(mapper: MapperServer, *batches: list[edge_pb2.Edge]) -> list[mapper_pb2.ReportEdgesResponse]:
    with grpc.insecure_channel(mapper.address, options=client_channel_options()) as ch:
        requests = (mapper_pb2.ReportEdgesRequest(node="n1", sequence=i, edges=b) for i, b in enumerate(batches))
        return list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(requests, timeout=30))


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    with WebhookServer().running() as server:
        yield server


UNCOVERED = edge(workload("frontend"), workload("db", kind="StatefulSet", service=("db", "shop")), 5432)
COVERED = edge(workload("frontend"), workload("cart"), 8080)


def test_one_message_per_newly_observed_uncovered_call(hook: WebhookServer, intents_dir: Path) -> None:
    signaller, mapper = start(hook, intents_dir)
    try:
        report(mapper, [COVERED, UNCOVERED, edge(node("n1"), workload("cart"), 8080)], [UNCOVERED, COVERED])
        report(mapper, [UNCOVERED])  # a re-report on another stream is not new
        wait_until(lambda: signaller.stats().delivered == 1, "one delivery")
    finally:
        mapper.stop()
        stats = signaller.stop()
    assert (stats.uncovered, stats.delivered, stats.failed, stats.dropped) == (1, 1, 0, 0)
    (msg,) = hook.requests
    assert msg["event"] == "uncovered_call"
    assert msg["client"] == {"name": "frontend", "namespace": "shop", "kind": "Deployment"}
    assert msg["target"] == {"kubernetes": {"name": "db", "kind": "StatefulSet"}}
    assert (msg["port"], msg["protocol"], msg["first_seen"]) == (5432, "TCP", iso(T0))
    assert "shop/frontend (Deployment)" in msg["text"] and "db (StatefulSet)" in msg["text"]
    assert "5432" in msg["text"] and msg["intents"] in msg["text"]
    assert hook.headers[0]["Content-Type"] == "application/json"
    # The snippet is a valid ClientIntents document that covers the call it reports.
    snippet = load_text(msg["intents"], "snippet")
    assert snippet.problems == [] and yaml.safe_load(msg["intents"])["kind"] == "ClientIntents"
    assert diff([UNCOVERED], snippet.intents).uncovered == []


def test_failures_are_retried_with_backoff(intents_dir: Path) -> None:
    with WebhookServer(statuses=[503, 429]).running() as hook:
        signaller, mapper = start(hook, intents_dir)
        try:
            report(mapper, [UNCOVERED])
            wait_until(lambda: signaller.stats().delivered == 1, "delivery after retries")
        finally:
            mapper.stop()
            stats = signaller.stop()
    assert (stats.delivered, stats.retries, stats.failed) == (1, 2, 0)
    assert len(hook.requests) == 3 and hook.requests[0] == hook.requests[2]


def test_a_refusing_or_dead_webhook_counts_as_failed(intents_dir: Path) -> None:
    with WebhookServer(default_status=400).running() as hook:
        signaller, mapper = start(hook, intents_dir)
        try:
            report(mapper, [UNCOVERED])
            wait_until(lambda: signaller.stats().failed == 1, "refused")
        finally:
            mapper.stop()
            stats = signaller.stop()
        assert (stats.delivered, stats.failed, stats.retries, len(hook.requests)) == (0, 1, 0, 1)
    with WebhookServer(default_status=503).running() as hook:
        signaller, mapper = start(hook, intents_dir, max_attempts=3)
        try:
            report(mapper, [UNCOVERED])
            wait_until(lambda: signaller.stats().failed == 1, "retries exhausted")
        finally:
            mapper.stop()
            stats = signaller.stop()
        assert (stats.delivered, stats.failed, stats.retries, len(hook.requests)) == (0, 1, 2, 3)


def test_a_stuck_webhook_never_blocks_ingest_and_overflow_is_counted(intents_dir: Path) -> None:
    calls = [edge(workload("frontend"), workload(f"db-{i}"), 5432) for i in range(12)]
    with WebhookServer().running() as hook:
        hook.hold = True  # every POST waits until released
        signaller, mapper = start(hook, intents_dir, queue_size=3, timeout=30.0)
        try:
            acks = report(mapper, *[[c] for c in calls])  # returns while the webhook is stuck
            assert [a.accepted for a in acks] == [1] * 12
            wait_until(lambda: signaller.stats().uncovered == 12, "all matched")
            assert signaller.stats().delivered == 0
            hook.release.set()
            wait_until(lambda: (s := signaller.stats()).delivered + s.dropped == 12, "all accounted for")
        finally:
            mapper.stop()
            stats = signaller.stop()
    # one message in flight plus a full outbox of 3 got through; the rest was dropped, and counted
    assert stats.dropped >= 12 - 1 - 3 - 1 and stats.dropped > 0
    assert stats.delivered + stats.failed + stats.dropped == stats.uncovered == 12
    assert len(hook.delivered) == stats.delivered


def test_rate_limit_holds_back_a_burst(intents_dir: Path, hook: WebhookServer) -> None:
    calls = [edge(workload("frontend"), workload(f"db-{i}"), 5432) for i in range(6)]
    signaller, mapper = start(hook, intents_dir, rate=0.001, burst=2)  # two now, the next in 1000 s
    try:
        report(mapper, calls)
        wait_until(lambda: signaller.stats().delivered == 2, "the burst")
        wait_until(lambda: signaller.stats().uncovered == 6, "all matched")
    finally:
        mapper.stop()
        stats = signaller.stop(flush_timeout=0)
    assert (stats.delivered, stats.dropped) == (2, 4)
    assert len(hook.requests) == 2


def test_intents_are_reloaded(intents_dir: Path, hook: WebhookServer) -> None:
    signaller, mapper = start(hook, intents_dir, reload_interval=0.05)
    try:
        before = signaller.stats().reloads
        (intents_dir / "frontend.yaml").write_text(INTENTS + "  - kubernetes: {name: db}\n")
        wait_until(lambda: signaller.stats().reloads >= before + 2, "a reload that began after the edit")
        report(mapper, [UNCOVERED, edge(workload("frontend"), workload("queue"), 5672)])
        wait_until(lambda: signaller.stats().delivered == 1, "one delivery")
    finally:
        mapper.stop()
        stats = signaller.stop()
    assert stats.uncovered == 1
    assert hook.requests[0]["target"] == {"kubernetes": {"name": "queue", "kind": "Deployment"}}


def test_bad_settings_are_refused(intents_dir: Path) -> None:
    with pytest.raises(ValueError, match="http"):
        UncoveredCallSignaller("ftp://x", lambda: load_paths([intents_dir]))
    with pytest.raises(FileNotFoundError):
        UncoveredCallSignaller("http://127.0.0.1:1/", lambda: load_paths([intents_dir / "missing"]))
