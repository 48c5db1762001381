"""The hook through which something outside the mapper learns of edges it has never seen before.

The server calls `new_edges` after a batch is merged, on the thread that serves the sniffer's stream,
with the edges of that batch that created a record (re-reports of known edges are not passed on, so a
restart with a database does not replay old edges). An observer must return at once: queue the work
and do it on its own thread. What it raises is logged and never reaches the sniffer.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from netmapper_api.v1 import edge_pb2


class NewEdgeObserver(Protocol):
    def new_edges(self, edges: Sequence[edge_pb2.Edge]) -> None:
        """Edges the store had no record of before this batch (as reported)."""
