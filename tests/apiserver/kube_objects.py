"""Objects created through the real API the way controllers and kubelet would have (no kubelet runs)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

NODE = "node-a"
T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Poll until check() returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last value {got!r})")
        time.sleep(interval)


@dataclass
class Kube:
    """Thin helpers to create objects the way controllers and kubelet would have."""

    core: client.CoreV1Api
    dyn: DynamicClient
    namespace: str
    _ips: Iterator[int]

    def next_ip(self) -> str:
        n = next(self._ips)
        return f"10.244.{n // 250}.{n % 250 + 2}"

    def create(self, api_version: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        res = self.dyn.resources.get(api_version=api_version, kind=kind)
        body = {"apiVersion": api_version, "kind": kind, **body}
        ns = self.namespace if res.namespaced else None
        out: dict[str, Any] = res.create(body=body, namespace=ns).to_dict()
        return out

    def owner(self, api_version: str, kind: str, name: str, owner: dict[str, Any] | None = None,
              spec: dict[str, Any] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": {"app": name}}
        if owner is not None:
            meta["ownerReferences"] = [ref(owner)]
        return self.create(api_version, kind, {"metadata": meta, "spec": spec or template_spec(name)})

    def pod(self, name: str, *, ip: str | None, owner: dict[str, Any] | None = None, node: str | None = NODE,
            labels: dict[str, str] | None = None, host_network: bool = False,
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": labels or {}}
        if owner is not None:
            meta["ownerReferences"] = [ref(owner)]
        if annotations:
            meta["annotations"] = annotations
        spec: dict[str, Any] = {"containers": [{"name": "main", "image": "registry.invalid/app:1"}],
                                "hostNetwork": host_network}
        if node:
            spec["nodeName"] = node
        created = self.create("v1", "Pod", {"metadata": meta, "spec": spec})
        if ip:
            self.set_pod_ip(name, ip)
        return created

    def set_pod_ip(self, name: str, ip: str) -> None:
        # What kubelet does once the sandbox has an address: the pod stays Pending without one.
        self.core.patch_namespaced_pod_status(
            name, self.namespace, {"status": {"podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.0.2.10"}})


def ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True}


def template_spec(app: str) -> dict[str, Any]:
    return {"selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                         "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1"}]}}}


