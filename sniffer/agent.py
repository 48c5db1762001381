"""Agent: the sniffer's drain loop. Wires probe -> resolver -> accumulator -> reporter.

Every `interval` seconds: drain the kernel map, resolve both sides of each connect, merge into the
accumulator, and hand a batch to the reporter when it is idle. Kernel-side and queue-side losses
travel with the next batch as LostEvents. Errors in one cycle are logged and the loop goes on.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import chain
from typing import Protocol

from netmapper_api.convert import lost_events_to_proto
from netmapper_api.endpoints import EndpointKind
from netmapper_api.loss import LossSource
from netmapper_api.v1 import edge_pb2
from sniffer.edges import EdgeAccumulator
from sniffer.records import ConnectObservation, ProbeLoss
from sniffer.reporter import Reporter
from sniffer.resolver import ResolvedConnect, Resolver

log = logging.getLogger(__name__)


class ConnectSource(Protocol):
    def drain(self) -> tuple[list[ConnectObservation], list[ProbeLoss]]: ...


@dataclass
class AgentStats:
    cycles: int = 0
    connects: int = 0
    edges_sent: int = 0
    unresolved_held: int = 0
    errors: int = 0
    drain_seconds_total: float = 0.0  # time spent in cycles: drain, resolve, merge, hand over
    drain_seconds_last: float = 0.0


@dataclass
class Agent:
    source: ConnectSource
    resolver: Resolver
    reporter: Reporter
    interval: float = 1.0
    # In live mode a new pod's watch event can trail its first connect: hold connects that touch an
    # unresolved in-cluster address this long before reporting them unresolved.
    hold_unresolved: float = 0.0
    accumulator: EdgeAccumulator = field(default_factory=EdgeAccumulator)
    stats: AgentStats = field(default_factory=AgentStats)
    on_cycle: Callable[[], object] | None = None  # extra per-cycle work (index pruning)
    loss_sources: list[Callable[[], list[ProbeLoss]]] = field(default_factory=list)  # e.g. the DNS ring buffer
    _held: list[tuple[float, ConnectObservation]] = field(default_factory=list)
    _lost: dict[LossSource, tuple[int, float, float]] = field(default_factory=dict)

    def run(self, stop: threading.Event) -> None:
        next_tick = time.monotonic()
        while not stop.is_set():
            next_tick += self.interval
            started = time.perf_counter()
            try:
                self.cycle(time.time())
            except Exception:  # noqa: BLE001 - the daemon keeps running; the cause is logged
                self.stats.errors += 1
                log.exception("drain cycle failed")
            took = time.perf_counter() - started
            self.stats.drain_seconds_last = took
            self.stats.drain_seconds_total += took
            stop.wait(max(0.0, next_tick - time.monotonic()))

    def finish(self, timeout: float = 5.0) -> bool:
        """On shutdown: drain once more, resolve what is held, and wait until the mapper has it all."""
        deadline = time.monotonic() + timeout
        self.cycle(time.time(), final=True)
        while len(self.accumulator) or self._lost:
            if not self.reporter.flush(max(0.0, deadline - time.monotonic())):
                return False
            self.cycle(time.time(), final=True)
        return self.reporter.flush(max(0.0, deadline - time.monotonic()))

    def cycle(self, now: float, *, final: bool = False) -> None:
        self.stats.cycles += 1
        if self.on_cycle is not None:
            self.on_cycle()
        self._merge(now, final)
        if self.accumulator.overflow:
            self._note_lost(LossSource.SNIFFER_QUEUE, self.accumulator.overflow, now)
            self.accumulator.overflow = 0
        if (len(self.accumulator) or self._lost) and self.reporter.idle():
            columns = self.reporter.reads_columns
            chunks = self.accumulator.take_serialized(None if final else now, columns=columns)
            if not chunks and not self._lost:
                return  # only known edges whose refresh is not due yet
            if self.reporter.offer_serialized(chunks, self._lost_events(), columns=columns):
                self.stats.edges_sent += sum(n for n, _ in chunks)
                self._lost.clear()

    def _merge(self, now: float, final: bool) -> None:
        """Drain, resolve and merge into the accumulator. A method of its own so that the drained
        observations (10k: ~4 MiB) are freed before the batch is serialized, not alongside it."""
        observations, losses = self.source.drain()
        for extra in self.loss_sources:
            losses = [*losses, *extra()]
        for loss in losses:
            self._note_lost(loss.source, loss.count, now)
        self.stats.connects += sum(o.count for o in observations)
        self.accumulator.add(self._resolve(observations, now, final))

    def _resolve(self, observations: list[ConnectObservation], now: float, final: bool) -> Iterator[ResolvedConnect]:
        """Resolved connects, one at a time: the accumulator merges each before the next is made, so
        a drain of 10k keys never holds 10k resolved connects (and their endpoints) at once."""
        retry, self._held = self._held, []
        for since, obs in chain(retry, ((now, o) for o in observations)):
            rc = self.resolver.resolve(obs)
            if (not final and now - since < self.hold_unresolved
                    and (_waits_for_feed(rc.client.kind) or
                         (_waits_for_feed(rc.server.kind) and self.resolver.in_cluster(rc.server.ip)))):
                self._held.append((since, obs))
                continue
            yield rc
        self.stats.unresolved_held = len(self._held)

    def _note_lost(self, source: LossSource, count: int, now: float) -> None:
        if count <= 0:
            return
        n, first, _ = self._lost.get(source, (0, now, now))
        self._lost[source] = (n + count, first, now)

    def _lost_events(self) -> list[edge_pb2.LostEvents]:
        return [lost_events_to_proto(source, n, first, last)
                for source, (n, first, last) in sorted(self._lost.items())]


def _waits_for_feed(kind: EndpointKind) -> bool:
    return kind is EndpointKind.UNRESOLVED


ProbeFactory = Callable[[], AbstractContextManager[ConnectSource]]
