"""The SQLite store's files hold push tokens and credentials: a new store is
readable by its owner only (0600, like a key), its ``-wal`` and ``-shm``
files too; an existing file keeps the mode it was given."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.store import store_from_url


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most users have (022): files are 0644 unless made otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(database: Path) -> dict[str, int]:
    """The mode of the database file and of its -wal and -shm files."""
    names = [database.name, f"{database.name}-wal", f"{database.name}-shm"]
    return {name: mode(database.parent / name) for name in names}


class Greeting(BaseModel):
    greeting: str = ""


def greeter() -> Workflow:
    wf = Workflow("greet", version="1")
    wf.state(Greeting)

    @wf.step
    async def greet(state: Greeting) -> dict[str, str]:
        return {"greeting": "hello"}

    wf.end("done")
    return wf


async def test_a_new_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "new" / "agent-node.db"
    async with Runtime(f"sqlite:///{database}") as runtime:
        done = await runtime.run(greeter().compile(), {})
        assert done.status == "completed"
        assert modes(database) == {
            "agent-node.db": 0o600,
            "agent-node.db-wal": 0o600,
            "agent-node.db-shm": 0o600,
        }
    assert mode(database) == 0o600


async def test_an_existing_store_keeps_its_mode(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    database.touch(mode=0o640)
    database.chmod(0o640)  # touch's mode goes through the umask
    store = store_from_url(f"sqlite:///{database}")
    await store.open()
    try:
        assert await store.list_executions() == []
        assert modes(database) == {
            "shared.db": 0o640,
            "shared.db-wal": 0o640,
            "shared.db-shm": 0o640,
        }
    finally:
        await store.close()
