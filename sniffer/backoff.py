"""Exponential backoff with jitter for reconnecting to the Kubernetes API."""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Exponential backoff with jitter; reset after a stream works again."""

    rng: random.Random
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    _next: float = 0.0

    def next_delay(self) -> float:
        base = self._next or self.initial
        self._next = min(self.maximum, base * self.factor)
        # Jitter spreads the reconnects of every node in the cluster after an API server restart.
        return base * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._next = 0.0
