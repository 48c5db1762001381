"""Test PKI made with the openssl command line: a CA, a server certificate for 127.0.0.1 and client
certificates whose O fields are roles (the mapper's convention, see mapper/auth.py)."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Ca:
    dir: Path
    name: str

    @property
    def cert(self) -> Path:
        return self.dir / f"{self.name}.crt"

    @property
    def key(self) -> Path:
        return self.dir / f"{self.name}.key"

    def issue(self, name: str, subject: str, *, server: bool = False) -> tuple[Path, Path]:
        """(cert, key) signed by this CA; server certificates carry IP 127.0.0.1 and DNS localhost."""
        key, csr, crt = self.dir / f"{name}.key", self.dir / f"{name}.csr", self.dir / f"{name}.crt"
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key.name,
             "-out", csr.name, "-subj", subject, cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else "basicConstraints=CA:FALSE\n")
        _run("x509", "-req", "-in", csr.name, "-CA", self.cert.name, "-CAkey", self.key.name, "-CAcreateserial",
             "-out", crt.name, "-days", "2", "-extfile", ext.name, cwd=self.dir)
        return crt, key


def make_ca(directory: Path, name: str = "ca") -> Ca:
    directory.mkdir(parents=True, exist_ok=True)
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}", "-days", "2", cwd=directory)
    return Ca(directory, name)
