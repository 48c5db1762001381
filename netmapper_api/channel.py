"""Client side of the mapper's authentication: channels for the CLI and the sniffer.

Credentials come as kubectl users expect: `--token-file`, `--ca`, `--cert`, `--key`, or the
NETMAPPER_TOKEN environment variable. Any of them makes the channel TLS (a token never travels in
clear text); `--ca` alone trusts that CA instead of the system roots; `--cert/--key` add a client
certificate (mutual TLS). The token file is re-read for every call, so a rotated Secret is picked up
without a restart. With none of them the channel is plaintext, as for the local demo.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

TOKEN_ENV = "NETMAPPER_TOKEN"


class CredentialError(ValueError):
    """Client credentials that cannot be used; str() says which file and why."""


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What a client presents to the mapper. All empty: a plaintext channel."""

    token_file: Path | None = None
    token: str = ""  # from NETMAPPER_TOKEN (a token file wins when both are given)
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str = ""  # TLS name to verify instead of the address's host

    @property
    def tls(self) -> bool:
        return bool(self.token_file or self.token or self.ca or self.cert)

    def current_token(self) -> str:
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip()
            except OSError as exc:
                raise CredentialError(f"cannot read token file {self.token_file}: {exc.strerror}") from None
        return self.token


def add_credential_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("mapper credentials")
    g.add_argument("--token-file", type=Path, metavar="FILE",
                   help=f"bearer token for the mapper, re-read on every call (or set ${TOKEN_ENV})")
    g.add_argument("--ca", type=Path, metavar="FILE", help="CA certificate that signed the mapper's certificate")
    g.add_argument("--cert", type=Path, metavar="FILE", help="client certificate (mutual TLS)")
    g.add_argument("--key", type=Path, metavar="FILE", help="key of the client certificate")
    g.add_argument("--tls-server-name", default="", metavar="NAME",
                   help="name the mapper's certificate must carry, when not the address's host")


def credentials_from_args(args: argparse.Namespace) -> ClientCredentials:
    creds = ClientCredentials(
        token_file=getattr(args, "token_file", None), token=os.environ.get(TOKEN_ENV, "").strip(),
        ca=getattr(args, "ca", None), cert=getattr(args, "cert", None), key=getattr(args, "key", None),
        server_name=getattr(args, "tls_server_name", "") or "",
    )
    if (creds.cert is None) != (creds.key is None):
        raise CredentialError("--cert and --key go together")
    for path in (creds.token_file, creds.ca, creds.cert, creds.key):
        if path is not None and not path.is_file():
            raise CredentialError(f"{path}: no such file")
    if creds.token_file is not None:
        creds.current_token()  # fail now, not at the first call
    return creds


class _BearerToken(grpc.AuthMetadataPlugin):
    def __init__(self, creds: ClientCredentials) -> None:
        self._creds = creds

    def __call__(self, context: Any, callback: Any) -> None:
        try:
            token = self._creds.current_token()
        except CredentialError as exc:
            callback((), exc)
            return
        callback((("authorization", f"Bearer {token}"),) if token else (), None)


def channel_credentials(creds: ClientCredentials) -> grpc.ChannelCredentials:
    try:
        ca = creds.ca.read_bytes() if creds.ca else None
        cert = creds.cert.read_bytes() if creds.cert else None
        key = creds.key.read_bytes() if creds.key else None
    except OSError as exc:
        raise CredentialError(f"cannot read {exc.filename}: {exc.strerror}") from None
    tls = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    if creds.token_file is None and not creds.token:
        return tls
    return grpc.composite_channel_credentials(tls, grpc.metadata_call_credentials(_BearerToken(creds)))


def open_channel(target: str, creds: ClientCredentials | None = None,
                 options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """A channel to the mapper: TLS with the given credentials, plaintext with none."""
    opts = list(options)
    if creds is None or not creds.tls:
        return grpc.insecure_channel(target, options=opts)
    if creds.server_name:
        opts.append(("grpc.ssl_target_name_override", creds.server_name))
    return grpc.secure_channel(target, channel_credentials(creds), options=opts)
