"""Signals: a webhook message for each newly observed call that the declared intents do not cover.

Wiring: `netmapper mapper serve --intents PATH --webhook URL` hands an UncoveredCallSignaller to the
mapper as its new-edge observer (mapper/observer.py). The mapper calls `new_edges` on its ingest thread;
that only appends to a bounded queue, so ingest never waits for matching or for the webhook.

Threads (all daemon threads owned by the signaller, stopped by stop()):
- matcher: takes batches of new edges, matches them against the current intents (netmapper.shadow.match)
  and queues each uncovered call on the bounded outbox;
- sender: builds each message (JSON, `text` for Slack-compatible incoming webhooks) only when it is
  about to post it, so the CPU spent on messages is bounded by the rate, and posts at most `rate` per
  second with bursts of `burst` (token bucket), retrying connection errors, 429 and 5xx with exponential
  backoff (honouring Retry-After) up to `max_attempts`;
- reloader: re-reads the intents every `reload_interval` seconds and swaps the index (a failed reload
  keeps the previous intents), and logs the counters when they changed.
Nothing is lost silently: a message is counted as delivered, failed (gave up, or the endpoint refused it
with another 4xx) or dropped (a queue was full, or it was still queued at stop).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from netmapper.shadow.diff import edge_ns, entry_target, export_targets
from netmapper.shadow.match import IntentsIndex, call_of
from netmapper.shadow.model import ClientRef, LoadResult
from netmapper.shadow.report import intents_snippet, rfc3339, target_label
from netmapper_api import keys
from netmapper_api.v1 import edge_pb2

log = logging.getLogger(__name__)

USER_AGENT: Final[str] = "netmapper-signals/1"
_RETRY_STATUS: Final[frozenset[int]] = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_BACKOFF: Final[float] = 60.0
# Servers a ClientIntents target can name (export skips nodes): only these calls are signalled.
_NAMEABLE: Final[frozenset[int]] = frozenset({keys.WORKLOAD, keys.SERVICE, keys.INTERNET})


@dataclass(frozen=True)
class SignalStats:
    """Counters since start. Every uncovered call ends in exactly one of delivered/failed/dropped
    (or is still queued)."""

    uncovered: int  # newly observed uncovered calls found
    delivered: int  # messages the webhook accepted (2xx)
    failed: int  # messages given up on (retries exhausted or refused)
    dropped: int  # messages (or edge batches) dropped because a queue was full or at stop
    retries: int  # extra attempts made
    reloads: int  # successful re-reads of the intents


@dataclass(frozen=True)
class Signal:
    """One message to post."""

    payload: dict[str, Any]


def build_signal(edge: edge_pb2.Edge) -> Signal | None:
    """The message for an uncovered edge; None when no ClientIntents could name the call."""
    call = call_of(edge)
    targets = export_targets(edge)
    if call is None or not targets:
        return None
    target = entry_target(targets)
    client: ClientRef = call.client
    first_seen = rfc3339(edge_ns(edge.first_seen))
    snippet = intents_snippet(client, targets)
    proto = edge_pb2.Protocol.Name(edge.protocol).removeprefix("PROTOCOL_")
    text = (f":warning: netmapper: *{client.label()}* called *{target_label(target)}* on port {edge.port}/{proto}, "
            f"first seen {first_seen}. No declared ClientIntents cover it: enforcing now would block it. "
            f"To allow it, add:\n```\n{snippet}```")
    return Signal(payload={
        "text": text,
        "event": "uncovered_call",
        "client": client.as_json(),
        "target": target,
        "port": edge.port,
        "protocol": proto,
        "first_seen": first_seen,
        "intents": snippet,
    })


class UncoveredCallSignaller:
    """A mapper new-edge observer that posts a webhook message per newly observed uncovered call."""

    def __init__(self, url: str, load: Callable[[], LoadResult], *, rate: float = 1.0, burst: int = 10,
                 max_attempts: int = 5, backoff: float = 0.5, timeout: float = 5.0, queue_size: int = 1000,
                 inbox_size: int = 10_000, reload_interval: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http:// or https://, not {url!r}")
        if rate <= 0 or burst < 1 or max_attempts < 1:
            raise ValueError("rate must be > 0, burst and max_attempts >= 1")
        self.url = url
        self._load = load
        self._rate, self._burst = rate, burst
        self._max_attempts, self._backoff, self._timeout = max_attempts, backoff, timeout
        self._reload_interval = reload_interval
        # batches of new edges waiting to be matched (matching is fast: this fills only if it is stuck)
        self._inbox: queue.Queue[Sequence[edge_pb2.Edge]] = queue.Queue(maxsize=inbox_size)
        # messages waiting to be posted: fills while the webhook is slow or down
        self._outbox: queue.Queue[edge_pb2.Edge] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the counters and the index reference
        self._counts = {"uncovered": 0, "delivered": 0, "failed": 0, "dropped": 0, "retries": 0, "reloads": 0}
        self._index = IntentsIndex(self._initial_load())
        self._threads = [threading.Thread(target=fn, name=f"signals-{name}", daemon=True)
                         for name, fn in (("matcher", self._match_loop), ("sender", self._send_loop),
                                          ("reloader", self._reload_loop))]

    # -- wiring --

    def _initial_load(self) -> list[Any]:
        result = self._load()  # errors propagate: the CLI refuses to start with intents it cannot read
        for p in result.problems:
            log.warning("intents: skipped %s", p.describe())
        log.info("signals: %d ClientIntents loaded", len(result.intents))
        return result.intents

    def start(self) -> UncoveredCallSignaller:
        for t in self._threads:
            t.start()
        return self

    def stop(self, flush_timeout: float = 2.0) -> SignalStats:
        """Deliver what is queued for up to `flush_timeout` seconds, then stop; the rest counts as dropped."""
        deadline = time.monotonic() + flush_timeout
        while (self._inbox.unfinished_tasks or self._outbox.unfinished_tasks) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=max(self._timeout, 1.0) + 1.0)
        left = self._drain(self._outbox) + self._drain(self._inbox)
        if left:
            self._count("dropped", left)
        stats = self.stats()
        log.info("signals stopped: %s", stats)
        return stats

    def stats(self) -> SignalStats:
        with self._lock:
            return SignalStats(**self._counts)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    @staticmethod
    def _drain(q: queue.Queue[Any]) -> int:
        n = 0
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                return n
            n += 1

    # -- the observer (ingest thread: must not block) --

    def new_edges(self, edges: Sequence[edge_pb2.Edge]) -> None:
        try:
            self._inbox.put_nowait(edges)
        except queue.Full:
            self._count("dropped", len(edges))
            log.warning("signals: inbox full, %d new edges not checked", len(edges))

    # -- matcher --

    def _match_loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                with self._lock:
                    index = self._index
                for edge in batch:
                    call = call_of(edge)
                    if call is None or call.server_kind not in _NAMEABLE or index.covering(call) is not None:
                        continue
                    self._count("uncovered")
                    try:
                        self._outbox.put_nowait(edge)
                    except queue.Full:
                        self._count("dropped")
            except Exception:
                log.exception("signals: matching a batch failed")
            finally:
                self._inbox.task_done()

    # -- sender --

    def _send_loop(self) -> None:
        tokens = float(self._burst)
        refilled = time.monotonic()
        while not self._stop.is_set():
            try:
                edge = self._outbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                # token bucket: wait for a token, but give up waiting at stop
                while True:
                    now = time.monotonic()
                    tokens = min(float(self._burst), tokens + (now - refilled) * self._rate)
                    refilled = now
                    if tokens >= 1.0 or self._stop.is_set():
                        break
                    self._stop.wait((1.0 - tokens) / self._rate)
                if self._stop.is_set():
                    self._count("dropped")
                    continue
                tokens -= 1.0
                signal = build_signal(edge)
                if signal is None:  # cannot happen for a nameable call; count it rather than lose it
                    self._count("failed")
                    continue
                self._deliver(signal)
            finally:
                self._outbox.task_done()

    def _deliver(self, signal: Signal) -> None:
        body = json.dumps(signal.payload).encode()
        for attempt in range(1, self._max_attempts + 1):
            wait = self._backoff * 2 ** (attempt - 1)
            try:
                req = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json", "User-Agent": USER_AGENT})
                with urllib.request.urlopen(req, timeout=self._timeout) as resp:  # noqa: S310 - URL is the user's
                    resp.read()
                self._count("delivered")
                return
            except urllib.error.HTTPError as e:
                if e.code not in _RETRY_STATUS:
                    log.warning("signals: webhook refused a message: HTTP %d", e.code)
                    self._count("failed")
                    return
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.strip().isdigit():
                    wait = max(wait, float(retry_after))
                reason = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                reason = str(getattr(e, "reason", e))
            if attempt == self._max_attempts or self._stop.is_set():
                log.warning("signals: giving up on a message after %d attempts (%s)", attempt, reason)
                self._count("failed")
                return
            self._count("retries")
            log.info("signals: webhook attempt %d failed (%s), retrying in %.1fs", attempt, reason, wait)
            if self._stop.wait(min(wait, _MAX_BACKOFF)):
                self._count("failed")
                return

    # -- reloader --

    def _reload_loop(self) -> None:
        logged: tuple[int, int, int, int] | None = None
        while not self._stop.wait(self._reload_interval):
            stats = self.stats()
            now = (stats.uncovered, stats.delivered, stats.failed, stats.dropped)
            if now != logged and any(now):  # the counters, each time they moved, for whoever reads the log
                log.info("signals: %d uncovered calls, %d delivered, %d failed, %d dropped", *now)
                logged = now
            try:
                result = self._load()
            except Exception as e:  # keep the intents we have; the next reload may succeed
                log.warning("signals: reloading intents failed, keeping the previous ones: %s", e)
                continue
            index = IntentsIndex(result.intents)
            with self._lock:
                self._index = index
                self._counts["reloads"] += 1
