"""Fixtures of the end-to-end tests: child processes that never outlive a
test, and ``durable_url`` with its PostgreSQL case marked ``postgres``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from e2e.procs import Child, Spawn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """As the suite's ``durable_url``, so that ``-m "not postgres"`` deselects
    the PostgreSQL case instead of skipping it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start a child in ``tmp_path``; every child is killed and reaped afterwards."""
    children: list[Child] = []

    def start(name: str, args: Sequence[str], env: dict[str, str]) -> Child:
        child = Child(name, args, env, tmp_path)
        children.append(child)
        return child

    yield start
    for child in children:
        child.reap()
