"""An older store is not upgraded under processes that have it open and
would break: opening it (a node, a worker, a read-only command) refuses,
naming them and how to go on, unless forced (``agent-node upgrade
--force``). Processes of this release do not count: they would upgrade it
themselves. Real processes hold the SQLite file; real sessions, PostgreSQL's."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from agent_node.cli.main import cli
from agent_node.errors import StoreInUse
from agent_node.store import store_from_url
from agent_node.store.files import MissingStore
from agent_node.store.schema import SCHEMA_VERSION

OLDER = SCHEMA_VERSION - 1
#: A process holding the file as an older agent-node would: a connection
#: (WAL mode) and, given a version, the mark of a release that watches its
#: schema (the byte of that version in ``<db>.attached``, read-locked).
HOLDER = """
import fcntl, os, sqlite3, sys
path = sys.argv[1]
conn = sqlite3.connect(path)
conn.execute("SELECT count(*) FROM schema_info").fetchall()
if len(sys.argv) > 2:
    fd = os.open(path + ".attached", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.lockf(fd, fcntl.LOCK_SH, 1, int(sys.argv[2]))
print("holding", flush=True)
sys.stdin.read()
"""
#: A process of this release with the store open.
CURRENT = """
import asyncio, sys
from agent_node.store import store_from_url
from agent_node.store.files import MissingStore

async def main():
    store = store_from_url(sys.argv[1])
    await store.open()
    print("holding", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await store.close()

asyncio.run(main())
"""


@pytest.fixture
def older_file(tmp_path: Path) -> Iterator[Path]:
    """A SQLite store whose schema says one version older."""
    path = tmp_path / "store.db"
    asyncio.run(_make(f"sqlite:///{path}"))
    set_version(path, OLDER)
    yield path


async def _make(url: str) -> None:
    store = store_from_url(url)
    await store.open()
    await store.close()


def set_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE schema_info SET value = ?", (str(version),))
        conn.commit()
    finally:
        conn.close()


def version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT value FROM schema_info").fetchone()[0])
    finally:
        conn.close()


def hold(script: str, *args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "holding\n"
    return child


def let_go(child: subprocess.Popen[str]) -> None:
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()
    child.wait(10)


async def test_an_older_sqlite_store_is_not_upgraded_under_an_older_agent_node(
    older_file: Path,
) -> None:
    url = f"sqlite:///{older_file}"
    child = hold(HOLDER, str(older_file))
    try:
        with pytest.raises(StoreInUse) as refused:
            await store_from_url(url).open()
        said = str(refused.value)
        assert f"process {child.pid} (" in said and "does not watch its store's schema" in said
        assert f"agent-node upgrade --store {url} --force" in said
        assert version_of(older_file) == OLDER  # left as it was
        forced = store_from_url(url, force_upgrade=True)
        await forced.open()
        await forced.close()
        assert version_of(older_file) == SCHEMA_VERSION
    finally:
        let_go(child)


async def test_one_that_watches_its_schema_is_named_so(older_file: Path) -> None:
    child = hold(HOLDER, str(older_file), str(OLDER))
    try:
        with pytest.raises(StoreInUse, match=f"schema {OLDER}\\): stops by itself"):
            await store_from_url(f"sqlite:///{older_file}").open()
    finally:
        let_go(child)


async def test_a_process_of_this_release_does_not_keep_it_from_upgrading(
    older_file: Path,
) -> None:
    """Two processes of the new release started at once on an older file:
    neither may refuse for the other (they would both, forever)."""
    set_version(older_file, SCHEMA_VERSION)
    child = hold(CURRENT, f"sqlite:///{older_file}")
    try:
        set_version(older_file, OLDER)
        store = store_from_url(f"sqlite:///{older_file}")
        await store.open()
        await store.close()
        assert version_of(older_file) == SCHEMA_VERSION
    finally:
        let_go(child)


def test_a_read_only_command_refuses_too_and_says_how_to_go_on(older_file: Path) -> None:
    url = f"sqlite:///{older_file}"
    child = hold(HOLDER, str(older_file))
    try:
        listed = CliRunner().invoke(cli, ["executions", "--store", url])
        assert listed.exit_code == 1, listed.output
        assert "other processes have it open" in listed.output
        assert version_of(older_file) == OLDER
        refused = CliRunner().invoke(cli, ["upgrade", "--store", url])
        assert refused.exit_code == 1 and f"process {child.pid}" in refused.output
        upgraded = CliRunner().invoke(cli, ["upgrade", "--store", url, "--force"])
        assert upgraded.exit_code == 0, upgraded.output
        assert f"has schema {SCHEMA_VERSION}" in upgraded.output
        assert version_of(older_file) == SCHEMA_VERSION
    finally:
        let_go(child)


async def test_postgresql_names_the_older_sessions_on_its_database(pg_url: str) -> None:
    await _make(pg_url)
    admin = await asyncpg.connect(pg_url)
    # An agent-node before this release: no name, but its LISTEN; one that
    # watches its schema, of the older version; and one of this release.
    older = await asyncpg.connect(pg_url)
    await older.add_listener("agent_node", lambda *_: None)
    named = {"application_name": f"agent-node/{OLDER} 4242@elsewhere"}
    watching = await asyncpg.connect(pg_url, server_settings=named)
    current = {"application_name": f"agent-node/{SCHEMA_VERSION} 4343@elsewhere"}
    same = await asyncpg.connect(pg_url, server_settings=current)
    try:
        await admin.execute("UPDATE schema_info SET value = $1", str(OLDER))
        with pytest.raises(StoreInUse) as refused:
            await store_from_url(pg_url).open()
        said = str(refused.value)
        assert re.search(r"a session LISTENing for agent-node \(from [^)]+\): an agent-node", said)
        assert f"agent-node/{OLDER} 4242@elsewhere (from " in said
        assert "stops by itself once the store is upgraded" in said and "4343" not in said
        assert await admin.fetchval("SELECT value FROM schema_info") == str(OLDER)
        forced = store_from_url(pg_url, force_upgrade=True)
        await forced.open()
        await forced.close()
        assert await admin.fetchval("SELECT value FROM schema_info") == str(SCHEMA_VERSION)
    finally:
        for conn in (older, watching, same, admin):
            await conn.close()


async def test_postgresql_connections_carry_the_name_of_this_process(pg_url: str) -> None:
    store = store_from_url(pg_url)
    await store.open()
    admin = await asyncpg.connect(pg_url)
    try:
        names = await admin.fetch(
            "SELECT DISTINCT application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (name,) = [r[0] for r in names]
        assert name.startswith(f"agent-node/{SCHEMA_VERSION} {os.getpid()}@")
    finally:
        await admin.close()
        await store.close()


async def test_the_side_file_is_not_offered_for_a_missing_store(tmp_path: Path) -> None:
    """The mark is left beside the file (``<db>.attached``); a store gone is not it."""
    await _make(f"sqlite:///{tmp_path}/store.db")
    (tmp_path / "store.db").unlink()
    with pytest.raises(MissingStore) as missing:
        await store_from_url(f"sqlite:///{tmp_path}/store.db", create=False).open()
    assert (tmp_path / "store.db.attached").exists() and "did you mean" not in str(missing.value)
