"""What the demo does in its simulated cluster (cluster.yaml) and what it must find.

EXPECTED is written by hand from the cluster's design, not computed from the run: the demo and its
test compare the exported ClientIntents against it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("cluster.yaml")
NAMESPACES = ("shop", "billing")


@dataclass(frozen=True)
class Listen:
    pod: str  # namespace/name, or an EXTERNAL host's name
    ports: tuple[int, ...]


KUBE_DNS = "10.96.0.10"  # the kube-dns Service in cluster.yaml; its coredns pod answers for it
COREDNS_POD = "kube-system/coredns-5d78c9869d-8kq4t"
# Hosts outside the cluster (in no snapshot): name -> address. The lab gives each a namespace.
EXTERNAL = {"api.partner.example": "198.51.100.10"}
DNS_RECORDS = {"cart.shop.svc.cluster.local": "10.96.0.20", **EXTERNAL}


@dataclass(frozen=True)
class Call:
    pod: str  # the calling pod, namespace/name
    host: str  # address it dials, or a name it resolves through kube-dns first
    port: int
    count: int

    @property
    def by_name(self) -> bool:
        return not self.host[0].isdigit() and ":" not in self.host


LISTENS = (
    Listen("shop/cart-5d6f7c8b9-h4j2k", (8080,)),
    Listen("shop/redis-0", (6379,)),
    Listen("shop/inventory-7f8d9c6b4-m3n5p", (8080,)),
    Listen("api.partner.example", (443,)),
)

CALLS = (
    Call("shop/frontend-6c8f9d7b5-x2k4p", "10.96.0.20", 8080, 5),  # cart Service ClusterIP
    Call("shop/frontend-6c8f9d7b5-q9z7m", "cart.shop.svc.cluster.local", 8080, 3),  # 2nd replica, by name
    Call("shop/frontend-6c8f9d7b5-q9z7m", "api.partner.example", 443, 2),  # leaves the cluster
    Call("shop/cart-5d6f7c8b9-h4j2k", "10.244.0.31", 6379, 4),  # redis-0 pod IP, IPv4
    Call("shop/cart-5d6f7c8b9-h4j2k", "fd00:244::31", 6379, 2),  # redis-0 pod IP, IPv6
    Call("billing/invoicer-29380120-7wq2x", "10.96.0.20", 8080, 2),  # another namespace
)

# client (namespace, workload name, kind) -> targets, in export order
EXPECTED: dict[tuple[str, str, str], list[dict[str, object]]] = {
    ("billing", "invoicer", "CronJob"): [{"kubernetes": {"name": "cart.shop", "kind": "Deployment"}}],
    ("shop", "cart", "Deployment"): [{"kubernetes": {"name": "redis", "kind": "StatefulSet"}}],
    ("shop", "frontend", "Deployment"): [{"kubernetes": {"name": "cart", "kind": "Deployment"}},
                                         {"internet": {"domains": ["api.partner.example"], "ports": [443]}}],
}


def intents_match(docs: list[dict[str, object]]) -> list[str]:
    """Differences between exported ClientIntents and EXPECTED; empty when they match exactly."""
    got: dict[tuple[str, str, str], list[object]] = {}
    for d in docs:
        meta, spec = d["metadata"], d["spec"]
        assert isinstance(meta, dict) and isinstance(spec, dict)
        if meta["namespace"] not in NAMESPACES:
            continue
        got[(meta["namespace"], spec["workload"]["name"], spec["workload"].get("kind", ""))] = spec["targets"]
    problems = []
    for key in sorted(set(got) | set(EXPECTED)):
        if got.get(key) != EXPECTED.get(key):
            problems.append(f"{key[0]}/{key[1]} ({key[2]}): expected {EXPECTED.get(key)}, got {got.get(key)}")
    return problems


# The shadow-mode act: the declared intents bundled in intents/ (a team's GitOps folder) against the
# traffic above. They cover every call but one (billing's invoicer has declared nothing yet) and keep one
# stale declaration (frontend -> search).
INTENTS_DIR = Path(__file__).with_name("intents")
EXPECTED_UNCOVERED: list[tuple[str, str, dict[str, object], int]] = [
    ("billing", "invoicer", {"kubernetes": {"name": "cart.shop", "kind": "Deployment"}}, 8080),
]
EXPECTED_UNUSED: list[tuple[str, str, dict[str, object]]] = [
    ("shop", "frontend", {"kubernetes": {"name": "search"}}),
]
