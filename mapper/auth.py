"""Who may call the mapper: TLS server credentials, client authentication and roles.

Clients authenticate with a bearer token (`authorization: Bearer TOKEN` metadata, checked against a
token file) or with a client certificate signed by the client CA (mutual TLS). Every principal has
roles: `report` (ReportEdges, for sniffers), `read` (ListEdges and every query), `admin` (reset).
No or unknown credential: UNAUTHENTICATED; a valid one without the method's role: PERMISSION_DENIED.
Both are refused before the handler runs, so they change nothing; both are counted (AuthStats).

A principal can be bound to a node: its ReportEdges batches must name that node, or the stream is
ended with PERMISSION_DENIED before the batch reaches the store. A sniffer's stolen token then cannot
write edges for other nodes. Every message of a stream is checked against the credentials in force, so
revoking a token ends the streams that use it at their next message.

Token file (a mounted Secret), one principal per line, `#` comments, like kube-apiserver's static
token file:  TOKEN,NAME,ROLES[,NODE]  with ROLES separated by spaces or `|` (e.g. `read|admin`).
Client certificates: CN is the name, each O (organization) is a role, and a CN of `node:NAME` binds
the certificate to node NAME (as Kubernetes uses O for groups and `system:node:NAME` for kubelets).

Files are re-read when they change (mtime, size or inode: a Secret update swaps a symlink): the token
file on the next call that presents a token, the TLS files on the next TLS handshake. A file that
fails to parse leaves the previous credentials in force and is logged.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import grpc

log = logging.getLogger(__name__)

REPORT: Final[str] = "report"
READ: Final[str] = "read"
ADMIN: Final[str] = "admin"
ROLES: Final[frozenset[str]] = frozenset({REPORT, READ, ADMIN})

_SERVICE: Final[str] = "/netmapper.v1.Mapper/"
# The role each RPC needs. Methods not listed: Get*/List*/Watch*/Export* need `read`; anything else is
# refused until it is listed here, so a new writing RPC is never open by accident.
METHOD_ROLES: Final[dict[str, str]] = {
    _SERVICE + "ReportEdges": REPORT,
    _SERVICE + "ListEdges": READ,
    _SERVICE + "ResetEdges": ADMIN,
}
_READ_PREFIXES: Final[tuple[str, ...]] = ("Get", "List", "Watch", "Export", "Diff")
# Health checks stay open: kubelet probes and load balancers carry no credentials.
_OPEN_PREFIXES: Final[tuple[str, ...]] = ("/grpc.health.v1.Health/",)
_REFLECTION_PREFIX: Final[str] = "/grpc.reflection."
_NODE_CN_PREFIX: Final[str] = "node:"


class AuthConfigError(ValueError):
    """A credential file that cannot be used; str() names the file and line."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    name: str
    roles: frozenset[str]
    node: str = ""  # "" = not bound to a node
    via: str = "token"  # "token" or "certificate"


def role_for(method: str) -> str | None:
    """The role `method` (a full gRPC method name) needs; "" when open to all; None when unknown."""
    if method.startswith(_OPEN_PREFIXES):
        return ""
    if method.startswith(_REFLECTION_PREFIX):
        return READ  # the schema, for grpcurl and other stock clients of readers
    role = METHOD_ROLES.get(method)
    if role is not None:
        return role
    if method.startswith(_SERVICE) and method[len(_SERVICE):].startswith(_READ_PREFIXES):
        return READ
    return None


def _roles(text: str, where: str) -> frozenset[str]:
    roles = frozenset(r for r in re.split(r"[\s|;]+", text.strip()) if r)
    unknown = roles - ROLES
    if not roles or unknown:
        raise AuthConfigError(f"{where}: roles must be some of {sorted(ROLES)}, got {text!r}")
    return roles


def _digest(token: str) -> bytes:
    # Tokens are looked up by digest: the dict lookup then leaks nothing useful about a secret's bytes.
    return hashlib.sha256(token.encode()).digest()


def parse_token_file(text: str, path: str = "token file") -> dict[bytes, Principal]:
    """Token digest -> principal. Raises AuthConfigError naming the line of the first problem."""
    out: dict[bytes, Principal] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(row) not in (3, 4):
            raise AuthConfigError(f"{where}: expected TOKEN,NAME,ROLES[,NODE], got {len(row)} fields")
        token, name, roles = row[0].strip(), row[1].strip(), row[2]
        node = row[3].strip() if len(row) == 4 else ""
        if len(token) < 16:
            raise AuthConfigError(f"{where}: token shorter than 16 characters")
        if not name:
            raise AuthConfigError(f"{where}: empty name")
        digest = _digest(token)
        if digest in out:
            raise AuthConfigError(f"{where}: token listed twice")
        out[digest] = Principal(name=name, roles=_roles(roles, where), node=node, via="token")
    return out


def _file_state(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ReloadingTokens:
    """A token file, re-read when it changes. Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._state = _file_state(self.path)
        self._tokens = parse_token_file(self.path.read_text(), str(self.path))  # errors at startup are fatal
        self.reloads = 0
        log.info("token file %s: %d tokens", self.path, len(self._tokens))

    def lookup(self, token: str) -> Principal | None:
        self._maybe_reload()
        return self._tokens.get(_digest(token))

    def _maybe_reload(self) -> None:
        try:
            state = _file_state(self.path)
        except OSError as exc:
            log.error("token file %s unreadable (%s); keeping the previous tokens", self.path, exc)
            return
        if state == self._state:
            return
        with self._lock:
            if state == self._state:
                return
            self._state = state  # a broken file is reported once, not on every call
            try:
                tokens = parse_token_file(self.path.read_text(), str(self.path))
            except (OSError, UnicodeDecodeError, AuthConfigError) as exc:
                log.error("token file changed but cannot be used (%s); keeping the previous tokens", exc)
                return
            self._tokens = tokens
            self.reloads += 1
            log.info("token file %s reloaded: %d tokens", self.path, len(tokens))


def _subject_fields(subject: str) -> list[tuple[str, str]]:
    """RFC 2253 subject text as gRPC reports it ("CN=a,O=read,O=report") -> [(attr, value)]."""
    out = []
    for part in re.split(r"(?<!\\),", subject):
        attr, sep, value = part.partition("=")
        if sep:
            out.append((attr.strip().upper(), value.replace("\\,", ",").strip()))
    return out


def certificate_principal(auth_context: Mapping[str, Any]) -> Principal | None:
    """The principal of a verified client certificate (gRPC only reports verified ones), or None."""
    subject = b"".join(auth_context.get("x509_subject", [])).decode(errors="replace")
    cn = b"".join(auth_context.get("x509_common_name", [])).decode(errors="replace")
    if not subject and not cn:
        return None
    fields = _subject_fields(subject)
    roles = frozenset(v for a, v in fields if a == "O" and v in ROLES)
    node = cn[len(_NODE_CN_PREFIX):] if cn.startswith(_NODE_CN_PREFIX) else ""
    return Principal(name=cn or subject, roles=roles, node=node, via="certificate")


@dataclass
class AuthStats:
    """Refusals by (status code name, method); the count is what operators alert on."""

    refused: Counter[tuple[str, str]]

    def total(self, code: str | None = None) -> int:
        return sum(n for (c, _), n in self.refused.items() if code is None or c == code)


ClaimedNode = Callable[[Any], str]


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks every RPC's credential and role before its handler runs.

    A server interceptor sees only the method and metadata, so it wraps the method handler: the check
    runs inside the handler call, where the TLS auth context (client certificate) is available.
    """

    def __init__(self, tokens: ReloadingTokens | None, *, claimed_node: dict[str, ClaimedNode] | None = None) -> None:
        self._tokens = tokens
        self._claimed_node = claimed_node or {}
        self._lock = threading.Lock()
        self.stats = AuthStats(refused=Counter())

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        role = role_for(method)
        if handler is None or role == "":
            return handler
        return _guarded(
            handler,
            lambda context: self._check(method, role, context),
            self._claimed_node.get(method),
            lambda context, principal, claimed: self._refuse(
                context, grpc.StatusCode.PERMISSION_DENIED, method,
                f"{principal.name} may report only for node {principal.node!r}, batch claims {claimed!r}"),
        )

    def authenticate(self, context: grpc.ServicerContext) -> Principal | None:
        """The caller, from its bearer token if it sent one, else from its client certificate."""
        for key, value in context.invocation_metadata():
            if key == "authorization":
                scheme, _, token = str(value).partition(" ")
                if self._tokens is None:
                    break  # no token file: tokens mean nothing here, the certificate decides
                if scheme.lower() != "bearer" or not token.strip():
                    return None
                return self._tokens.lookup(token.strip())
        return certificate_principal(context.auth_context())

    def _refuse(self, context: grpc.ServicerContext, code: grpc.StatusCode, method: str, why: str) -> None:
        with self._lock:
            self.stats.refused[(code.name, method)] += 1
            n = self.stats.refused[(code.name, method)]
        if n & (n - 1) == 0:  # log the 1st, 2nd, 4th, 8th ... refusal of a kind: visible, not a flood
            log.warning("refused %s from %s: %s: %s (%d so far)", method, context.peer(), code.name, why, n)
        context.abort(code, why)

    def _check(self, method: str, role: str | None, context: grpc.ServicerContext) -> Principal:
        principal = self.authenticate(context)
        if principal is None:
            self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, method,
                         "valid bearer token or client certificate required")
            raise AssertionError("unreachable: abort raises")
        if role is None:
            self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, method, f"{method} is not open to any role")
        elif role not in principal.roles:
            self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, method,
                         f"{principal.name} lacks role {role!r} needed by {method}")
        return principal


def _guarded(handler: grpc.RpcMethodHandler[Any, Any], check: Callable[[grpc.ServicerContext], Principal],
             claimed_node: ClaimedNode | None,
             refuse_node: Callable[[grpc.ServicerContext, Principal, str], None]) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with `check` run first; streamed requests of node-bound principals checked too."""
    h: Any = handler

    def bound(requests: Iterator[Any], principal: Principal, context: grpc.ServicerContext) -> Iterator[Any]:
        for req in requests:
            # Streams live for days: every message is checked against the credentials in force now, so
            # a token removed from the file (or a role taken away) stops the stream at its next batch.
            principal = check(context)
            if claimed_node is not None and principal.node:
                claimed = claimed_node(req)
                if claimed != principal.node:
                    refuse_node(context, principal, claimed)  # aborts: the batch never reaches the handler
            yield req

    if h.unary_unary is not None:
        inner_uu = h.unary_unary

        def uu(request: Any, context: grpc.ServicerContext) -> Any:
            check(context)
            return inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(uu, h.request_deserializer, h.response_serializer)
    if h.unary_stream is not None:
        inner_us = h.unary_stream

        def us(request: Any, context: grpc.ServicerContext) -> Any:
            check(context)
            return inner_us(request, context)

        return grpc.unary_stream_rpc_method_handler(us, h.request_deserializer, h.response_serializer)
    if h.stream_unary is not None:
        inner_su = h.stream_unary

        def su(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            principal = check(context)
            return inner_su(bound(requests, principal, context), context)

        return grpc.stream_unary_rpc_method_handler(su, h.request_deserializer, h.response_serializer)
    inner_ss = h.stream_stream

    def ss(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        principal = check(context)
        return inner_ss(bound(requests, principal, context), context)

    return grpc.stream_stream_rpc_method_handler(ss, h.request_deserializer, h.response_serializer)


class ReloadingTls:
    """Server key/certificate (and optional client CA) files, re-read at the next handshake after a change."""

    def __init__(self, cert: str | Path, key: str | Path, client_ca: str | Path | None = None) -> None:
        self.files = [Path(cert), Path(key)] + ([Path(client_ca)] if client_ca else [])
        self.require_client_cert = client_ca is not None
        self._lock = threading.Lock()
        self._state = self._states()
        self.initial = self._config()  # errors at startup are fatal
        self.reloads = 0

    def _states(self) -> list[tuple[int, int, int]]:
        return [_file_state(p) for p in self.files]

    def _config(self) -> grpc.ServerCertificateConfiguration:
        cert, key = self.files[0].read_bytes(), self.files[1].read_bytes()
        ca = self.files[2].read_bytes() if self.require_client_cert else None
        for path, data in zip(self.files, (cert, key, ca)):
            if data is not None and b"-----BEGIN" not in data:
                raise AuthConfigError(f"{path}: not a PEM file")
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate config fetcher: a new configuration when a file changed, else None."""
        try:
            states = self._states()
        except OSError as exc:
            log.error("TLS files unreadable (%s); keeping the previous certificate", exc)
            return None
        with self._lock:
            if states == self._state:
                return None
            self._state = states
            try:
                config = self._config()
            except (OSError, AuthConfigError) as exc:
                log.error("TLS files changed but cannot be used (%s); keeping the previous certificate", exc)
                return None
            self.reloads += 1
        log.info("TLS certificate files reloaded: %s", ", ".join(map(str, self.files)))
        return config

    def server_credentials(self) -> grpc.ServerCredentials:
        # gRPC's fetcher contract: None means "keep the current configuration" (its stubs say otherwise).
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], self.fetch)
        return grpc.dynamic_ssl_server_credentials(
            self.initial, fetch, require_client_authentication=self.require_client_cert
        )


def is_loopback(listen: str) -> bool:
    """True when `listen` ("host:port") binds only a loopback address."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost",) or host.startswith("127.") or host == "::1"


def env_token() -> str:
    return os.environ.get("NETMAPPER_TOKEN", "").strip()
