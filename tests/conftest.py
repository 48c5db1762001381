"""Shared test helpers.

Privileged suites (real eBPF, real API server) skip on a developer machine that cannot run them, but a
CI job that sets the suite's NETMAPPER_REQUIRE_* variable to 1 turns every such skip into a failure,
so a broken environment can never produce a silently green run.

Use the `unavailable(env_var, reason)` helper from code that decides availability itself (it is also
offered as a fixture, since conftest modules are not meant to be imported), or the ready-made
`require_bpf` fixture.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest

from postgres_server import PostgresServer, PostgresUnavailable


def required(env_var: str) -> bool:
    """True when the environment demands the capability guarded by env_var (e.g. NETMAPPER_REQUIRE_BPF)."""
    return os.environ.get(env_var, "") not in ("", "0")


def unavailable(env_var: str, reason: str) -> NoReturn:
    """Skip the current test because of `reason`, or fail it when env_var requires the capability."""
    if required(env_var):
        pytest.fail(f"{reason} (required by {env_var}={os.environ[env_var]})", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(name="unavailable", scope="session")
def unavailable_fixture() -> Callable[[str, str], NoReturn]:
    return unavailable


@pytest.fixture(scope="session")
def require_bpf() -> None:
    """Skip (or fail under NETMAPPER_REQUIRE_BPF=1) unless this process can load the eBPF probes."""
    # Imported here so that collecting the fast unit tests never touches the BPF adapter.
    from sniffer.connect_probe import ProbeUnavailable, check_environment

    try:
        check_environment()
    except ProbeUnavailable as e:
        unavailable("NETMAPPER_REQUIRE_BPF", f"eBPF unavailable: {e}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1 for the session (skip, or fail under NETMAPPER_REQUIRE_POSTGRES=1)."""
    server = PostgresServer()
    try:
        server.start()
    except (PostgresUnavailable, OSError, ImportError) as e:
        server.stop()
        unavailable("NETMAPPER_REQUIRE_POSTGRES", f"PostgreSQL unavailable: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """URL of a fresh, empty database of its own for one test."""
    return postgres.new_database()
