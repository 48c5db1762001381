"""Edges (and optionally declared intents) -> a Graphviz graph of who calls whom. Pure until rendered.

Namespaces are clusters, workloads (and Services with nothing behind them) are nodes inside them, the
outside world is one cluster with a node per DNS name (an address's calls are grouped under the name
the client asked for) or per bare address. Calls are edges labelled with their ports. With declared
intents: a covered call is green, an uncovered one yellow (what enforcing would block), and a
declared target nobody called is a dashed grey edge to what it names.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import graphviz

from netmapper_api import keys
from netmapper.shadow.match import IntentsIndex, call_of
from netmapper.shadow.model import DeclaredIntents, DeclaredTarget
from netmapper_api.v1 import edge_pb2

COVERED_COLOR: Final[str] = "forestgreen"
UNCOVERED_COLOR: Final[str] = "gold"
UNUSED_COLOR: Final[str] = "grey60"
PLAIN_COLOR: Final[str] = "black"
INTERNET_CLUSTER: Final[str] = "cluster_internet"
OUTPUT_FORMATS: Final[tuple[str, ...]] = ("svg", "png", "dot")


def _safe(text: str) -> str:
    """Node ids must not contain ":" (DOT reads "a:b" in an edge as node a, port b): IPv6 gets "_"."""
    return text.replace(":", "_")


@dataclass(frozen=True, slots=True, order=True)
class _Node:
    id: str
    cluster: str  # "" = top level
    label: str
    shape: str = "box"


def _endpoint_nodes(ep: edge_pb2.Endpoint, side: str) -> list[_Node]:
    """Graph nodes for one side of an edge (an internet address with names: one node per name)."""
    ident = keys.endpoint_identity(ep, side)
    kind = ident[0]
    if kind == keys.WORKLOAD:
        ns, wkind, name = ident[1], ident[2], ident[3]
        return [_Node(f"wl/{ns}/{name}", f"cluster_ns_{ns}", f"{name}\n{wkind}" if wkind else name)]
    if kind == keys.SERVICE:
        return [_Node(f"svc/{ident[1]}/{ident[2]}", f"cluster_ns_{ident[1]}", f"svc/{ident[2]}", "ellipse")]
    if kind == keys.INTERNET:
        names = sorted({keys.normalize_dns_name(n) for n in ep.dns_names} - {""})
        if names:
            return [_Node(f"net/{n}", INTERNET_CLUSTER, n, "oval") for n in names]
        return [_Node(f"net/{_safe(ident[1])}", INTERNET_CLUSTER, ident[1], "oval")]
    if kind == keys.NODE:
        return [_Node(f"node/{_safe(ident[1] or ident[2])}", "", f"node {ident[1] or ident[2]}", "box3d")]
    return [_Node(f"ip/{_safe(ident[1])}", "", f"{ident[1]}\n(unresolved)", "oval")]


def _target_nodes(doc: DeclaredIntents, target: DeclaredTarget) -> list[_Node]:
    if target.type == "kubernetes":
        label = f"{target.name}\n{target.kind}" if target.kind else target.name
        return [_Node(f"wl/{target.namespace}/{target.name}", f"cluster_ns_{target.namespace}", label)]
    if target.type == "service":
        return [_Node(f"svc/{target.namespace}/{target.name}", f"cluster_ns_{target.namespace}",
                      f"svc/{target.name}", "ellipse")]
    return [_Node(f"net/{_safe(x)}", INTERNET_CLUSTER, x, "oval") for x in (*target.domains, *target.ips)]


def _in_namespaces(namespaces: frozenset[str], *nodes: _Node) -> bool:
    return not namespaces or any(n.cluster.removeprefix("cluster_ns_") in namespaces for n in nodes)


def _declared_only(node: _Node, seen: set[str]) -> dict[str, str]:
    """A node no observed call touches (only a stale declaration names it) is drawn dashed grey."""
    return {} if node.id in seen else {"style": "dashed", "color": UNUSED_COLOR, "fontcolor": UNUSED_COLOR}


def build_graph(edges: Iterable[edge_pb2.Edge], intents: Sequence[DeclaredIntents] | None = None, *,
                namespaces: Sequence[str] = ()) -> graphviz.Digraph:
    """The map of `edges`; coloured by coverage when `intents` is given (even an empty list)."""
    wanted = frozenset(namespaces)
    index = IntentsIndex(intents) if intents is not None else None
    nodes: dict[str, _Node] = {}
    seen: set[str] = set()  # nodes of observed calls; the rest only appear in declarations
    # (client id, server id, colour, style) -> ports
    arrows: dict[tuple[str, str, str, str], set[int]] = {}
    used: set[tuple[int, int]] = set()
    for edge in edges:
        try:
            clients = _endpoint_nodes(edge.client, "client")
            servers = _endpoint_nodes(edge.server, "server")
        except keys.InvalidEdge:
            continue
        if not _in_namespaces(wanted, *clients, *servers):
            continue
        color = PLAIN_COLOR
        call = call_of(edge)
        if index is not None and call is not None:
            matches = index.all_covering(call)
            used.update((id(doc), t.index) for doc, t in matches)
            color = COVERED_COLOR if matches else UNCOVERED_COLOR
        for n in (*clients, *servers):
            nodes.setdefault(n.id, n)
            seen.add(n.id)
        for c in clients:
            for s in servers:
                arrows.setdefault((c.id, s.id, color, "solid"), set()).add(edge.port)
    for doc in intents or ():
        client = _Node(f"wl/{doc.client.namespace}/{doc.client.name}", f"cluster_ns_{doc.client.namespace}",
                       f"{doc.client.name}\n{doc.client.kind}" if doc.client.kind else doc.client.name)
        for target in doc.targets:
            if (id(doc), target.index) in used:
                continue
            targets = _target_nodes(doc, target)
            if not _in_namespaces(wanted, client, *targets):
                continue
            nodes.setdefault(client.id, client)
            for t in targets:
                nodes.setdefault(t.id, t)
                arrows.setdefault((client.id, t.id, UNUSED_COLOR, "dashed"), set()).update(target.ports)

    graph = graphviz.Digraph("netmapper", graph_attr={"rankdir": "LR", "fontname": "Helvetica"},
                             node_attr={"fontname": "Helvetica", "fontsize": "11"},
                             edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    clusters: dict[str, list[_Node]] = {}
    for n in sorted(nodes.values()):
        clusters.setdefault(n.cluster, []).append(n)
    for cluster, members in sorted(clusters.items()):
        if not cluster:
            for n in members:
                graph.node(n.id, n.label, shape=n.shape, **_declared_only(n, seen))
            continue
        label = "internet" if cluster == INTERNET_CLUSTER else f"namespace {cluster.removeprefix('cluster_ns_')}"
        with graph.subgraph(name=cluster) as sub:
            sub.attr(label=label, style="rounded", color="grey70")
            for n in members:
                sub.node(n.id, n.label, shape=n.shape, **_declared_only(n, seen))
    for (src, dst, color, style), ports in sorted(arrows.items()):
        label = ",".join(str(p) for p in sorted(ports)) if ports else ("any port" if style == "dashed" else "")
        graph.edge(src, dst, label=label, color=color, fontcolor=color if color != UNCOVERED_COLOR else "goldenrod4",
                   style=style, penwidth="2" if color == UNCOVERED_COLOR else "1")
    return graph


def render_graph(graph: graphviz.Digraph, fmt: str) -> bytes:
    """The graph as DOT source, or laid out by Graphviz's `dot` as SVG/PNG."""
    if fmt == "dot":
        return str(graph.source).encode()
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
    data: bytes = graph.pipe(format=fmt)
    return data
