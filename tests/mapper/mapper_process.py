"""A real mapper process (`netmapper mapper serve`) for tests that kill it."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MapperProcess:
    """`netmapper mapper serve` on a fixed port and sqlite file, started and killed at will."""

    def __init__(self, db: Path, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Health alone in plaintext beside the (maybe TLS) API port: readiness without credentials.
        self.health_address = f"127.0.0.1:{free_port()}"
        self.db = db
        self.extra = extra
        self.log = db.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "netmapper.cli.main", "mapper", "serve", "--listen", self.address,
                 "--db", str(self.db), "--health-listen", self.health_address, *self.extra], stdout=log, stderr=log)
        self.wait_serving()

    def wait_serving(self, attempts: int = 200) -> None:
        with grpc.insecure_channel(self.health_address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            for _ in range(attempts):
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
                try:
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5, wait_for_ready=True)
                    return
                except grpc.RpcError:
                    continue
        raise AssertionError(f"mapper never served: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
