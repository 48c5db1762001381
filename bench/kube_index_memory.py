"""Memory of the ClusterIndex for a big cluster (default 10k pods), fed the way KubeFeed feeds it.

Pods are realistic Deployment pods (managedFields, probes, env, volumes, container statuses: ~6 KB of
JSON each), decoded from JSON page by page like a paginated list, shaped by the same functions the
live feed uses, and loaded with `ClusterIndex.replace`. Three ways to keep them are compared:

  raw     every pod as the API returns it (what a naive informer cache holds)
  full    every pod in kubectl shape (managedFields dropped): KubeFeed without --node
  split   this node's pods whole, every other pod slimmed to identity + IPs: KubeFeed with --node

For each: bytes held after the load (tracemalloc, exact Python allocations), the peak during the load,
and the growth of the process RSS (measured in a separate run without tracemalloc, whose bookkeeping
would inflate it). Every run is a fresh subprocess so modes do not share memory.
The owners of those pods (Deployments + ReplicaSets, metadata-only as the feed watches them) are
loaded too, because the index keeps them and recomputes pod workloads from them.

Usage: .venv/bin/python bench/kube_index_memory.py [--pods 10000] [--local 110] [--modes raw,full,split]
Bench output goes to stdout (print is fine here).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sniffer.cluster import ClusterIndex  # noqa: E402
from sniffer.kube_discovery import ServedResource  # noqa: E402
from sniffer.kube_records import Record, record_of  # noqa: E402
from sniffer.kube_shape import kubectl_shape, slim_pod  # noqa: E402

POD = ServedResource(kind="Pod", group="", version="v1", plural="pods")
RS = ServedResource(kind="ReplicaSet", group="apps", version="v1", plural="replicasets")
DEPLOY = ServedResource(kind="Deployment", group="apps", version="v1", plural="deployments")
PAGE = 500  # KubeFeed.page_size
PODS_PER_DEPLOYMENT = 10
LOCAL_NODE = "node-000"


def records(objs: list[dict[str, Any]]) -> list[Record]:
    """The index keeps records (kube_records), as the feeds build them."""
    return [rec for obj in objs if (rec := record_of(obj)) is not None]


def _managed_fields() -> list[dict[str, Any]]:
    """Server-side-apply bookkeeping as kube-controller-manager and kubelet write it."""
    spec_fields: dict[str, Any] = {f"f:{k}": {} for k in ("dnsPolicy", "enableServiceLinks", "restartPolicy", "schedulerName",
                                          "securityContext", "terminationGracePeriodSeconds")}
    spec_fields['f:containers'] = {'k:{"name":"app"}': {f"f:{k}": {} for k in (
        "args", "env", "image", "imagePullPolicy", "livenessProbe", "name", "ports", "readinessProbe",
        "resources", "terminationMessagePath", "terminationMessagePolicy", "volumeMounts")}}
    status_fields: dict[str, Any] = {"f:conditions": {f'k:{{"type":"{t}"}}': {"f:lastProbeTime": {}, "f:lastTransitionTime": {},
                                                             "f:status": {}, "f:type": {}}
                                      for t in ("ContainersReady", "Initialized", "Ready")},
                     "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {},
                     "f:podIPs": {'k:{"ip":"x"}': {".": {}, "f:ip": {}}}, "f:startTime": {}}
    return [
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
         "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {"f:app": {}, "f:pod-template-hash": {}},
                                     "f:ownerReferences": {}}, "f:spec": spec_fields}},
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2024-05-01T10:00:05Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:status": status_fields}, "subresource": "status"},
    ]


def make_pod(i: int, n_nodes: int) -> dict[str, Any]:
    d = i // PODS_PER_DEPLOYMENT
    app, ns = f"svc-{d:04d}", f"team-{d % 40:02d}"
    rs = f"{app}-7d9f8c6b5"
    name = f"{rs}-{uuid.UUID(int=i).hex[-5:]}"
    ip = f"10.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}"
    node = f"node-{i % n_nodes:03d}"
    env: list[dict[str, Any]] = [{"name": f"CONFIG_{k}", "value": f"value-{k}-{app}"} for k in range(8)]
    env.append({"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}})
    probe = {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 5,
             "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    cond = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": "2024-05-01T10:00:05Z"}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]
    return {
        "metadata": {
            "name": name, "generateName": f"{rs}-", "namespace": ns, "uid": str(uuid.UUID(int=i + 1)),
            "resourceVersion": str(100000 + i), "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": app, "pod-template-hash": "7d9f8c6b5", "version": "v1.4.2", "team": ns},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                            "checksum/config": "9f2c1e" * 10},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                 "uid": str(uuid.UUID(int=10**9 + d)), "controller": True,
                                 "blockOwnerDeletion": True}],
            "managedFields": _managed_fields(),
        },
        "spec": {
            "volumes": [{"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
                        {"name": "kube-api-access-x7k2p", "projected": {"sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}], "defaultMode": 420}}],
            "containers": [{
                "name": "app", "image": f"registry.example.com/{ns}/{app}:v1.4.2",
                "args": ["--port=8080", "--metrics-port=9090", f"--config=/etc/{app}/config.yaml"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "env": env,
                "resources": {"limits": {"cpu": "500m", "memory": "512Mi"},
                              "requests": {"cpu": "100m", "memory": "128Mi"}},
                "volumeMounts": [{"name": "config", "mountPath": f"/etc/{app}"},
                                 {"name": "kube-api-access-x7k2p", "readOnly": True,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "livenessProbe": probe, "readinessProbe": probe,
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "nodeName": node,
            "securityContext": {}, "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300},
                            {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority"},
        "status": {
            "phase": "Running", "conditions": cond, "hostIP": f"192.168.{(i % n_nodes) // 256}.{i % n_nodes % 256}",
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": "2024-05-01T10:00:00Z",
            "containerStatuses": [{"name": "app", "state": {"running": {"startedAt": "2024-05-01T10:00:04Z"}},
                                   "lastState": {}, "ready": True, "restartCount": 0,
                                   "image": f"registry.example.com/{ns}/{app}:v1.4.2",
                                   "imageID": "registry.example.com/app@sha256:" + "ab12" * 16,
                                   "containerID": "containerd://" + uuid.UUID(int=i + 7).hex * 2,
                                   "started": True}],
            "qosClass": "Burstable"},
    }


def make_owners(n_pods: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Metadata-only Deployments and ReplicaSets, as KubeFeed watches owners."""
    deps, rss = [], []
    for d in range((n_pods + PODS_PER_DEPLOYMENT - 1) // PODS_PER_DEPLOYMENT):
        app, ns = f"svc-{d:04d}", f"team-{d % 40:02d}"
        dep_uid = str(uuid.UUID(int=2 * 10**9 + d))
        deps.append({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {
            "name": app, "namespace": ns, "uid": dep_uid, "resourceVersion": "1", "labels": {"app": app},
            "annotations": {"deployment.kubernetes.io/revision": "3"}}})
        rss.append({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {
            "name": f"{app}-7d9f8c6b5", "namespace": ns, "uid": str(uuid.UUID(int=10**9 + d)),
            "resourceVersion": "1", "labels": {"app": app, "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "uid": dep_uid,
                                 "controller": True, "blockOwnerDeletion": True}]}})
    return deps, rss


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Result:
    mode: str
    pods: int
    local_pods: int
    json_bytes_per_pod: int
    held_bytes: int
    peak_bytes: int
    rss_growth_bytes: int
    load_seconds: float
    resolved_ok: bool


def run_mode(mode: str, n_pods: int, n_local: int, *, traced: bool) -> Result:
    n_nodes = max(1, n_pods // max(1, n_local))
    # The JSON pages exist before we start measuring: in the feed they are network buffers.
    pages = [json.dumps({"items": [make_pod(i, n_nodes) for i in range(s, min(n_pods, s + PAGE))]}).encode()
             for s in range(0, n_pods, PAGE)]
    deps, rss = make_owners(n_pods)
    owners_json = json.dumps([deps, rss]).encode()
    json_per_pod = sum(len(p) for p in pages) // n_pods
    gc.collect()
    rss0 = rss_bytes()
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()

    index = ClusterIndex()
    deps, rss = json.loads(owners_json)
    index.replace("Deployment", records(deps), at=1.0)
    index.replace("ReplicaSet", records(rss), at=1.0)
    local = remote = 0
    items: list[dict[str, Any]] = []
    for page in pages:
        for obj in json.loads(page)["items"]:
            if mode == "raw":
                obj["kind"], obj["apiVersion"] = "Pod", "v1"
            else:
                obj = kubectl_shape(obj, POD)
                if mode == "split" and obj["spec"].get("nodeName") != LOCAL_NODE:
                    obj = slim_pod(obj)
                    remote += 1
                else:
                    local += 1
            items.append(obj)
    index.replace("Pod", records(items), at=1.0)
    del items
    load_s = time.perf_counter() - t0
    gc.collect()
    grown = rss_bytes() - rss0
    held, peak = tracemalloc.get_traced_memory() if traced else (0, 0)
    tracemalloc.stop()

    probe = make_pod(n_pods // 2, n_nodes)
    got = index.pod_at(probe["status"]["podIP"], 2.0)
    ok = got is not None and got.workload.kind == "Deployment" and got.name == probe["metadata"]["name"]
    return Result(mode=mode, pods=n_pods, local_pods=local if mode == "split" else n_pods,
                  json_bytes_per_pod=json_per_pod, held_bytes=held, peak_bytes=peak, rss_growth_bytes=grown,
                  load_seconds=load_s, resolved_ok=ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--local", type=int, default=110, help="pods on this node (kubelet's default max is 110)")
    ap.add_argument("--modes", default="raw,full,split")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one mode, print JSON
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(asdict(run_mode(args.one, args.pods, args.local, traced=args.traced))))
        return
    mib = 1 << 20
    print(f"ClusterIndex memory, {args.pods} pods ({args.local} on this node), each mode in a fresh process")
    print(f"{'mode':6} {'json/pod':>9} {'held MiB':>9} {'B/pod':>7} {'peak MiB':>9} {'RSS+ MiB':>9} {'load s':>7}  ok")
    for mode in args.modes.split(","):
        def one(*extra: str) -> Result:
            out = subprocess.run([sys.executable, __file__, "--one", mode, "--pods", str(args.pods),
                                  "--local", str(args.local), *extra], check=True, capture_output=True,
                                 text=True).stdout
            return Result(**json.loads(out))
        r, untraced = one("--traced"), one()
        r.rss_growth_bytes, r.load_seconds = untraced.rss_growth_bytes, untraced.load_seconds
        print(f"{r.mode:6} {r.json_bytes_per_pod:9d} {r.held_bytes / mib:9.1f} {r.held_bytes // r.pods:7d} "
              f"{r.peak_bytes / mib:9.1f} {r.rss_growth_bytes / mib:9.1f} {r.load_seconds:7.2f}  {r.resolved_ok}")


if __name__ == "__main__":
    main()
