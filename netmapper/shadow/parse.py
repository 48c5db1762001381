"""One ClientIntents document (any apiVersion of the CRD) -> DeclaredIntents. Pure, no I/O.

How the operator reads each version (intents-operator's conversion to its v2 hub):
- v2alpha1, v2beta1: `spec.workload {name, kind}`, `spec.targets[]` with exactly one key each.
  `kubernetes {name, kind}` is a workload, or a Service when kind is "Service"; `service {name}` a
  Service; `internet {domains, ips, ports}` the outside world; `kafka {name}` names the Kafka server
  workload (network access to it is what is observed). `sql`, `aws`, `gcp`, `azure` are enforced outside
  the network: they are counted as ignored, never compared.
- v1alpha3, v1beta1: `spec.service {name, kind}`, `spec.calls[]`: `type: internet` with `internet`,
  `type` database/aws/gcp/azure ignored as above, anything else (http, kafka, none) an in-cluster
  server `name`, a Service when the name starts with "svc:" or kind is "Service".
- v1alpha2: `spec.service {name}`, `spec.calls[] {name, type}` (http, kafka, database) the same way.
A target name is "name" (the client's namespace) or "name.namespace".

Errors are raised as DocumentError with the path of the offending node inside the document, so the
loader can turn it into a file position.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Final

from netmapper.shadow.model import ClientRef, DeclaredIntents, DeclaredTarget

GROUP: Final[str] = "k8s.otterize.com"
KIND: Final[str] = "ClientIntents"
V2_VERSIONS: Final[frozenset[str]] = frozenset({"v2alpha1", "v2beta1"})
V1_VERSIONS: Final[frozenset[str]] = frozenset({"v1alpha2", "v1alpha3", "v1beta1"})
VERSIONS: Final[tuple[str, ...]] = ("v1alpha2", "v1alpha3", "v1beta1", "v2alpha1", "v2beta1")
NON_NETWORK_TARGETS: Final[frozenset[str]] = frozenset({"sql", "aws", "gcp", "azure"})
NON_NETWORK_CALL_TYPES: Final[frozenset[str]] = frozenset({"database", "aws", "gcp", "azure"})
_V2_TARGET_KEYS: Final[frozenset[str]] = frozenset({"kubernetes", "service", "internet", "kafka"}) | NON_NETWORK_TARGETS

PathElem = str | int


class DocumentError(ValueError):
    """A document the operator would not accept. `path` leads to the offending node."""

    def __init__(self, message: str, path: Sequence[PathElem] = ()) -> None:
        super().__init__(message)
        self.path = tuple(path)

    def where(self) -> str:
        return ".".join(str(p) for p in self.path)


def is_client_intents(doc: object) -> bool:
    """True for documents that claim to be ClientIntents (any version); other kinds are skipped."""
    return isinstance(doc, Mapping) and doc.get("kind") == KIND and str(doc.get("apiVersion", "")).startswith(f"{GROUP}/")


def _mapping(value: object, path: Sequence[PathElem], what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DocumentError(f"{what} must be a mapping", path)
    return value


def _string(value: object, path: Sequence[PathElem], what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise DocumentError(f"{what} must be a non-empty string", path)
    return value


def _strings(value: object, path: Sequence[PathElem], what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise DocumentError(f"{what} must be a list", path)
    out = []
    for i, item in enumerate(value):
        out.append(_string(item, (*path, i), f"{what}[{i}]"))
    return tuple(out)


def split_name(name: str, default_namespace: str) -> tuple[str, str]:
    """"name" or "name.namespace" -> (name, namespace); the operator allows at most one dot."""
    base, dot, ns = name.partition(".")
    return (base, ns) if dot and ns else (base, default_namespace)


def _server(name: str, kind: str, client_ns: str, path: Sequence[PathElem], index: int,
            *, service: bool) -> DeclaredTarget:
    if name.count(".") > 1:
        raise DocumentError(f"target name {name!r} has more than one '.' (name or name.namespace)", path)
    base, ns = split_name(name, client_ns)
    if not base:
        raise DocumentError("target name is empty", path)
    if service or kind == "Service":
        return DeclaredTarget(type="service", index=index, name=base, namespace=ns,
                              written={"service": {"name": name}})
    body = {"name": name, **({"kind": kind} if kind else {})}
    return DeclaredTarget(type="kubernetes", index=index, name=base, namespace=ns, kind=kind,
                          written={"kubernetes": body})


def _internet(body: Mapping[str, Any], path: Sequence[PathElem], index: int) -> DeclaredTarget:
    domains = tuple(d.strip().rstrip(".").lower() for d in _strings(body.get("domains"), (*path, "domains"), "domains"))
    ips = _strings(body.get("ips"), (*path, "ips"), "ips")
    for i, ip in enumerate(ips):
        try:
            ipaddress.ip_network(ip, strict=False) if "/" in ip else ipaddress.ip_address(ip)
        except ValueError:
            raise DocumentError(f"{ip!r} is not an IP address or CIDR", (*path, "ips", i)) from None
    raw_ports = body.get("ports")
    ports: list[int] = []
    if raw_ports is not None:
        if not isinstance(raw_ports, Sequence) or isinstance(raw_ports, str):
            raise DocumentError("ports must be a list", (*path, "ports"))
        for i, p in enumerate(raw_ports):
            if isinstance(p, bool) or not isinstance(p, int) or not 0 < p <= 65535:
                raise DocumentError(f"port {p!r} is not a number in 1..65535", (*path, "ports", i))
            ports.append(p)
    if not domains and not ips:
        raise DocumentError("internet target needs domains or ips", path)
    written: dict[str, Any] = {}
    if domains:
        written["domains"] = list(domains)
    if ips:
        written["ips"] = list(ips)
    if ports:
        written["ports"] = list(ports)
    return DeclaredTarget(type="internet", index=index, domains=domains, ips=ips, ports=tuple(ports),
                          written={"internet": written})


def parse_document(doc: Mapping[str, Any], *, source: str, default_namespace: str = "") -> DeclaredIntents:
    """Read one ClientIntents document; raises DocumentError for what the operator would reject."""
    api_version = str(doc.get("apiVersion", ""))
    version = api_version.removeprefix(f"{GROUP}/")
    if version not in VERSIONS:
        raise DocumentError(f"apiVersion {api_version!r} is not one of the CRD's ({', '.join(VERSIONS)})",
                            ("apiVersion",))
    meta = _mapping(doc.get("metadata"), ("metadata",), "metadata")
    meta_name = _string(meta.get("name"), ("metadata", "name"), "metadata.name")
    namespace = _string(meta.get("namespace"), ("metadata", "namespace"), "metadata.namespace",
                        required=not default_namespace) or default_namespace
    spec = _mapping(doc.get("spec"), ("spec",), "spec")
    targets: list[DeclaredTarget] = []
    ignored = 0
    if version in V2_VERSIONS:
        workload = _mapping(spec.get("workload"), ("spec", "workload"), "spec.workload")
        client = ClientRef(namespace=namespace,
                           name=_string(workload.get("name"), ("spec", "workload", "name"), "spec.workload.name"),
                           kind=_string(workload.get("kind"), ("spec", "workload", "kind"), "kind", required=False))
        raw = spec.get("targets")
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise DocumentError("spec.targets must be a list", ("spec", "targets"))
        for i, item in enumerate(raw):
            path = ("spec", "targets", i)
            target = _mapping(item, path, f"spec.targets[{i}]")
            present = [k for k in target if target[k] is not None]
            if len(present) != 1 or present[0] not in _V2_TARGET_KEYS:
                raise DocumentError(
                    f"each target must have exactly one of {', '.join(sorted(_V2_TARGET_KEYS))}, found {present}", path)
            key = present[0]
            body = _mapping(target[key], (*path, key), key)
            if key in NON_NETWORK_TARGETS:
                ignored += 1
            elif key == "internet":
                targets.append(_internet(body, (*path, key), i))
            else:
                name = _string(body.get("name"), (*path, key, "name"), f"{key}.name")
                kind = _string(body.get("kind"), (*path, key, "kind"), "kind", required=False) if key == "kubernetes" else ""
                targets.append(_server(name, kind, namespace, (*path, key, "name"), i, service=key == "service"))
    else:
        service = _mapping(spec.get("service"), ("spec", "service"), "spec.service")
        client = ClientRef(namespace=namespace,
                           name=_string(service.get("name"), ("spec", "service", "name"), "spec.service.name"),
                           kind=_string(service.get("kind"), ("spec", "service", "kind"), "kind", required=False))
        raw = spec.get("calls")
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise DocumentError("spec.calls must be a list", ("spec", "calls"))
        for i, item in enumerate(raw):
            path = ("spec", "calls", i)
            call = _mapping(item, path, f"spec.calls[{i}]")
            typ = _string(call.get("type"), (*path, "type"), "type", required=False)
            if typ in NON_NETWORK_CALL_TYPES:
                ignored += 1
            elif typ == "internet":
                targets.append(_internet(_mapping(call.get("internet"), (*path, "internet"), "internet"),
                                         (*path, "internet"), i))
            else:
                name = _string(call.get("name"), (*path, "name"), "call name")
                kind = _string(call.get("kind"), (*path, "kind"), "kind", required=False)
                is_service = name.startswith("svc:")
                targets.append(_server(name.removeprefix("svc:"), kind, namespace, (*path, "name"), i,
                                       service=is_service))
    if "." in client.name:
        raise DocumentError("workload name must not contain '.'", ("spec",))
    return DeclaredIntents(client=client, targets=tuple(targets), api_version=api_version,
                           metadata_name=meta_name, source=source, ignored_targets=ignored)
