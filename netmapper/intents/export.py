"""Edges -> Otterize ClientIntents documents (dicts): which targets each client workload gets. Pure.

Rendering is yaml_writer.py/output.py; the document layout per apiVersion is documents.py.

Contract, per client workload, one document:
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

Otterize's --exclude-labels is an EdgeFilter the mapper applies (edges carry the pods' labels), and
--distinct-by-label is distinct.py, applied to the documents made here.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netmapper.intents.documents import OUTPUT_VERSIONS, Document, OutputVersion, client_intents
from netmapper.intents.targets import ClientTargets
from netmapper_api import keys
from netmapper_api.keys import EndpointId, InvalidEdge
from netmapper_api.v1 import edge_pb2


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


def export_intents(edges: Iterable[edge_pb2.Edge], options: ExportOptions | None = None) -> ExportResult:
    """ClientIntents documents for `edges`, plus what could not be expressed."""
    opts = options or ExportOptions()
    namespaces = frozenset(opts.namespaces)
    excluded = frozenset(opts.exclude_services)
    server_filter = opts.server.strip()
    clients: dict[EndpointId, ClientTargets] = {}
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
            targets = clients[client_id] = ClientTargets()
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
        client_intents(cid, t, opts.output_version, disambiguate=seen[(cid[1], cid[3])] > 1) for cid, t in ordered
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
