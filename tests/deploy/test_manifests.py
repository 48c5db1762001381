"""The deploy manifests render with kustomize and ask for no more rights than netmapper uses."""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


Render = Callable[[str], list[dict]]


@pytest.fixture
def render(unavailable: Callable[[str, str], NoReturn]) -> Render:
    if shutil.which("kubectl") is None:
        unavailable("NETMAPPER_REQUIRE_TOOLS", "kubectl not installed (needed for `kubectl kustomize`)")

    def run(overlay: str) -> list[dict]:
        out = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy" / overlay)], check=True,
                             capture_output=True, text=True).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    return run


def by_kind(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("overlay", ["base", "overlays/snapshot", "overlays/local-cluster", "overlays/postgres"])
def test_manifests_render(overlay: str, render: Render) -> None:
    kinds = sorted(d["kind"] for d in render(overlay))
    assert {"DaemonSet", "Deployment", "Service", "ClusterRole", "ServiceAccount"} <= set(kinds)


def test_sniffer_role_is_read_only(render: Render) -> None:
    role = by_kind(render("base"), "ClusterRole")
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    assert not any("*" in rule["resources"] or "secrets" in rule["resources"] for rule in role["rules"])


def test_sniffer_is_not_privileged_and_adds_only_bpf_capabilities(render: Render) -> None:
    ds = by_kind(render("base"), "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    ctx = spec["containers"][0]["securityContext"]
    assert not ctx.get("privileged") and not spec.get("hostNetwork") and not spec.get("hostPID")
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert set(ctx["capabilities"]["add"]) == {"BPF", "PERFMON", "NET_ADMIN"}  # no SYS_ADMIN since Linux 5.8


def test_mapper_runs_unprivileged_without_api_token(render: Render) -> None:
    spec = by_kind(render("base"), "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_postgres_overlay_runs_two_stateless_replicas_on_a_database_secret(render: Render) -> None:
    docs = render("overlays/postgres")
    deployment = by_kind(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert not any(a.startswith("--db") for a in container["args"])
    assert "data" not in {v["name"] for v in pod["volumes"]} | {m["name"] for m in container["volumeMounts"]}
    assert {"tls", "tokens"} <= {v["name"] for v in pod["volumes"]}  # the base's credentials stay
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]  # no local state to claim
    (db,) = [e for e in container["env"] if e["name"] == "NETMAPPER_DB"]
    assert db == {"name": "NETMAPPER_DB", "valueFrom": {"secretKeyRef": {"name": "netmapper-postgres", "key": "url"}}}
    assert "--metrics-listen=0.0.0.0:9092" in container["args"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": 9090, "health": 9091,
                                                                          "metrics": 9092}
    pdb = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert pod["automountServiceAccountToken"] is False  # still no API access, still unprivileged
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_mapper_store_survives_rescheduling(render: Render) -> None:
    """The SQLite store is on a PersistentVolumeClaim: an emptyDir would forget the whole map with the pod."""
    docs = render("base")
    spec = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    (data,) = [v for v in spec["volumes"] if v["name"] == "data"]
    claim = by_kind(docs, "PersistentVolumeClaim")
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    container = spec["containers"][0]
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    db = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--db=")] or [env.get("NETMAPPER_DB", "")]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert db[0].startswith(mounts["data"] + "/")  # the SQLite file is on the claimed volume


def test_mapper_and_sniffer_use_tls_and_tokens_from_mounted_secrets(render: Render) -> None:
    from netmapper.cli.main import build_parser

    docs = render("base")
    for kind, component in (("Deployment", "mapper"), ("DaemonSet", "sniffer")):
        spec = by_kind(docs, kind)["spec"]["template"]["spec"]
        container = spec["containers"][0]
        args = build_parser().parse_args(container["args"])  # the real CLI accepts them
        files = [args.token_file, *((args.tls_cert, args.tls_key) if component == "mapper" else (args.ca,))]
        assert all(files), component
        secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        for f in files:
            assert mounts[str(Path(f).parent)] in secrets, f  # every credential file comes from a Secret
    mapper = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    probe_port = mapper["readinessProbe"]["grpc"]["port"]
    assert build_parser().parse_args(mapper["args"]).health_listen.endswith(f":{probe_port}")
