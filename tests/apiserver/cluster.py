"""A throwaway Kubernetes control plane for tests: Debian's etcd plus a real kube-apiserver.

The kube-apiserver binary is built once by scripts/kube-apiserver.sh (see ENVIRONMENT.md) and cached;
this module only starts and stops processes. Everything listens on 127.0.0.1 on free ports and lives
in one temporary directory, so parallel sessions do not collide.

Two static tokens are issued: an admin (group system:masters) and a user with no RBAC bindings at
all, so tests can exercise Forbidden paths against a real authorizer.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from sniffer.kube_http import KubeSettings

log = logging.getLogger(__name__)

DEFAULT_APISERVER_BINARY = Path("/var/cache/netmapper/kube-apiserver")
ADMIN_TOKEN = "netmapper-test-admin-token"
NOBODY_TOKEN = "netmapper-test-nobody-token"


class ClusterStartError(RuntimeError):
    """etcd or kube-apiserver is missing or did not become ready; the message says why."""


def apiserver_binary() -> Path:
    return Path(os.environ.get("NETMAPPER_APISERVER_CACHE", str(DEFAULT_APISERVER_BINARY)))


def free_port() -> int:
    # Bind to port 0 and release: racy in theory, but the window before the daemon binds is tiny and
    # a collision shows up as a clear start failure, not as a wrong result.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", b"") or b""
        raise ClusterStartError(f"{cmd[0]} failed: {e} {err.decode(errors='replace')}") from e


@dataclass
class _Proc:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            # Own process group: stop() signals exactly what we started, children included.
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0, *, graceful: bool = True) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class ApiServerCluster:
    """etcd + kube-apiserver in `workdir`. Use start()/stop() or as a context manager."""

    workdir: Path
    binary: Path = field(default_factory=apiserver_binary)
    etcd_binary: str = "etcd"
    ready_timeout: float = 60.0
    etcd_port: int = 0
    api_port: int = 0
    _etcd: _Proc | None = None
    _api: _Proc | None = None
    start_seconds: float = 0.0

    @property
    def host(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "serving.crt"

    @property
    def client_cert(self) -> Path:
        """PEM certificate of a system:masters user (authenticates without a token)."""
        return self.workdir / "pki" / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.workdir / "pki" / "client.key"

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "kubeconfig"

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ApiServerCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        t0 = time.monotonic()
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise ClusterStartError(f"no kube-apiserver at {self.binary}: run scripts/kube-apiserver.sh")
        if shutil.which(self.etcd_binary) is None:
            raise ClusterStartError(f"{self.etcd_binary} not found: install Debian's etcd-server")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_pki()
        self._start_etcd()
        self._start_apiserver()
        self._write_kubeconfig()
        self.start_seconds = time.monotonic() - t0
        log.info("test cluster ready at %s in %.1fs", self.host, self.start_seconds)

    def stop(self) -> None:
        for proc in (self._api, self._etcd):
            if proc is not None:
                proc.stop()

    def stop_apiserver(self) -> None:
        """Kill kube-apiserver (a crash, as far as clients can tell). A graceful stop would wait ~10s
        for open watches to drain, which tests do not need."""
        if self._api is not None:
            self._api.stop(graceful=False)

    def start_apiserver(self) -> None:
        """(Re)start kube-apiserver on the same port and etcd. Its watch cache starts over at etcd's
        current revision, so a client resuming a watch from an older resourceVersion gets 410 Gone
        and must relist: the real path, no test hook."""
        self._start_apiserver()

    def restart_apiserver(self) -> None:
        self.stop_apiserver()
        self.start_apiserver()

    # ---- pieces ------------------------------------------------------------------------------

    def _make_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        # Serving cert for 127.0.0.1 that clients verify against (no verify_ssl=False anywhere).
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
              "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
              "-keyout", str(pki / "serving.key"), "-out", str(pki / "serving.crt")])
        # 1.20 requires a service-account signing key and issuer even though we mint no SA tokens.
        _run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"])
        _run(["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")])
        # A client certificate in system:masters, for clients that authenticate by certificate.
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
              "-subj", "/CN=netmapper-test-client-ca", "-keyout", str(pki / "client-ca.key"),
              "-out", str(pki / "client-ca.crt")])
        _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=system:masters/CN=netmapper-cert-admin",
              "-keyout", str(self.client_key), "-out", str(pki / "client.csr")])
        _run(["openssl", "x509", "-req", "-in", str(pki / "client.csr"), "-CA", str(pki / "client-ca.crt"),
              "-CAkey", str(pki / "client-ca.key"), "-CAcreateserial", "-days", "2", "-out", str(self.client_cert)])
        (pki / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},netmapper-admin,uid-admin,"system:masters"\n'
            f"{NOBODY_TOKEN},netmapper-nobody,uid-nobody\n"
        )

    def _start_etcd(self) -> None:
        self.etcd_port = free_port()
        peer = free_port()
        self._etcd = _Proc("etcd", [
            self.etcd_binary, "--name", "netmapper-test",
            "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"netmapper-test=http://127.0.0.1:{peer}",
            # The tests are throwaway: skip fsync so etcd is not the slow part.
            "--unsafe-no-fsync",
        ], self.workdir / "etcd.log")
        self._etcd.start()
        self._wait(self._etcd, f"{self.etcd_url}/health", ssl_ctx=None, token=None)

    def _start_apiserver(self) -> None:
        if not self.api_port:
            self.api_port = free_port()
        pki = self.workdir / "pki"
        self._api = _Proc("kube-apiserver", [
            str(self.binary),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            "--insecure-port=0",  # 1.20 still opens :8080 by default; parallel runs would collide
            f"--tls-cert-file={pki / 'serving.crt'}", f"--tls-private-key-file={pki / 'serving.key'}",
            f"--cert-dir={pki}",
            f"--token-auth-file={pki / 'tokens.csv'}", f"--client-ca-file={pki / 'client-ca.crt'}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            # No controller-manager mints service-account tokens, so the admission plugin that
            # insists on them would reject every pod.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--logtostderr=true", "--v=1",
        ], self.workdir / "kube-apiserver.log")
        self._api.start()
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        self._wait(self._api, f"{self.host}/readyz", ssl_ctx=ctx, token=ADMIN_TOKEN)

    def _wait(self, proc: _Proc, url: str, *, ssl_ctx: ssl.SSLContext | None, token: str | None) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ClusterStartError(f"{proc.name} exited early:\n{proc.log_tail()}")
            req = urllib.request.Request(url)
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(req, timeout=2, context=ssl_ctx) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.2)
        proc.stop()
        raise ClusterStartError(f"{proc.name} not ready at {url} after {self.ready_timeout}s ({last}):\n"
                                f"{proc.log_tail()}")

    def _write_kubeconfig(self) -> None:
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "netmapper-test",
            "clusters": [{"name": "netmapper-test",
                          "cluster": {"server": self.host, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [{"name": "netmapper-test", "context": {"cluster": "netmapper-test", "user": "admin"}}],
        }
        # JSON is valid YAML, and kubeconfig loaders read either.
        self.kubeconfig_path.write_text(json.dumps(cfg, indent=2))

    # ---- clients -----------------------------------------------------------------------------

    def configuration(self, token: str = ADMIN_TOKEN) -> KubeSettings:
        """The sniffer's connection settings for this server."""
        return KubeSettings(server=self.host, ca_file=str(self.ca_file), token=token)

    def api_client(self, token: str = ADMIN_TOKEN) -> client.ApiClient:
        """A `kubernetes` client (the tests' own tool for creating objects; the sniffer has none)."""
        cfg = client.Configuration()
        cfg.host = self.host
        cfg.ssl_ca_cert = str(self.ca_file)
        cfg.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(cfg)

    def _etcd_post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(f"{self.etcd_url}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            result: dict[str, object] = json.load(resp)
            return result

    def etcd_delete(self, key: str) -> int:
        """Delete one key straight from etcd (behind the API server's back, e.g. while it is down);
        returns how many keys went. Pods live at /registry/pods/<namespace>/<name>."""
        b64 = base64.b64encode(key.encode()).decode()
        return int(str(self._etcd_post("/v3/kv/deleterange", {"key": b64}).get("deleted", 0)))

    def etcd_compact(self) -> int:
        """Compact etcd at its current revision (through etcd's JSON gateway); returns the revision."""
        # key "\0" (base64 "AA=="): any range read returns the header with the current revision.
        header = self._etcd_post("/v3/kv/range", {"key": "AA==", "limit": 1})["header"]
        rev = int(header["revision"])  # type: ignore[index]
        self._etcd_post("/v3/kv/compaction", {"revision": rev, "physical": True})
        return rev
