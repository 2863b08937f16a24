"""A full disk, for real: the store's files on a tiny tmpfs (or, for
PostgreSQL, a tablespace on one), filled up. The CLI says in one line that
the store could not write, a JSON-RPC caller gets an internal error saying
so, the node's log has no traceback, and nothing hangs. Mounting needs root:
without it these tests skip, saying so."""

from __future__ import annotations

import asyncio
import errno
import os
import pwd
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from support.nodes import ROOT, _served, greeter_config

from agent_node import Runtime, Workflow
from agent_node.errors import StoreFull

CLI = [sys.executable, "-m", "agent_node.cli.main"]
HELLO = str(ROOT / "examples/hello/workflow.yaml")
FULL = "the store could not write, its disk is full"


def _mount(folder: Path, size: str, *options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    flags = ",".join([f"size={size}", *options])
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", flags, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("a full disk is simulated with a tmpfs mount: no mount command here")
    if mounted.returncode != 0:
        pytest.skip(f"a full disk is simulated with a tmpfs mount (needs root): {mounted.stderr}")


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem of its own."""
    folder = tmp_path / "disk"
    _mount(folder, "1m")
    yield folder
    _unmount(folder)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return filler


def agent_node(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def assert_one_line(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {FULL}: SQLite "), result.stderr
    assert "Traceback" not in result.stderr


# -- SQLite, through the CLI ---------------------------------------------------------------


def test_run_on_a_full_disk_says_the_store_could_not_write(disk: Path, tmp_path: Path) -> None:
    fill(disk)
    result = agent_node(
        "run",
        HELLO,
        "--input",
        '{"name": "Ada"}',
        "--store",
        f"sqlite:///{disk}/s.db",
        cwd=tmp_path,
    )
    assert_one_line(result)
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_after_the_disk_filled_says_so_and_works_once_space_is_freed(
    disk: Path, tmp_path: Path
) -> None:
    store = f"sqlite:///{disk}/s.db"
    first = agent_node("run", HELLO, "--input", '{"name": "Ada"}', "--store", store, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    filler = fill(disk)
    for command in (["run", HELLO, "--input", '{"name": "Bo"}'], ["executions"]):
        result = agent_node(*command, "--store", store, cwd=tmp_path)
        assert_one_line(result)
        assert len(result.stderr.strip().splitlines()) == 1
    filler.unlink()
    again = agent_node("run", HELLO, "--input", '{"name": "Cy"}', "--store", store, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    listed = agent_node("executions", "--status", "completed", "--store", store, cwd=tmp_path)
    assert len([row for row in listed.stdout.splitlines() if row.startswith("│ ")]) == 2


class Blob(BaseModel):
    blob: str = ""


def filling_workflow(disk: Path) -> Workflow:
    """One step that fills the disk the first time it runs, then returns a
    state too large for what is left: its commit finds the disk full."""
    wf = Workflow("filling", version="1")
    wf.state(Blob)

    @wf.step
    async def grow(state: Blob) -> dict[str, Any]:
        if not (disk / "filled-once").exists():
            (disk / "filled-once").touch()
            fill(disk)
        return {"blob": "x" * 200_000}

    wf.end("done")
    return wf


async def test_a_run_whose_commit_finds_the_disk_full_is_told_at_once(disk: Path) -> None:
    store, compiled = f"sqlite:///{disk}/s.db", filling_workflow(disk).compile()
    async with Runtime(store) as runtime:
        with pytest.raises(StoreFull, match=FULL):
            await asyncio.wait_for(runtime.run(compiled, {}, execution_id="f1"), 30)
    (disk / "filler").unlink()
    async with Runtime(store) as runtime:
        done = await asyncio.wait_for(runtime.run(compiled, execution_id="f1"), 30)
    assert done.status == "completed"
    assert len(done.state.blob) == 200_000  # type: ignore[attr-defined]


# -- SQLite, through JSON-RPC ------------------------------------------------------------


def send(url: str, index: int) -> dict[str, Any]:
    message = {"messageId": f"m{index}", "role": "ROLE_USER", "parts": [{"data": {"name": "A"}}]}
    body = {"jsonrpc": "2.0", "id": index, "method": "SendMessage", "params": {"message": message}}
    answer = httpx.post(f"{url}/a2a", json=body, headers={"A2A-Version": "1.0"}, timeout=30)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def test_a_send_to_a_node_whose_disk_is_full_is_an_internal_error_saying_so(
    disk: Path, tmp_path: Path
) -> None:
    config = greeter_config(tmp_path)  # the node's log, node.err, stays off the full disk
    text = config.read_text().replace(f"sqlite:///{tmp_path}/", f"sqlite:///{disk}/")
    config.write_text(text)
    with _served(tmp_path, config, ["--insecure-dev"]) as url:
        assert send(url, 1)["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        filler = fill(disk)
        # A send whose writes fit in the space SQLite's write-ahead log already
        # holds (it starts over after a checkpoint) needs no new block, and
        # succeeds: the first that does fails, and every one after it.
        first = next((index for index in range(2, 12) if "error" in send(url, index)), None)
        assert first is not None, "ten sends on a full disk all succeeded"
        for index in (first + 1, first + 2):
            error = send(url, index)["error"]
            assert error["code"] == -32603
            assert error["message"] == f"internal error: {FULL}"
        filler.unlink()
        assert send(url, 20)["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        log = (tmp_path / "node.err").read_text()
    assert "Traceback" not in log
    assert log.count(f"A2A JSON-RPC request (id {first}) failed: {FULL}: SQLite") == 1, log


# -- PostgreSQL: a database whose tables live on a full tablespace -------------------------------


@pytest.fixture
def pg_on_a_tiny_disk(pg_url: str) -> Iterator[tuple[str, Path]]:
    """``pg_url`` with its tables in a tablespace on a 2 MiB tmpfs (the server
    must run here, as the ``postgres`` user)."""
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("needs a local PostgreSQL server running as the postgres user")
    folder = Path(tempfile.mkdtemp(prefix="agent-node-pg-"))  # outside the test's private tmp
    _mount(folder, "2m", f"uid={owner.pw_uid}", f"gid={owner.pw_gid}", "mode=700")
    space = f"agent_node_t_{uuid.uuid4().hex[:12]}"
    name = pg_url.rsplit("/", 1)[1]
    try:
        try:
            asyncio.run(_pg(pg_url, f"CREATE TABLESPACE {space} LOCATION '{folder}'"))
        except Exception as exc:  # a remote server, or not a superuser
            pytest.skip(f"cannot put a tablespace on a local tmpfs: {exc}")
        asyncio.run(_pg(pg_url, f'ALTER DATABASE "{name}" SET default_tablespace = {space}'))
        yield pg_url, folder
    finally:
        admin = pg_url.rsplit("/", 1)[0] + "/postgres"
        asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_pg(admin, f"DROP TABLESPACE IF EXISTS {space}"))
        _unmount(folder)
        folder.rmdir()


async def _pg(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_postgres_out_of_disk_is_store_full(pg_on_a_tiny_disk: tuple[str, Path]) -> None:
    url, folder = pg_on_a_tiny_disk
    wf = Workflow("big", version="1")
    wf.state(Blob)

    @wf.step
    async def grow(state: Blob) -> dict[str, Any]:
        return {"blob": os.urandom(150_000).hex()}  # incompressible: TOAST pages on disk

    wf.end("done")
    compiled = wf.compile()
    async with Runtime(url) as runtime:
        with pytest.raises(StoreFull, match=f"{FULL}: PostgreSQL .*could not extend file"):
            for index in range(100):
                await asyncio.wait_for(runtime.run(compiled, {}, execution_id=f"p{index}"), 30)
    assert os.statvfs(folder).f_bavail < 64
