"""Manifests of the workloads the cluster test maps, all from the workload image (scripts/cluster/workload).

Namespaces: shop (servers and in-namespace callers), billing (a CronJob, a caller of an outside name, the pod
that reuses an IP), edge (a hostNetwork DaemonSet client and the prober that calls a reused IP).
"""
from __future__ import annotations

import json
from typing import Any

WORKLOAD_IMAGE = "localhost/netmapper/workload:local"
NAMESPACES = ("shop", "billing", "edge")
OUTSIDE_NAME = "api.partner.test"
OUTSIDE_IP = "198.51.100.7"  # TEST-NET-2: outside every private range, so the sniffer calls it internet
OUTSIDE_PORT = 8443


def _container(args: list[str], port: int | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": WORKLOAD_IMAGE, "imagePullPolicy": "Never", "args": args}
    if port is not None:
        c["ports"] = [{"containerPort": port}]
        c["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 2}
    return c


def _pod_spec(args: list[str], port: int | None = None, **extra: Any) -> dict[str, Any]:
    # PID 1 is Python: SIGTERM would be handled, but nothing here needs a graceful stop.
    return {"terminationGracePeriodSeconds": 1, "containers": [_container(args, port)], **extra}


def serve(port: int) -> list[str]:
    return ["/opt/nmw/nmw.py", "serve", str(port)]


def call(host: str, port: int, *extra: str) -> list[str]:
    return ["/opt/nmw/nmw.py", "call", host, str(port), *extra]


SLEEP = ["-c", "import time; time.sleep(10**9)"]


def deployment(ns: str, name: str, args: list[str], port: int | None = None, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": _pod_spec(args, port, **spec)}}}


def service(ns: str, name: str, port: int, target: int, *, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"port": port, "targetPort": target}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def statefulset(ns: str, name: str, args: list[str], port: int) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": _pod_spec(args, port)}}}


def daemonset_host_network(ns: str, name: str, args: list[str]) -> dict[str, Any]:
    labels = {"app": name}
    # ClusterFirstWithHostNet: a hostNetwork pod otherwise resolves with the node's resolv.conf.
    spec = _pod_spec(args, hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def cronjob(ns: str, name: str, args: list[str]) -> dict[str, Any]:
    # batch/v1beta1: Kubernetes 1.20 serves CronJob only there (batch/v1 came in 1.21).
    pod = _pod_spec(args, restartPolicy="Never")
    return {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 1,
                     "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": pod}}}}}


def manifest(objs: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})


def scenario() -> list[dict[str, Any]]:
    """Everything but the IP-reuse pair (created by the test when it needs them)."""
    cart_svc = "cart.shop.svc.cluster.local"
    return [
        *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in NAMESPACES),
        # A Deployment called through its Service (kube-proxy's DNAT), a StatefulSet called at its pod IP.
        deployment("shop", "cart", serve(8080), 8080),
        service("shop", "cart", 80, 8080),
        statefulset("shop", "redis", serve(6379), 6379),
        service("shop", "redis", 6379, 6379, headless=True),
        deployment("shop", "frontend", ["-c", "import subprocess, sys; "
                                        "procs = [subprocess.Popen([sys.executable, '/opt/nmw/nmw.py', 'call', h, p]) "
                                        "for h, p in (('cart', '80'), ('redis-0.redis', '6379'))]; "
                                        "[p.wait() for p in procs]"]),
        # A dual-stack client: an AF_INET6 socket connecting to the Service's IPv4 address (::ffff:a.b.c.d).
        deployment("shop", "legacy", call("cart", 80, "--v6mapped")),
        # A CronJob whose Jobs call out (each Job's pod makes three calls and exits).
        cronjob("billing", "invoicer", call(cart_svc, 80, "--count", "3", "--every", "0.5")),
        # A call to a name outside the cluster, resolved by the cluster DNS (our kube-dns).
        deployment("billing", "payments", call(OUTSIDE_NAME, OUTSIDE_PORT)),
        # A hostNetwork client: it shares the node's IP, so only its cgroup says which pod it is.
        daemonset_host_network("edge", "node-agent", call(cart_svc, 80, "--every", "2")),
        # The prober calls whatever IP the test tells it to (kubectl exec), for the IP-reuse check.
        deployment("edge", "prober", SLEEP),
        deployment("shop", "old-api", serve(8080), 8080),
    ]


def new_api() -> dict[str, Any]:
    return deployment("billing", "new-api", serve(8080), 8080)
