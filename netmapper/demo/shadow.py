"""The demo's last act: hold what it saw against a bundled intents folder (scenario.INTENTS_DIR), as a CI
job would with `netmapper diff`, and draw the map coloured by coverage."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from netmapper.demo import scenario
from netmapper.graph import build_graph, render_graph
from netmapper.shadow.diff import DiffResult, diff
from netmapper.shadow.load import load_paths
from netmapper.shadow.report import render_table
from netmapper_api.v1 import edge_pb2


@dataclass(frozen=True)
class ShadowAct:
    result: DiffResult
    report: str  # the diff as `netmapper diff` prints it
    picture: Path
    problems: list[str]  # differences from what the scenario was designed to show


def shadow_act(edges: Sequence[edge_pb2.Edge], picture: Path) -> ShadowAct:
    declared = load_paths([scenario.INTENTS_DIR])
    problems = [f"bundled intents: {p.describe()}" for p in declared.problems]
    result = diff(edges, declared.intents)
    graph = build_graph(edges, declared.intents, namespaces=scenario.NAMESPACES)
    picture.parent.mkdir(parents=True, exist_ok=True)
    picture.write_bytes(render_graph(graph, picture.suffix.lstrip(".") or "svg"))
    uncovered = [(e.client.namespace, e.client.name, e.target, e.port) for e in result.uncovered]
    unused = [(e.client.namespace, e.client.name, e.target) for e in result.unused]
    if uncovered != scenario.EXPECTED_UNCOVERED:
        problems.append(f"uncovered: expected {scenario.EXPECTED_UNCOVERED}, got {uncovered}")
    if unused != scenario.EXPECTED_UNUSED:
        problems.append(f"unused: expected {scenario.EXPECTED_UNUSED}, got {unused}")
    return ShadowAct(result=result, report=render_table(result), picture=picture, problems=problems)
