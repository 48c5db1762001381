"""A real PostgreSQL server for tests: scripts/postgres.sh start/stop on a temporary data directory.

The server listens on 127.0.0.1 only, on a free port, with trust authentication; it lives for one test
session. Each test that needs a clean database gets one of its own (`new_database`), so tests never see
each other's edges and the server is started once.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Final

SCRIPT: Final[Path] = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


class PostgresUnavailable(Exception):
    """The server could not be started; str() says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One running server; url() names its `netmapper` database, new_database() makes a fresh one."""

    def __init__(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="netmapper-pg-"))
        self._tmp.chmod(0o755)  # the server runs as `postgres` and must reach its data directory
        self.data_dir = self._tmp / "data"
        self.port = 0
        self._started = False

    def start(self) -> None:
        """Start the server (again, on the same port and data, after pause())."""
        if os.geteuid() != 0 and not shutil.which("pg_ctl"):
            raise PostgresUnavailable("not root and no pg_ctl on PATH")
        self.port = self.port or _free_port()
        proc = subprocess.run(["bash", str(SCRIPT), "start", str(self.data_dir), str(self.port)],
                              capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise PostgresUnavailable(f"scripts/postgres.sh start failed: {proc.stderr.strip()[-600:]}")
        self._started = True

    def url(self, database: str = "netmapper") -> str:
        return f"postgresql://nm@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pause(self) -> None:
        """Stop the server but keep its data (start() brings it back): a database outage."""
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.data_dir), "fast"], capture_output=True, timeout=60,
                       check=True)

    def stop(self) -> None:
        if self._started:
            # immediate: the data is thrown away, no checkpoint needed
            subprocess.run(["bash", str(SCRIPT), "stop", str(self.data_dir), "immediate"], capture_output=True, timeout=60,
                           check=False)
            self._started = False
        shutil.rmtree(self._tmp, ignore_errors=True)
