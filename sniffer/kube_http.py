"""HTTP to the Kubernetes API server on urllib3: connection settings (in cluster or from a kubeconfig),
a pooled transport that leaves bodies unread (watches stream), and the API's error type.

The sniffer does not import the `kubernetes` package: its __init__ loads ~700 model modules and
requests/oauthlib/yaml/dateutil/websocket, ~20 MiB RSS in a process that has a 100 MiB budget
(bench/sniffer_live_feed_memory.py). The feed needs only GET with a bearer token or client certificate.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import urllib3

# Accept header values. Metadata-only lists/watches/gets are served since Kubernetes 1.15; the plain
# JSON fallback after the comma keeps us working (with bigger objects) against anything older.
ACCEPT_JSON: Final = "application/json"
ACCEPT_META_LIST: Final = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
ACCEPT_META: Final = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeConfigError(ValueError):
    """The connection settings cannot be built (missing file, unsupported kubeconfig); one line."""


class KubeApiError(Exception):
    """A non-2xx answer of the API server: its status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"({status}) {message}")
        self.status = status
        self.message = message

    @classmethod
    def from_response(cls, resp: urllib3.BaseHTTPResponse) -> KubeApiError:
        """Reads the body: a Status object's message, else the body's start."""
        body = resp.read()
        message = ""
        try:
            doc = json.loads(body)
            if isinstance(doc, dict):
                message = str(doc.get("message") or "")
        except ValueError:
            pass
        if not message:
            message = body[:200].decode("utf-8", "replace").strip() or (resp.reason or "")
        return cls(resp.status, message)


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """Where the API server is and how to authenticate to it (a subset of what kubeconfig allows)."""

    server: str  # https://host:port
    ca_file: str | None = None
    ca_data: bytes | None = None  # PEM
    token: str | None = None
    token_file: str | None = None  # re-read on every request: kubelet rotates projected tokens
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: bytes | None = None  # PEM
    client_key_data: bytes | None = None  # PEM
    insecure_skip_tls_verify: bool = False

    def bearer_token(self) -> str | None:
        if self.token_file is not None:
            return Path(self.token_file).read_text().strip()
        return self.token

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(
            cafile=self.ca_file, cadata=self.ca_data.decode() if self.ca_data is not None else None)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        cert, key = self.client_cert_file, self.client_key_file
        if self.client_cert_data is not None or self.client_key_data is not None:
            # load_cert_chain reads only files: a private directory that is gone once loaded.
            with tempfile.TemporaryDirectory(prefix="netmapper-kube-") as tmp:
                if self.client_cert_data is not None:
                    cert = _private_file(Path(tmp) / "cert.pem", self.client_cert_data)
                if self.client_key_data is not None:
                    key = _private_file(Path(tmp) / "key.pem", self.client_key_data)
                if cert is not None:
                    ctx.load_cert_chain(cert, key)
        elif cert is not None:
            ctx.load_cert_chain(cert, key)
        return ctx


def _private_file(path: Path, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return str(path)


def settings_in_cluster(environ: Mapping[str, str] = os.environ,
                        account_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeSettings:
    """The pod's service account: the API server's Service address from the environment kubelet sets."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeConfigError("not in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT unset): "
                              "pass --kubeconfig or --snapshot")
    token, ca = account_dir / "token", account_dir / "ca.crt"
    for f in (token, ca):
        if not f.is_file():
            raise KubeConfigError(f"in-cluster service account file {f} is missing")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return KubeSettings(server=f"https://{host}:{port}", ca_file=str(ca), token_file=str(token))


def settings_from_kubeconfig(path: Path, context: str | None = None) -> KubeSettings:
    """The settings of the kubeconfig's current context (or `context`); see KubeSettings for what is read."""
    import yaml  # only with --kubeconfig: in cluster the sniffer carries no YAML parser

    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise KubeConfigError(f"cannot read kubeconfig {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise KubeConfigError(f"kubeconfig {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(doc, dict):
        raise KubeConfigError(f"kubeconfig {path} is not a mapping")
    name = context or doc.get("current-context")
    if not name:
        raise KubeConfigError(f"kubeconfig {path} has no current-context")
    ctx = _named(doc, "contexts", "context", str(name), path)
    cluster = _named(doc, "clusters", "cluster", str(ctx.get("cluster") or ""), path)
    user = _named(doc, "users", "user", str(ctx.get("user") or ""), path) if ctx.get("user") else {}
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported):
            raise KubeConfigError(
                f"kubeconfig {path}: user {ctx.get('user')!r} authenticates with {unsupported!r}, which the sniffer "
                "does not support; use a token, tokenFile or client certificate (or run in cluster)")
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeConfigError(f"kubeconfig {path}: cluster {ctx.get('cluster')!r} has no server")
    base = path.resolve().parent

    def file(section: Mapping[str, Any], key: str) -> str | None:
        value = section.get(key)
        return str(base / str(value)) if value else None  # relative to the kubeconfig, as kubectl does

    def data(section: Mapping[str, Any], key: str) -> bytes | None:
        value = section.get(key)
        if not value:
            return None
        try:
            return base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError) as e:
            raise KubeConfigError(f"kubeconfig {path}: {key} is not base64") from e

    return KubeSettings(
        server=server.rstrip("/"),
        ca_file=file(cluster, "certificate-authority"), ca_data=data(cluster, "certificate-authority-data"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        token=str(user["token"]) if user.get("token") else None, token_file=file(user, "tokenFile"),
        client_cert_file=file(user, "client-certificate"), client_cert_data=data(user, "client-certificate-data"),
        client_key_file=file(user, "client-key"), client_key_data=data(user, "client-key-data"))


def _named(doc: Mapping[str, Any], section: str, field: str, name: str, path: Path) -> dict[str, Any]:
    """The `field` of the entry called `name` in the kubeconfig's list `section`."""
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(field) or {}
            if not isinstance(value, dict):
                raise KubeConfigError(f"kubeconfig {path}: {section} entry {name!r} is not a mapping")
            return value
    raise KubeConfigError(f"kubeconfig {path}: no {field} named {name!r} in {section}")


class KubeHttp:
    """GET (and friends) against the API server through one connection pool; thread-safe."""

    def __init__(self, settings: KubeSettings, *, maxsize: int) -> None:
        self.settings = settings
        insecure = settings.insecure_skip_tls_verify
        try:
            ctx = settings.ssl_context()
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise KubeConfigError(f"TLS files for {settings.server} unusable: {e}") from e
        self._pool = urllib3.PoolManager(
            num_pools=2, maxsize=maxsize, ssl_context=ctx,
            cert_reqs="CERT_NONE" if insecure else "CERT_REQUIRED", assert_hostname=False if insecure else None)

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None, *,
                accept: str = ACCEPT_JSON, timeout: tuple[float, float]) -> urllib3.BaseHTTPResponse:
        """The response with its body unread (a watch streams it); any status, the caller checks it.
        `timeout` is (connect, read) in seconds."""
        url = self.settings.server + path + (f"?{urlencode(params)}" if params else "")
        headers = {"Accept": accept, "User-Agent": "netmapper-sniffer"}
        token = self.settings.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self._pool.request(method, url, headers=headers, preload_content=False, redirect=False,
                                  retries=False, timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))

    def close(self) -> None:
        self._pool.clear()
