"""Observed edges held against declared ClientIntents: covered, uncovered, unused. Pure.

- uncovered: an observed call no declared target allows; enforcing now would block it.
- covered: an observed call some declared target allows.
- unused: a declared target no observed call (since the cutoff) used: stale or over-permissive.
Targets of observed calls are named exactly as `netmapper export` writes them (the export module does
the naming), so an uncovered entry is the target to add. Edges export cannot express (the client is a
node or an address, the server a node or an unresolved address) are left out and listed in `skipped`.
Only edges last seen at or after `since_ns` take part; the default (0) takes every edge.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netmapper.intents.export import ExportOptions, export_intents
from netmapper.shadow.match import Call, IntentsIndex, call_of
from netmapper.shadow.model import ClientRef, DeclaredIntents, DeclaredTarget
from netmapper_api.v1 import edge_pb2


@dataclass(frozen=True)
class Entry:
    """One line of a diff. port/last_seen/first_seen are None for unused declarations."""

    client: ClientRef
    target: dict[str, Any]
    port: int | None = None
    last_seen_ns: int | None = None
    first_seen_ns: int | None = None
    # covered/unused: the declaration (document and target); uncovered: None
    declared: DeclaredIntents | None = field(default=None, compare=False)
    declared_target: DeclaredTarget | None = field(default=None, compare=False)

    def sort_key(self) -> tuple[str, str, str, str, int]:
        c = self.client
        return (c.namespace, c.name, c.kind, json.dumps(self.target, sort_keys=True), self.port or 0)


@dataclass(frozen=True)
class ClientCoverage:
    client: ClientRef
    observed: int  # observed calls (edges) of this client since the cutoff
    covered: int

    @property
    def percent(self) -> float | None:
        return None if not self.observed else 100.0 * self.covered / self.observed


@dataclass(frozen=True)
class DiffResult:
    covered: list[Entry]
    uncovered: list[Entry]
    unused: list[Entry]
    coverage: list[ClientCoverage]
    skipped: list[str]  # edges that no ClientIntents can express, described
    ignored_targets: int  # declared sql/aws/gcp/azure targets: not network, not compared


def edge_ns(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def export_targets(edge: edge_pb2.Edge, options: ExportOptions | None = None) -> list[dict[str, Any]]:
    """The targets `netmapper export` writes for this one edge (several internet targets when the
    address has several names); [] when export cannot express it."""
    docs = export_intents([edge], options).documents
    return list(docs[0]["spec"]["targets"]) if docs else []


def entry_target(targets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One target naming a call: export's, with the domains of one address's names merged."""
    if len(targets) == 1:
        return targets[0]
    domains = sorted({d for t in targets for d in t.get("internet", {}).get("domains", [])})
    ports = sorted({p for t in targets for p in t.get("internet", {}).get("ports", [])})
    return {"internet": {"domains": domains, "ports": ports}}


def diff(edges: Iterable[edge_pb2.Edge], intents: Sequence[DeclaredIntents], *, since_ns: int = 0,
         options: ExportOptions | None = None) -> DiffResult:
    index = IntentsIndex(intents)
    covered: list[Entry] = []
    uncovered: list[Entry] = []
    used: set[tuple[int, int]] = set()  # (id of document, target index)
    counts: dict[ClientRef, list[int]] = {}
    skipped: list[str] = []
    for edge in edges:
        last = edge_ns(edge.last_seen)
        if last < since_ns:
            continue
        call: Call | None = call_of(edge)
        targets = export_targets(edge, options) if call is not None else []
        if call is None or not targets:
            skipped.extend(s.describe() for s in export_intents([edge], options).skipped)
            continue
        matches = index.all_covering(call)
        for doc, target in matches:
            used.add((id(doc), target.index))
        count = counts.setdefault(call.client, [0, 0])
        count[0] += 1
        entry = Entry(client=call.client, target=entry_target(targets), port=call.port, last_seen_ns=last,
                      first_seen_ns=edge_ns(edge.first_seen),
                      declared=matches[0][0] if matches else None,
                      declared_target=matches[0][1] if matches else None)
        if matches:
            count[1] += 1
            covered.append(entry)
        else:
            uncovered.append(entry)
    unused = [Entry(client=doc.client, target=t.written, declared=doc, declared_target=t)
              for doc in intents for t in doc.targets if (id(doc), t.index) not in used]
    # Declared clients nobody saw still get a coverage row (nothing observed).
    for doc in intents:
        if not any(_same_client(doc.client, c) for c in counts):
            counts.setdefault(doc.client, [0, 0])
    coverage = [ClientCoverage(client=c, observed=n[0], covered=n[1])
                for c, n in sorted(counts.items(), key=lambda item: item[0])]
    return DiffResult(
        covered=sorted(covered, key=Entry.sort_key),
        uncovered=sorted(uncovered, key=Entry.sort_key),
        unused=sorted(unused, key=Entry.sort_key),
        coverage=coverage,
        skipped=sorted(set(skipped)),
        ignored_targets=sum(d.ignored_targets for d in intents),
    )


def _same_client(declared: ClientRef, observed: ClientRef) -> bool:
    return (declared.namespace, declared.name) == (observed.namespace, observed.name) and (
        not declared.kind or declared.kind == observed.kind)
