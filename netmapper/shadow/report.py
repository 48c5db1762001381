"""A DiffResult as text: a table for people, JSON for programs, Markdown for a pull-request comment.

JSON shape (documented in the README):
  {"covered": [...], "uncovered": [...], "unused": [...]}, each entry
  {"client": {"name", "namespace", "kind"}, "target": {...as export writes it}, "port": N,
   "last_seen": RFC3339}; `port` and `last_seen` are absent for unused entries.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Final

from netmapper.intents.documents import API_GROUP, KIND
from netmapper.intents.yaml_writer import render_yaml
from netmapper.shadow.diff import DiffResult, Entry
from netmapper.shadow.model import ClientRef

FORMATS: Final[tuple[str, ...]] = ("table", "json", "markdown")


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_json(entry: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"client": entry.client.as_json(), "target": entry.target}
    if entry.port is not None:
        out["port"] = entry.port
    if entry.last_seen_ns is not None:
        out["last_seen"] = rfc3339(entry.last_seen_ns)
    return out


def render_json(result: DiffResult) -> str:
    return json.dumps({
        "covered": [entry_json(e) for e in result.covered],
        "uncovered": [entry_json(e) for e in result.uncovered],
        "unused": [entry_json(e) for e in result.unused],
    }, indent=2) + "\n"


def target_label(target: dict[str, Any]) -> str:
    """"cart (Deployment)", "svc/cart.shop", "internet api.example.com :443"."""
    if "kubernetes" in target:
        body = target["kubernetes"]
        return str(body["name"]) + (f" ({body['kind']})" if body.get("kind") else "")
    if "service" in target:
        return f"svc/{target['service']['name']}"
    if "internet" in target:
        body = target["internet"]
        where = ", ".join([*body.get("domains", []), *body.get("ips", [])])
        ports = body.get("ports")
        return f"internet {where}" + (f" :{','.join(map(str, ports))}" if ports else " (any port)")
    return json.dumps(target, sort_keys=True)


def intents_snippet(client: ClientRef, targets: Sequence[dict[str, Any]]) -> str:
    """The ClientIntents document (v2beta1 YAML) that would allow `targets` for `client`."""
    workload: dict[str, Any] = {"name": client.name}
    if client.kind:
        workload["kind"] = client.kind
    doc = {"apiVersion": f"{API_GROUP}/v2beta1", "kind": KIND,
           "metadata": {"name": client.name, "namespace": client.namespace},
           "spec": {"workload": workload, "targets": list(targets)}}
    return render_yaml([doc])


def _rows(entries: Sequence[Entry], *, observed: bool) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for e in entries:
        if observed:
            rows.append((e.client.label(), target_label(e.target), str(e.port),
                         rfc3339(e.last_seen_ns or 0)))
        else:
            where = (e.declared_target.source if e.declared_target else "") or (e.declared.source if e.declared else "")
            rows.append((e.client.label(), target_label(e.target), where))
    return rows


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    all_rows = [header, *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in all_rows)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def render_table(result: DiffResult) -> str:
    out = []
    sections = (
        ("UNCOVERED (observed, not declared: blocked when enforced)", result.uncovered, True),
        ("UNUSED (declared, not observed)", result.unused, False),
        ("COVERED", result.covered, True),
    )
    for title, entries, observed in sections:
        out.append(f"{title}: {len(entries)}")
        if entries:
            header = ("CLIENT", "TARGET", "PORT", "LAST SEEN") if observed else ("CLIENT", "TARGET", "DECLARED AT")
            out.append(_table(header, _rows(entries, observed=observed)))
        out.append("")
    out.append("COVERAGE")
    out.append(_table(("CLIENT", "COVERED", "OBSERVED", "COVERAGE"),
                      [(c.client.label(), str(c.covered), str(c.observed), _percent(c.percent))
                       for c in result.coverage]))
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(result: DiffResult) -> str:
    n_un = len(result.uncovered)
    verdict = (f"**{n_un} observed call{'s' if n_un != 1 else ''} not covered by the declared intents** "
               "(would be blocked when enforced)." if n_un else "**Every observed call is covered.**")
    out = ["### netmapper diff", "", verdict + f" Covered: {len(result.covered)}, unused declarations: "
           f"{len(result.unused)}.", ""]
    if result.uncovered:
        out += ["#### Uncovered", "",
                _md_table(("Client", "Target", "Port", "Last seen"), _rows(result.uncovered, observed=True)), ""]
        out += ["<details><summary>ClientIntents that would cover them</summary>", "", "```yaml"]
        by_client: dict[ClientRef, list[dict[str, Any]]] = {}
        for e in result.uncovered:
            targets = by_client.setdefault(e.client, [])
            if e.target not in targets:
                targets.append(e.target)
        out.append("---\n".join(intents_snippet(c, t) for c, t in by_client.items()).rstrip("\n"))
        out += ["```", "", "</details>", ""]
    if result.unused:
        out += ["#### Unused declarations", "",
                _md_table(("Client", "Target", "Declared at"), _rows(result.unused, observed=False)), ""]
    out += ["#### Coverage", "",
            _md_table(("Client", "Covered", "Observed", "Coverage"),
                      [(c.client.label(), str(c.covered), str(c.observed), _percent(c.percent))
                       for c in result.coverage]), ""]
    return "\n".join(out)


def render(result: DiffResult, fmt: str) -> str:
    if fmt == "json":
        return render_json(result)
    if fmt == "markdown":
        return render_markdown(result)
    if fmt == "table":
        return render_table(result)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
