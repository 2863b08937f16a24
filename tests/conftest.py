"""Shared fixtures: a guard that keeps tests on loopback, and store URLs.

PostgreSQL tests read ``AGENT_NODE_TEST_PG_URL`` (CI sets it) and skip,
saying so, when it is not set. Each test gets a fresh database.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_node.engine import faults

PG_URL = os.environ.get("AGENT_NODE_TEST_PG_URL")
PG_SKIP = (
    "PostgreSQL tests need AGENT_NODE_TEST_PG_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
)

_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "", None}
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _check_address(address: Any) -> None:
    if isinstance(address, str | bytes):  # a Unix socket path
        return
    host = address[0] if isinstance(address, tuple) else address
    if host in _LOCAL_NAMES:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ConnectionRefusedError(f"tests may not leave loopback (tried {address!r})")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, bytes):
        host = host.decode()
    if host not in _LOCAL_NAMES and host != socket.gethostname():
        _check_address((host, 0))
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Iterator[None]:
    """Refuse any connection beyond loopback for the whole session."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(autouse=True)
def no_armed_faults() -> Iterator[None]:
    faults.disarm()
    yield
    faults.disarm()


def _pg_admin_url() -> str:
    if PG_URL is None:
        pytest.skip(PG_SKIP)
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_exec(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test."""
    admin = _pg_admin_url()
    name = f"agent_node_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_exec(admin, f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against each store."""
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", "postgres"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that survives its process: SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def runtime_factory() -> AsyncIterator[Any]:
    """Open runtimes that are closed after the test."""
    from agent_node import Runtime

    opened: list[Runtime] = []

    async def make(url: str, **options: Any) -> Runtime:
        runtime = Runtime(url, **options)
        await runtime.start()
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        await runtime.close()


# pytest-xdist's workers start with COLUMNS=80 and LINES=24 in their
# environment, which every CLI the tests run (and rich in-process) would take
# for a narrow terminal; without them, output to a pipe is as wide as in CI.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """An end-to-end test file runs whole on one xdist worker, its tests one
    after another (they share module fixtures: nodes, networks, caches), and
    the files are shared out between the workers first, before the
    integration and unit tests fill what is left (``-n 2 --dist loadgroup``
    in pyproject.toml; collection order puts ``e2e/`` first). All end-to-end
    tests on one worker made them the suite's critical path: ~43 of its
    ~60 worker-minutes, the other worker idle after the rest."""
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.xdist_group(f"e2e:{item.path.name}"))
