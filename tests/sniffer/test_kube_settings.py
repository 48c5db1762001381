"""Connection settings of the live feed from a kubeconfig or the pod's service account (sniffer/kube_http.py).
Authentication against a real API server: tests/apiserver/test_kube_auth.py."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from sniffer.kube_http import KubeConfigError, KubeHttp, KubeSettings, settings_from_kubeconfig, settings_in_cluster


def write(path: Path, users: dict[str, dict[str, Any]], *, current: str = "a",
          cluster: dict[str, Any] | None = None) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443"}}],
        "users": [{"name": name, "user": user} for name, user in users.items()],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": name}} for name in users],
    }
    path.write_text(json.dumps(doc))
    return path


def test_token_of_the_current_context(tmp_path: Path) -> None:
    path = write(tmp_path / "config", {"a": {"token": "tok-a"}, "b": {"token": "tok-b"}})
    assert settings_from_kubeconfig(path) == KubeSettings(server="https://10.0.0.1:6443", token="tok-a")
    assert settings_from_kubeconfig(path, "b").token == "tok-b"


def test_relative_files_resolve_against_the_kubeconfig_directory(tmp_path: Path) -> None:
    (tmp_path / "kube").mkdir()
    path = write(tmp_path / "kube" / "config",
                 {"a": {"tokenFile": "tok", "client-certificate": "pki/me.crt", "client-key": "/abs/me.key"}},
                 cluster={"server": "https://api:6443", "certificate-authority": "ca.crt",
                          "insecure-skip-tls-verify": True})
    s = settings_from_kubeconfig(path)
    assert (s.token_file, s.client_cert_file, s.client_key_file, s.ca_file) == (
        str(tmp_path / "kube" / "tok"), str(tmp_path / "kube" / "pki" / "me.crt"), "/abs/me.key",
        str(tmp_path / "kube" / "ca.crt"))
    assert s.insecure_skip_tls_verify and s.token is None


def test_token_file_is_read_on_every_call(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    s = KubeSettings(server="https://api", token_file=str(token))
    assert s.bearer_token() == "first"
    token.write_text("rotated\n")
    assert s.bearer_token() == "rotated"


def test_data_fields_are_base64_decoded(tmp_path: Path) -> None:
    pem = {k: f"-----BEGIN {k}-----\n".encode() for k in ("CA", "CERT", "KEY")}
    path = write(tmp_path / "config", {"a": {"client-certificate-data": base64.b64encode(pem["CERT"]).decode(),
                                             "client-key-data": base64.b64encode(pem["KEY"]).decode()}},
                 cluster={"server": "https://api", "certificate-authority-data": base64.b64encode(pem["CA"]).decode()})
    s = settings_from_kubeconfig(path)
    assert (s.ca_data, s.client_cert_data, s.client_key_data) == (pem["CA"], pem["CERT"], pem["KEY"])


@pytest.mark.parametrize("user, words", [
    ({"exec": {"command": "aws", "args": ["eks", "get-token"]}}, ["'exec'", "not support"]),
    ({"auth-provider": {"name": "gcp"}}, ["'auth-provider'", "not support"]),
    ({"token": "t", "client-key-data": "not base64!"}, ["client-key-data", "base64"]),
])
def test_unsupported_or_bad_user_is_one_clear_line(tmp_path: Path, user: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(KubeConfigError) as err:
        settings_from_kubeconfig(write(tmp_path / "config", {"a": user}))
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_missing_pieces_are_named(tmp_path: Path) -> None:
    path = write(tmp_path / "config", {"a": {"token": "t"}})
    with pytest.raises(KubeConfigError, match="no context named 'nope'"):
        settings_from_kubeconfig(path, "nope")
    with pytest.raises(KubeConfigError, match="cannot read kubeconfig"):
        settings_from_kubeconfig(tmp_path / "absent")
    (tmp_path / "bad").write_text("clusters: [")
    with pytest.raises(KubeConfigError, match="not valid YAML"):
        settings_from_kubeconfig(tmp_path / "bad")
    with pytest.raises(KubeConfigError, match="has no server"):
        settings_from_kubeconfig(write(tmp_path / "config", {"a": {"token": "t"}}, cluster={"insecure-skip-tls-verify": True}))


def test_in_cluster_from_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("pem")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert settings_in_cluster(env, tmp_path) == KubeSettings(
        server="https://10.96.0.1:443", ca_file=str(tmp_path / "ca.crt"), token_file=str(tmp_path / "token"))
    assert settings_in_cluster({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, tmp_path).server == "https://[fd00::1]:443"
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_HOST"):
        settings_in_cluster({}, tmp_path)
    (tmp_path / "token").unlink()
    with pytest.raises(KubeConfigError, match="token is missing"):
        settings_in_cluster(env, tmp_path)


def test_unusable_tls_files_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate")
    with pytest.raises(KubeConfigError, match="TLS files for https://api:6443 unusable"):
        KubeHttp(KubeSettings(server="https://api:6443", ca_file=str(tmp_path / "ca.crt")), maxsize=2)
    with pytest.raises(KubeConfigError, match="unusable"):
        KubeHttp(KubeSettings(server="https://api:6443", client_cert_data=b"junk", client_key_data=b"junk"), maxsize=2)
