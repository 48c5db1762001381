"""Does a declared target cover an observed call? The intents operator's semantics. Pure.

- A document speaks for its workload: same namespace and name, and the same kind when it names one.
- `kubernetes` target (name[.namespace], kind optional): calls to that workload, directly or through a
  Service that selects it (the mapper reports the workload behind a Service). `kubernetes.default`
  is the API server's Service, which has no workload behind it.
- `service` target: calls that went through that Service.
- `internet` target: calls to an address outside the cluster whose DNS name is one of `domains` or
  whose address is in `ips` (addresses or CIDRs), on one of `ports` (no ports: every port). A domain
  starting with "*" matches every name ending in the rest ("*.example.com": "a.example.com",
  "a.b.example.com", not "example.com"), which is what the operator's DNS cache does.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from netmapper_api import keys
from netmapper.shadow.model import ClientRef, DeclaredIntents, DeclaredTarget
from netmapper_api.v1 import edge_pb2

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Call:
    """What matching needs of one observed edge."""

    client: ClientRef
    server_kind: int  # keys.WORKLOAD / SERVICE / INTERNET / ...
    server_namespace: str
    server_name: str
    server_kind_name: str  # workload kind ("Deployment"), "" otherwise
    services: tuple[tuple[str, str], ...]  # (namespace, name) of Services the call went through
    ip: str
    dns_names: tuple[str, ...]
    port: int


def call_of(edge: edge_pb2.Edge) -> Call | None:
    """The call an edge describes, or None when its client is not a workload (no intents can name it)."""
    try:
        client = keys.endpoint_identity(edge.client, "client")
        server = keys.endpoint_identity(edge.server, "server")
    except keys.InvalidEdge:
        return None
    if client[0] != keys.WORKLOAD:
        return None
    services: tuple[tuple[str, str], ...] = ()
    if edge.server.service.name:
        services = ((edge.server.service.namespace or keys.namespace_of(server), edge.server.service.name),)
    if server[0] == keys.SERVICE:
        services = ((server[1], server[2]),)
    names = tuple(n for n in (keys.normalize_dns_name(n) for n in edge.server.dns_names) if n)
    ip = server[1] if server[0] in (keys.INTERNET, keys.UNRESOLVED) else (edge.server.ip or "")
    return Call(
        client=ClientRef(namespace=client[1], name=client[3], kind=client[2]),
        server_kind=server[0],
        server_namespace=keys.namespace_of(server),
        server_name=keys.name_of(server),
        server_kind_name=server[2] if server[0] == keys.WORKLOAD else "",
        services=services,
        ip=ip,
        dns_names=names,
        port=edge.port,
    )


def client_matches(declared: ClientRef, observed: ClientRef) -> bool:
    return (declared.namespace == observed.namespace and declared.name == observed.name
            and (not declared.kind or declared.kind == observed.kind))


def domain_matches(pattern: str, name: str) -> bool:
    """Operator semantics: exact (case-insensitive), or a leading "*" matching any prefix."""
    if pattern.startswith("*"):
        return name.endswith(pattern[1:])
    return name == pattern


@lru_cache(maxsize=4096)
def _network(text: str) -> IpNetwork | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def ip_matches(entries: Sequence[str], ip: str) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for entry in entries:
        net = _network(entry)
        if net is not None and addr.version == net.version and addr in net:
            return True
    return False


def covers(target: DeclaredTarget, call: Call) -> bool:
    """True when `target` (of a document whose client matches) allows `call`."""
    if target.type == "kubernetes":
        if call.server_kind == keys.WORKLOAD:
            return (call.server_namespace == target.namespace and call.server_name == target.name
                    and (not target.kind or target.kind == call.server_kind_name))
        # The API server's Service has no workload behind it; the operator special-cases its name.
        return (call.server_kind == keys.SERVICE and (target.namespace, target.name) == ("default", "kubernetes")
                and (call.server_namespace, call.server_name) == ("default", "kubernetes"))
    if target.type == "service":
        return (target.namespace, target.name) in call.services
    if target.type == "internet":
        if call.server_kind not in (keys.INTERNET, keys.UNRESOLVED):
            return False
        if target.ports and call.port not in target.ports:
            return False
        if any(domain_matches(d, n) for d in target.domains for n in call.dns_names):
            return True
        return ip_matches(target.ips, call.ip)
    return False


@dataclass(frozen=True)
class _DocIndex:
    """One document's targets by what they can cover, so a call is checked against a handful of
    candidates instead of every target of a client with hundreds."""

    doc: DeclaredIntents
    workloads: dict[tuple[str, str], list[DeclaredTarget]]  # (namespace, name) of kubernetes targets
    services: dict[tuple[str, str], list[DeclaredTarget]]  # (namespace, name) of service targets
    internet: list[DeclaredTarget]

    @classmethod
    def of(cls, doc: DeclaredIntents) -> _DocIndex:
        index = cls(doc, {}, {}, [])
        for t in doc.targets:
            if t.type == "kubernetes":
                index.workloads.setdefault((t.namespace, t.name), []).append(t)
            elif t.type == "service":
                index.services.setdefault((t.namespace, t.name), []).append(t)
            else:
                index.internet.append(t)
        return index

    def candidates(self, call: Call) -> list[DeclaredTarget]:
        if call.server_kind in (keys.INTERNET, keys.UNRESOLVED):
            return self.internet
        out = list(self.workloads.get((call.server_namespace, call.server_name), ()))
        for svc in call.services:
            out.extend(self.services.get(svc, ()))
        return sorted(out, key=lambda t: t.index) if len(out) > 1 else out


class IntentsIndex:
    """Declared intents indexed by client (namespace, name) for matching many calls."""

    def __init__(self, intents: Iterable[DeclaredIntents]) -> None:
        self.intents = list(intents)
        self._by_client: dict[tuple[str, str], list[_DocIndex]] = {}
        for doc in self.intents:
            self._by_client.setdefault((doc.client.namespace, doc.client.name), []).append(_DocIndex.of(doc))

    def covering(self, call: Call) -> tuple[DeclaredIntents, DeclaredTarget] | None:
        """The first declared target that covers `call`, with its document; None when nothing does."""
        for index in self._by_client.get((call.client.namespace, call.client.name), ()):
            if not client_matches(index.doc.client, call.client):
                continue
            for target in index.candidates(call):
                if covers(target, call):
                    return index.doc, target
        return None

    def all_covering(self, call: Call) -> list[tuple[DeclaredIntents, DeclaredTarget]]:
        """Every declared target that covers `call` (to tell which declarations are in use)."""
        out: list[tuple[DeclaredIntents, DeclaredTarget]] = []
        for index in self._by_client.get((call.client.namespace, call.client.name), ()):
            if client_matches(index.doc.client, call.client):
                out.extend((index.doc, t) for t in index.candidates(call) if covers(t, call))
        return out
