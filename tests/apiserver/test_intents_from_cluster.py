"""`netmapper diff --from-cluster`: ClientIntents read from a real kube-apiserver with the intents
operator's CRD installed. No operator runs, so there is no conversion webhook: the API server stores
every object in the storage version (v2alpha1) and prunes what that schema lacks, which is why only the
v2 versions are created here (v1alpha2/v1alpha3/v1beta1 are covered by the file tests)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from edge_testing import edge, internet, workload
from webhook_testing import WebhookServer
from netmapper.demo.run import free_port
from netmapper.intents.crd import BUNDLED_CRD
from netmapper.shadow.load import load_cluster
from netmapper_api.limits import client_channel_options
from netmapper_api.v1 import edge_pb2, mapper_pb2, mapper_pb2_grpc

from .cluster import ApiServerCluster
from .kube_objects import Kube, eventually

pytestmark = pytest.mark.apiserver


@pytest.fixture(scope="module")
def crd(apiserver: ApiServerCluster) -> None:
    """The ClientIntents CRD, installed once (the cluster is shared by the session) and Established."""
    ext = client.ApiextensionsV1Api(apiserver.api_client())
    body = next(d for d in yaml.safe_load_all(BUNDLED_CRD.read_text()) if d)
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as e:
        if e.status != 409:
            raise

    def established() -> bool:
        got = ext.read_custom_resource_definition(body["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

    eventually(established, timeout=30)


def intents(kube: Kube, version: str, name: str, spec: dict[str, Any]) -> None:
    eventually(lambda: _create(kube, version, name, spec), timeout=30)  # the new CRD's API may lag briefly


def _create(kube: Kube, version: str, name: str, spec: dict[str, Any]) -> bool:
    try:
        client.CustomObjectsApi(kube.dyn.client).create_namespaced_custom_object(
            "k8s.otterize.com", version, kube.namespace, "clientintents",
            {"apiVersion": f"k8s.otterize.com/{version}", "kind": "ClientIntents",
             "metadata": {"name": name, "namespace": kube.namespace}, "spec": spec})
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise



def _report_once_up(addr: str, mapper: subprocess.Popen[bytes], edges: list[edge_pb2.Edge]) -> None:
    """Report `edges` as node n1 once the mapper process answers: up to 300 tries 0.1 s apart."""
    for attempt in range(300):
        try:
            with grpc.insecure_channel(addr, options=client_channel_options()) as ch:
                list(mapper_pb2_grpc.MapperStub(ch).ReportEdges(
                    iter([mapper_pb2.ReportEdgesRequest(node="n1", sequence=1, edges=edges)]), timeout=10))
            return
        except grpc.RpcError:
            assert attempt < 299 and mapper.poll() is None, "mapper did not start"
            time.sleep(0.1)

def test_diff_reads_the_clusters_intents(crd: None, kube: Kube, apiserver: ApiServerCluster,
                                                            tmp_path: Path) -> None:
    ns = kube.namespace
    intents(kube, "v2beta1", "frontend", {"workload": {"name": "frontend", "kind": "Deployment"},
                                          "targets": [{"kubernetes": {"name": "cart"}},
                                                      {"kubernetes": {"name": "search"}}]})
    intents(kube, "v2beta1", "cart", {"workload": {"name": "cart"}, "targets": [{"service": {"name": "redis"}}]})
    intents(kube, "v2alpha1", "mailer", {"workload": {"name": "mailer"},
                                         "targets": [{"internet": {"domains": ["*.mail.example"]}}]})

    loaded = load_cluster(apiserver.api_client())
    assert [p for p in loaded.problems if f"cluster:{ns}/" in p.where] == []
    declared = [d for d in loaded.intents if d.client.namespace == ns]
    assert sorted((d.client.name, tuple(t.written and next(iter(t.written)) for t in d.targets)) for d in declared) == [
        ("cart", ("service",)), ("frontend", ("kubernetes", "kubernetes")), ("mailer", ("internet",))]
    assert {d.source for d in declared} == {f"cluster:{ns}/{n}" for n in ("cart", "frontend", "mailer")}

    addr = f"127.0.0.1:{free_port()}"
    mapper = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen", addr],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        edges = [
            edge(workload("frontend", ns), workload("cart", ns, service=("cart", ns)), 8080),
            edge(workload("cart", ns), workload("redis", ns, "StatefulSet", service=("redis", ns)), 6379),
            edge(workload("mailer", ns), internet("203.0.113.9", "smtp.eu.mail.example"), 587),
            edge(workload("cart", ns), workload("db", ns, "StatefulSet"), 5432),
        ]
        _report_once_up(addr, mapper, edges)
        run = subprocess.run([sys.executable, "-m", "netmapper.cli.main", "diff", "--mapper", addr,
                              "--from-cluster", "--kubeconfig", str(apiserver.kubeconfig_path), "--format", "json"],
                             capture_output=True, text=True, timeout=60)
    finally:
        mapper.terminate()
        mapper.wait(timeout=10)
    assert run.returncode == 1, run.stderr
    out = json.loads(run.stdout)
    mine = {k: [e for e in v if e["client"]["namespace"] == ns] for k, v in out.items()}
    assert [(e["client"]["name"], e["target"], e["port"]) for e in mine["uncovered"]] == [
        ("cart", {"kubernetes": {"name": "db", "kind": "StatefulSet"}}, 5432)]
    assert sorted(e["client"]["name"] for e in mine["covered"]) == ["cart", "frontend", "mailer"]
    assert [(e["client"]["name"], e["target"]) for e in mine["unused"]] == [
        ("frontend", {"kubernetes": {"name": "search"}})]


def test_mapper_signals_calls_the_clusters_intents_do_not_cover(crd: None, kube: Kube, apiserver: ApiServerCluster) -> None:
    ns = kube.namespace
    intents(kube, "v2beta1", "frontend", {"workload": {"name": "frontend"}, "targets": [{"kubernetes": {"name": "cart"}}]})
    addr = f"127.0.0.1:{free_port()}"
    with WebhookServer().running() as hook:
        mapper = subprocess.Popen([sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen", addr,
                                   "--intents-from-cluster", "--kubeconfig", str(apiserver.kubeconfig_path),
                                   "--webhook", hook.url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            edges = [edge(workload("frontend", ns), workload("cart", ns), 8080),
                     edge(workload("frontend", ns), workload("payments", ns), 8443)]
            _report_once_up(addr, mapper, edges)
            eventually(lambda: hook.delivered, timeout=30)
        finally:
            mapper.terminate()
            mapper.wait(timeout=30)
    assert [(m["client"]["name"], m["target"], m["port"]) for m in hook.delivered] == [
        ("frontend", {"kubernetes": {"name": "payments", "kind": "Deployment"}}, 8443)]
