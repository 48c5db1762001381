"""ChangeLog: the bounded log of changed edges that WatchEdges streams read. No I/O.

A store publishes each committed change set (the rows it changed, in commit order) with the store cursor
after it (the resume position a watcher can be given). Every watcher reads the one shared log at its own
position, so ten watchers cost ten positions, not ten queues. The log keeps at most `capacity` rows: a
watcher whose position fell off the front has lost changes, and reading tells it how many (the server then
sends LostEvents and the current set: an explicit signal, never a silent gap). forget() (reset, expiry)
starts a new generation: every watcher is told, and resyncs.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

R = TypeVar("R")

DEFAULT_CAPACITY: Final[int] = 200_000


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where a watcher stands: after change set `seq` of `generation`, `rows` rows published before it."""

    generation: int
    seq: int
    rows: int


@dataclass(frozen=True, slots=True)
class ChangeSet(Generic[R]):
    """Rows one commit changed, with the store cursors before and after it."""

    seq: int
    rows_before: int  # rows published before this set (for counting what a lagging watcher lost)
    cursor_before: int
    cursor_after: int
    rows: tuple[R, ...]


@dataclass(frozen=True, slots=True)
class ReadResult(Generic[R]):
    """What a watcher gets: change sets (possibly none after a timeout), or lost/forgotten."""

    position: LogPosition
    changes: tuple[ChangeSet[R], ...] = ()
    lost: int = 0  # > 0: the watcher fell behind by this many rows; resync
    forgotten: bool = False  # a new generation began (reset/expiry); resync


class ChangeLog(Generic[R]):
    """Thread-safe; publish() is cheap (an append) so stores call it while holding their own lock."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._cond = threading.Condition()
        self._sets: deque[ChangeSet[R]] = deque()
        self._held = 0  # rows in _sets
        self._generation = 0
        self._seq = 0
        self._rows = 0  # rows ever published in this generation
        self._cursor = 0  # store cursor after the last published set
        self._last_read = float("-inf")  # monotonic time of the last read: are there watchers?

    def watched_within(self, seconds: float) -> bool:
        """True when a watcher read the log in the last `seconds` (a store may skip feeding it otherwise)."""
        return time.monotonic() - self._last_read < seconds

    def position(self) -> LogPosition:
        """The current end of the log (a new watcher starts here after reading the current set)."""
        with self._cond:
            return LogPosition(self._generation, self._seq, self._rows)

    def publish(self, rows: Sequence[R], cursor_after: int) -> None:
        if not rows:
            with self._cond:
                self._cursor = max(self._cursor, cursor_after)
            return
        with self._cond:
            self._seq += 1
            self._sets.append(ChangeSet(self._seq, self._rows, self._cursor, cursor_after, tuple(rows)))
            self._rows += len(rows)
            self._held += len(rows)
            self._cursor = max(self._cursor, cursor_after)
            while self._held > self._capacity and len(self._sets) > 1:
                self._held -= len(self._sets.popleft().rows)
            self._cond.notify_all()

    def forget(self) -> None:
        """Everything published so far is void (edges were forgotten): watchers must resync."""
        with self._cond:
            self._generation += 1
            self._sets.clear()
            self._held = self._seq = self._rows = 0
            self._cond.notify_all()

    def read(self, after: LogPosition, timeout: float) -> ReadResult[R]:
        """Change sets after `after`, waiting up to `timeout` seconds for one."""
        deadline = time.monotonic() + timeout
        self._last_read = time.monotonic()
        with self._cond:
            while True:
                if after.generation != self._generation:
                    return ReadResult(LogPosition(self._generation, self._seq, self._rows), forgotten=True)
                if self._seq > after.seq:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return ReadResult(after)
                self._cond.wait(left)
            end = LogPosition(self._generation, self._seq, self._rows)
            oldest = self._sets[0]
            if oldest.seq > after.seq + 1:  # sets the watcher never read were dropped
                return ReadResult(end, lost=oldest.rows_before - after.rows)
            first = after.seq + 1 - oldest.seq
            return ReadResult(end, changes=tuple(self._sets[i] for i in range(first, len(self._sets))))
