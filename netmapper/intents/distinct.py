"""Otterize's `--distinct-by-label KEY` for export: one ClientIntents per (client name, label value).

Teams that deploy one application into several namespaces (per environment, per tenant) label its pods, say
`app.kubernetes.io/instance`; with the flag, clients are told apart by that label's value instead of by
namespace, so identical copies collapse into one document. The first document (in the export's
deterministic order) of each (name, value) wins; a later one whose targets differ is dropped with a
warning, because applying the kept document to the other copies would be unsafe. Clients without the
label share the value "no_value", as in the Otterize CLI. Pure.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from netmapper.intents.documents import Document
from netmapper_api import keys
from netmapper_api.keys import InvalidEdge
from netmapper_api.v1 import edge_pb2

NO_VALUE = "no_value"


def client_label_values(edges: Iterable[edge_pb2.Edge], key: str) -> dict[tuple[str, str], str]:
    """(namespace, workload name) of each client workload -> its value of label `key` (the smallest seen)."""
    out: dict[tuple[str, str], str] = {}
    for e in edges:
        try:
            cid = keys.endpoint_identity(e.client, "client")
        except InvalidEdge:
            continue
        if cid[0] != keys.WORKLOAD or key not in e.client.labels:
            continue
        value = e.client.labels[key]
        cur = out.get((cid[1], cid[3]))
        if cur is None or value < cur:
            out[(cid[1], cid[3])] = value
    return out


def _targets(doc: Document) -> frozenset[str]:
    spec = doc.get("spec") or {}
    listed = spec.get("targets", spec.get("calls")) or []
    return frozenset(json.dumps(t, sort_keys=True) for t in listed)


def distinct_by_label(documents: Sequence[Document], values: dict[tuple[str, str], str]) -> tuple[list[Document], list[str]]:
    """Documents with one per (client name, label value), and warnings for dropped ones that differed."""
    kept: dict[tuple[str, str], Document] = {}
    warnings: list[str] = []
    for doc in documents:
        meta = doc["metadata"]
        workload = (doc["spec"].get("workload") or doc["spec"].get("service") or {}).get("name", meta["name"])
        group = (meta["name"], values.get((meta["namespace"], workload), NO_VALUE))
        first = kept.get(group)
        if first is None:
            kept[group] = doc
            continue
        if _targets(first) != _targets(doc):
            warnings.append(
                f"intents for {meta['name']} in namespace {first['metadata']['namespace']} differ from those in "
                f"namespace {meta['namespace']}: kept {first['metadata']['namespace']}'s, dropped "
                f"{meta['namespace']}'s; unsafe to apply to both")
    return list(kept.values()), warnings
