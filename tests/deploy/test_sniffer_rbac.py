"""The sniffer's ClusterRole grants exactly what its code reads: the kinds its identity feed lists and watches
(sniffer.kube_discovery.wanted_kinds), nothing more, nothing less. A kind added to the feed without RBAC would be
Forbidden in every real cluster (the feed retries forever); RBAC without a reader is a right nobody needs."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from sniffer.kube_discovery import wanted_kinds

ROOT = Path(__file__).resolve().parents[2]
# list+watch: every wanted kind's stream; get: lookup_owner() fetches an owner the watches have not delivered yet.
VERBS_USED = {"get", "list", "watch"}


def _role() -> dict[str, Any]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy" / "base")], check=True, capture_output=True,
                         text=True).stdout
    (role,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "ClusterRole"
               and d["metadata"]["name"] == "netmapper-sniffer"]
    return dict(role)


def test_cluster_role_covers_exactly_the_watched_kinds() -> None:
    granted = {(group, resource) for rule in _role()["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    watched = {(k.group, k.plural) for k in wanted_kinds()}
    assert granted == watched


def test_cluster_role_verbs_are_the_ones_the_feed_uses() -> None:
    for rule in _role()["rules"]:
        assert set(rule["verbs"]) == VERBS_USED, rule
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
