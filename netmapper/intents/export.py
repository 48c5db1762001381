"""Edges -> Otterize ClientIntents documents (dicts) -> YAML or JSON. Pure except write_intents().

Contract (DESIGN.md "Export contract"), per client workload, one document:
- apiVersion k8s.otterize.com/v2beta1 (or v1alpha3, as the Otterize CLI can write), kind ClientIntents,
  metadata {name: workload name, namespace}, spec.workload {name, kind}.
- targets: `kubernetes: {name, kind}` for a workload server; `service: {name}` for a Service with
  nothing behind it, and instead of the workload when the call went through a Service and the caller
  asked for Service targets (Otterize's --as-kubernetes-service); `internet: {domains, ports}` per DNS
  name for addresses outside the cluster, `internet: {ips, ports}` for those without a name (addresses
  with identical port sets share one target). Target names are `name.namespace` when the target lives
  in another namespace than the client.
- Clients that are not workloads (nodes, unresolved or external addresses) and servers that cannot be
  expressed (nodes, unresolved in-cluster addresses) produce no target; they are returned as Skipped
  so the CLI can warn about them.
- Deterministic: documents sorted by (namespace, name, kind), targets by type then name, every list
  sorted; the input order never matters.
- Two client workloads of different kinds with one name in one namespace get metadata.name
  "<name>-<kind>" (lower case) so that neither document overwrites the other when applied.

Not implemented: Otterize's --distinct-by-label and --exclude-labels need pod labels, which edges do
not carry; the CLI should refuse those flags rather than ignore them.

v1alpha3 mapping (Otterize CLI's): spec.service {name, kind}; spec.calls [{name, kind}] for workloads,
[{name: "svc:<name>"}] for Service targets, [{type: internet, internet: {...}}] for the outside world.
"""
from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from netmapper_api import keys
from netmapper_api.keys import EndpointId, InvalidEdge
from netmapper_api.v1 import edge_pb2

API_GROUP: Final[str] = "k8s.otterize.com"
KIND: Final[str] = "ClientIntents"
OutputVersion = Literal["v2beta1", "v1alpha3"]
OUTPUT_VERSIONS: Final[tuple[str, ...]] = ("v2beta1", "v1alpha3")
OutputFormat = Literal["yaml", "json"]
OutputType = Literal["single-file", "dir"]

Document = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """What to export. Every field is optional; the defaults export everything as v2beta1."""

    # namespaces: only clients in these namespaces (Otterize -n); empty means all.
    namespaces: tuple[str, ...] = ()
    # server: only targets that are this server, "name.namespace" (or "name", or a domain/IP for
    # internet targets); clients left without targets produce no document (Otterize --server).
    server: str = ""
    # output_version: "v2beta1" (default) or "v1alpha3".
    output_version: OutputVersion = "v2beta1"
    # include_service_targets: name the Service a call went through instead of the workload behind it.
    include_service_targets: bool = False
    # exclude_services: names ("name" or "name.namespace") dropped as clients and as targets
    # (Otterize --exclude-services); documents left without targets are dropped.
    exclude_services: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.output_version not in OUTPUT_VERSIONS:
            raise ValueError(f"output_version must be one of {', '.join(OUTPUT_VERSIONS)}, not {self.output_version!r}")


@dataclass(frozen=True, slots=True)
class Skipped:
    """An edge (or one side of it) that no ClientIntents document can express."""

    client: str
    server: str
    port: int
    reason: str

    def describe(self) -> str:
        return f"{self.client} -> {self.server}:{self.port}: {self.reason}"


@dataclass(frozen=True)
class ExportResult:
    documents: list[Document]
    skipped: list[Skipped]


def _describe(identity: EndpointId) -> str:
    kind = identity[0]
    if kind == keys.WORKLOAD:
        return f"{identity[2] or 'workload'} {identity[3]}.{identity[1]}"
    if kind == keys.SERVICE:
        return f"service {identity[2]}.{identity[1]}"
    if kind == keys.NODE:
        return f"node {identity[1] or identity[2]}"
    if kind == keys.INTERNET:
        return f"internet {identity[1]}"
    return f"unresolved {identity[1]}"


def _qualify(name: str, namespace: str, client_namespace: str) -> str:
    return name if namespace == client_namespace else f"{name}.{namespace}"


def _matches(patterns: frozenset[str], name: str, namespace: str) -> bool:
    return name in patterns or f"{name}.{namespace}" in patterns


@dataclass
class _ClientTargets:
    """Targets of one client being collected (mutable while building, then rendered to a dict)."""

    workloads: set[tuple[str, str]] = field(default_factory=set)  # (qualified name, kind)
    services: set[str] = field(default_factory=set)  # qualified name
    domains: dict[str, set[int]] = field(default_factory=dict)  # domain -> ports
    ips: dict[str, set[int]] = field(default_factory=dict)  # ip without a known name -> ports

    def __bool__(self) -> bool:
        return bool(self.workloads or self.services or self.domains or self.ips)


def export_intents(edges: Iterable[edge_pb2.Edge], options: ExportOptions | None = None) -> ExportResult:
    """ClientIntents documents for `edges`, plus what could not be expressed."""
    opts = options or ExportOptions()
    namespaces = frozenset(opts.namespaces)
    excluded = frozenset(opts.exclude_services)
    server_filter = opts.server.strip()
    clients: dict[EndpointId, _ClientTargets] = {}
    skipped: set[Skipped] = set()

    for edge in edges:
        try:
            client_id = keys.endpoint_identity(edge.client, "client")
            server_id = keys.endpoint_identity(edge.server, "server")
        except InvalidEdge as exc:
            skipped.add(Skipped(client="?", server="?", port=edge.port, reason=str(exc)))
            continue
        if client_id[0] != keys.WORKLOAD:
            skipped.add(Skipped(_describe(client_id), _describe(server_id), edge.port, "client is not a workload"))
            continue
        client_ns, client_name = client_id[1], client_id[3]
        if namespaces and client_ns not in namespaces:
            continue
        if excluded and _matches(excluded, client_name, client_ns):
            continue
        targets = clients.get(client_id)
        if targets is None:
            targets = clients[client_id] = _ClientTargets()
        server_kind = server_id[0]

        if server_kind == keys.WORKLOAD or server_kind == keys.SERVICE:
            via = edge.server.service
            if server_kind == keys.SERVICE:
                name, ns, as_service = server_id[2], server_id[1], True
            elif opts.include_service_targets and via.name:
                name, ns, as_service = via.name, via.namespace or server_id[1], True
            else:
                name, ns, as_service = server_id[3], server_id[1], False
            if excluded and _matches(excluded, name, ns):
                continue
            if server_filter and not (
                f"{name}.{ns}" == server_filter or name == server_filter
                or (via.name and f"{via.name}.{via.namespace}" == server_filter)
            ):
                continue
            if as_service:
                targets.services.add(_qualify(name, ns, client_ns))
            else:
                targets.workloads.add((_qualify(name, ns, client_ns), server_id[2]))
        elif server_kind == keys.INTERNET:
            ip = server_id[1]
            names = [keys.normalize_dns_name(n) for n in edge.server.dns_names]
            names = [n for n in names if n]
            if server_filter and server_filter != ip:
                if server_filter not in names:
                    continue
                names = [server_filter]  # only the asked-for domain, not its siblings on that address
            if excluded and (ip in excluded or any(n in excluded for n in names)):
                continue
            if names:
                for name in names:
                    targets.domains.setdefault(name, set()).add(edge.port)
            else:
                targets.ips.setdefault(ip, set()).add(edge.port)
        else:
            reason = "server is a node" if server_kind == keys.NODE else "server address is unresolved"
            skipped.add(Skipped(_describe(client_id), _describe(server_id), edge.port, reason))

    ordered = sorted(
        ((cid, t) for cid, t in clients.items() if t), key=lambda item: (item[0][1], item[0][3], item[0][2])
    )
    # A Deployment and a StatefulSet may share a name in one namespace; two documents with the same
    # metadata.name would overwrite each other when applied, so such clients get "<name>-<kind>".
    seen: dict[tuple[str, str], int] = {}
    for cid, _ in ordered:
        seen[(cid[1], cid[3])] = seen.get((cid[1], cid[3]), 0) + 1
    documents = [
        _document(cid, t, opts.output_version, disambiguate=seen[(cid[1], cid[3])] > 1) for cid, t in ordered
    ]
    return ExportResult(
        documents=documents,
        skipped=sorted(skipped, key=lambda s: (s.client, s.server, s.port, s.reason)),
    )


def build_client_intents(edges: Iterable[edge_pb2.Edge], options: ExportOptions | None = None) -> list[Document]:
    """The ClientIntents documents for `edges` (see export_intents for what was left out)."""
    return export_intents(edges, options).documents


def unexportable(edges: Iterable[edge_pb2.Edge], options: ExportOptions | None = None) -> list[str]:
    """One line per edge that no document can express, for the CLI to print as warnings."""
    return [s.describe() for s in export_intents(edges, options).skipped]


def _ip_sort_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


def _target_list(t: _ClientTargets) -> list[tuple[str, dict[str, Any]]]:
    """(type, body) pairs in output order: workloads and Services by name, then domains, then IP groups."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name, kind in sorted(t.workloads):
        body: dict[str, Any] = {"name": name}
        if kind:
            body["kind"] = kind
        out.append(("kubernetes", body))
    for name in sorted(t.services):
        out.append(("service", {"name": name}))
    for domain in sorted(t.domains):
        out.append(("internet", {"domains": [domain], "ports": sorted(t.domains[domain])}))
    # Addresses with the same ports share a target: as precise as one per address, and shorter.
    groups: dict[tuple[int, ...], list[str]] = {}
    for ip, ports in t.ips.items():
        groups.setdefault(tuple(sorted(ports)), []).append(ip)
    for ports_key, ips in sorted(groups.items(), key=lambda g: min(_ip_sort_key(ip) for ip in g[1])):
        out.append(("internet", {"ips": sorted(ips, key=_ip_sort_key), "ports": list(ports_key)}))
    return out


def _document(client_id: EndpointId, targets: _ClientTargets, version: OutputVersion, *, disambiguate: bool) -> Document:
    _, namespace, kind, name = client_id
    workload: dict[str, Any] = {"name": name}
    if kind:
        workload["kind"] = kind
    metadata = {"name": f"{name}-{(kind or 'workload').lower()}" if disambiguate else name, "namespace": namespace}
    if version == "v2beta1":
        return {
            "apiVersion": f"{API_GROUP}/v2beta1",
            "kind": KIND,
            "metadata": metadata,
            "spec": {"workload": workload, "targets": [{typ: body} for typ, body in _target_list(targets)]},
        }
    calls: list[dict[str, Any]] = []
    for typ, body in _target_list(targets):
        if typ == "kubernetes":
            calls.append(dict(body))
        elif typ == "service":
            calls.append({"name": f"svc:{body['name']}"})  # the Otterize CLI's v1alpha3 Service notation
        else:
            calls.append({"type": "internet", "internet": body})
    return {
        "apiVersion": f"{API_GROUP}/v1alpha3",
        "kind": KIND,
        "metadata": metadata,
        "spec": {"service": workload, "calls": calls},
    }


# --- rendering -------------------------------------------------------------------------------------
# A small block-style YAML emitter instead of yaml.dump: PyYAML's representer walks every node in
# Python and takes seconds for 100k edges; this writes the same structures in a fraction of that.
# Strings are written plain only when every YAML 1.1 and 1.2 reader (PyYAML, Go's yaml used by
# kubectl) reads them back as the same string; otherwise they are double-quoted (JSON escaping is
# valid YAML). Tests round-trip random documents through yaml.safe_load.

_PLAIN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./-]*\Z")
_NUMBER_LIKE: Final[re.Pattern[str]] = re.compile(r"[-+.]?[0-9][0-9a-fA-FxXoObB_.:eE+-]*\Z")
_YAML11_WORDS: Final[frozenset[str]] = frozenset(
    {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}
)
_RESOLVER: Final[yaml.resolver.BaseResolver] = yaml.resolver.Resolver()


def _plain_ok(text: str) -> bool:
    return (
        _PLAIN.match(text) is not None
        and _NUMBER_LIKE.match(text) is None
        and text.lower() not in _YAML11_WORDS
        and _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str"
    )


class _YamlWriter:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._scalars: dict[str, str] = {}  # names repeat across targets: decide quoting once per string

    def scalar(self, value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if value is None:
            return "null"
        if not isinstance(value, str):
            raise TypeError(f"cannot write {type(value).__name__} as YAML")
        out = self._scalars.get(value)
        if out is None:
            out = self._scalars[value] = value if _plain_ok(value) else json.dumps(value)
        return out

    def node(self, value: object, indent: int) -> None:
        pad = " " * indent
        lines = self._lines
        if isinstance(value, dict):
            for k, v in value.items():
                key = self.scalar(k)
                if isinstance(v, (dict, list)) and v:
                    lines.append(f"{pad}{key}:")
                    self.node(v, indent + 2)
                elif isinstance(v, dict):
                    lines.append(f"{pad}{key}: {{}}")
                elif isinstance(v, list):
                    lines.append(f"{pad}{key}: []")
                else:
                    lines.append(f"{pad}{key}: {self.scalar(v)}")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, (dict, list)) and item:
                    start = len(lines)
                    self.node(item, indent + 2)
                    # "- " takes the place of the indentation of the item's first line.
                    lines[start] = f"{pad}- {lines[start][indent + 2:]}"
                elif isinstance(item, dict):
                    lines.append(f"{pad}- {{}}")
                elif isinstance(item, list):
                    lines.append(f"{pad}- []")
                else:
                    lines.append(f"{pad}- {self.scalar(item)}")
        else:
            lines.append(f"{pad}{self.scalar(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n" if self._lines else ""


def render_yaml(documents: Sequence[Document]) -> str:
    """Multi-document YAML, documents separated by `---`."""
    parts = []
    for doc in documents:
        writer = _YamlWriter()
        writer.node(doc, 0)
        parts.append(writer.text())
    return "---\n".join(parts)


def render_json(documents: Sequence[Document]) -> str:
    """A JSON array of the documents (what `otterize network-mapper export --format json` prints)."""
    return json.dumps(list(documents), indent=2) + "\n"


def render(documents: Sequence[Document], fmt: OutputFormat = "yaml") -> str:
    if fmt == "yaml":
        return render_yaml(documents)
    if fmt == "json":
        return render_json(documents)
    raise ValueError(f"format must be yaml or json, not {fmt!r}")


def _file_name(doc: Document, fmt: OutputFormat) -> str:
    meta = doc["metadata"]
    # Kubernetes names cannot contain "/", but edges come from the network: never write outside the dir.
    stem = f"{meta['namespace']}.{meta['name']}".replace("/", "_").replace("\\", "_")
    if stem.startswith("."):
        stem = "_" + stem
    return f"{stem}.{fmt}"


def write_intents(
    documents: Sequence[Document],
    path: str | Path,
    *,
    output_type: OutputType = "single-file",
    fmt: OutputFormat = "yaml",
) -> list[Path]:
    """Write the documents to one file, or to a directory with one `<namespace>.<name>.<fmt>` file per
    client (a JSON file there holds the single document, not an array). Returns the files written."""
    target = Path(path)
    if output_type == "single-file":
        if target.parent != Path(""):
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(documents, fmt))
        return [target]
    if output_type == "dir":
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for doc in documents:
            file = target / _file_name(doc, fmt)
            file.write_text(render_yaml([doc]) if fmt == "yaml" else json.dumps(doc, indent=2) + "\n")
            written.append(file)
        return written
    raise ValueError(f"output type must be single-file or dir, not {output_type!r}")
