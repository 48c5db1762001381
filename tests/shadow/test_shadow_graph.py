"""visualize: the graph's nodes, clusters, edges and colours, in each output format (parsed back)."""
from __future__ import annotations

import json
import struct
import zlib
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from edge_testing import edge, internet, service, workload
from netmapper.graph import COVERED_COLOR, UNCOVERED_COLOR, UNUSED_COLOR, build_graph, render_graph
from netmapper.shadow.load import load_text

INTENTS = """\
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: frontend, namespace: shop}
spec:
  workload: {name: frontend, kind: Deployment}
  targets:
  - kubernetes: {name: cart}
  - service: {name: search}
  - internet: {domains: [old.partner.example], ports: [443]}
"""

EDGES = [
    edge(workload("frontend"), workload("cart", service=("cart", "shop")), 8080),
    edge(workload("frontend"), workload("cart"), 9090),
    edge(workload("frontend"), internet("198.51.100.7", "api.partner.example"), 443),
    edge(workload("frontend"), internet("198.51.100.8", "api.partner.example"), 443),  # same name, other IP
    edge(workload("invoicer", "billing", "CronJob"), workload("cart"), 8080),
    edge(workload("cart"), service("legacy"), 80),
]


def declared() -> list[Any]:
    return load_text(INTENTS, "i.yaml").intents


styles: dict[str, str] = {}  # node name -> style, of the last graph parse_dot read


def parse_dot(source: str) -> tuple[dict[str, str], dict[str, set[str]], dict[tuple[str, str, str], dict[str, str]]]:
    """(node name -> label, cluster name -> node names, (tail, head, colour) -> edge attributes), as
    Graphviz itself reads the DOT source."""
    out = json.loads(subprocess.run(["dot", "-Tjson0"], input=source, capture_output=True, text=True,
                                    check=True).stdout)
    objects = out["objects"]
    nodes = {o["name"]: o["label"] for o in objects if "nodes" not in o and "subgraphs" not in o}
    styles.clear()
    styles.update({o["name"]: o.get("style", "") for o in objects if "nodes" not in o and "subgraphs" not in o})
    names = {o["_gvid"]: o["name"] for o in objects}
    clusters = {o["name"]: {names[i] for i in o.get("nodes", [])} for o in objects if o["name"].startswith("cluster")}
    edges = {(names[e["tail"]], names[e["head"]], e["color"]): e for e in out.get("edges", [])}
    return nodes, clusters, edges


def test_nodes_clusters_and_coverage_colours() -> None:
    nodes, clusters, edges = parse_dot(render_graph(build_graph(EDGES, declared()), "dot").decode())
    assert clusters == {
        "cluster_ns_shop": {"wl/shop/frontend", "wl/shop/cart", "svc/shop/search", "svc/shop/legacy"},
        "cluster_ns_billing": {"wl/billing/invoicer"},
        "cluster_internet": {"net/api.partner.example", "net/old.partner.example"},
    }
    assert nodes["wl/shop/frontend"] == "frontend\nDeployment"
    # only the stale declarations name these: drawn dashed
    assert {n for n, style in styles.items() if style == "dashed"} == {"svc/shop/search", "net/old.partner.example"}
    assert {(t, h, c): (e["label"], e["style"]) for (t, h, c), e in edges.items()} == {
        ("wl/shop/frontend", "wl/shop/cart", COVERED_COLOR): ("8080,9090", "solid"),
        ("wl/shop/frontend", "net/api.partner.example", UNCOVERED_COLOR): ("443", "solid"),
        ("wl/billing/invoicer", "wl/shop/cart", UNCOVERED_COLOR): ("8080", "solid"),
        ("wl/shop/cart", "svc/shop/legacy", UNCOVERED_COLOR): ("80", "solid"),
        ("wl/shop/frontend", "svc/shop/search", UNUSED_COLOR): ("any port", "dashed"),
        ("wl/shop/frontend", "net/old.partner.example", UNUSED_COLOR): ("443", "dashed"),
    }


def test_without_intents_calls_are_plain() -> None:
    _, _, edges = parse_dot(render_graph(build_graph(EDGES), "dot").decode())
    assert {c for _, _, c in edges} == {"black"}
    assert len(edges) == 4


def test_namespace_filter_keeps_calls_touching_it() -> None:
    nodes, clusters, edges = parse_dot(render_graph(build_graph(EDGES, declared(), namespaces=["billing"]), "dot").decode())
    assert set(nodes) == {"wl/billing/invoicer", "wl/shop/cart"}
    assert list(edges) == [("wl/billing/invoicer", "wl/shop/cart", UNCOVERED_COLOR)]


def test_svg_has_the_nodes_edges_and_colours() -> None:
    svg = render_graph(build_graph(EDGES, declared()), "svg")
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    node_titles = {g.find("s:title", ns).text for g in root.iter("{http://www.w3.org/2000/svg}g")  # type: ignore[union-attr]
                   if g.get("class") == "node"}
    assert "wl/shop/frontend" in node_titles and "net/api.partner.example" in node_titles
    strokes: dict[str, set[str]] = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") == "edge":
            title = g.find("s:title", ns).text  # type: ignore[union-attr]
            path = g.find("s:path", ns)
            strokes.setdefault(title, set()).add(path.get("stroke"))  # type: ignore[union-attr]
    assert strokes["wl/shop/frontend->net/api.partner.example"] == {"gold"}
    assert strokes["wl/shop/frontend->wl/shop/cart"] == {"forestgreen"}
    assert strokes["wl/shop/frontend->svc/shop/search"] == {"#999999"}  # grey60


def png_colours(png: bytes) -> set[tuple[int, int, int]]:
    """The opaque RGB colours of an 8-bit RGB/RGBA non-interlaced PNG (what Graphviz's cairo writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, header = 8, b"", b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            data += chunk
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0
    bpp = 4 if colour_type == 6 else 3
    raw, stride, prev, out = zlib.decompress(data), width * bpp, bytearray(width * bpp), set()
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out.update((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, bpp)
                   if bpp == 3 or line[i + 3] == 255)
        prev = line
    return out


GOLD, FORESTGREEN, GREY60 = (255, 215, 0), (34, 139, 34), (153, 153, 153)


def test_png_draws_the_coverage_colours() -> None:
    coloured = png_colours(render_graph(build_graph(EDGES, declared()), "png"))
    assert {GOLD, FORESTGREEN, GREY60} <= coloured
    plain = png_colours(render_graph(build_graph(EDGES), "png"))
    assert not {GOLD, FORESTGREEN} & plain  # (grey also appears in anti-aliased black text)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError):
        render_graph(build_graph(EDGES), "gif")
