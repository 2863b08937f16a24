"""``agent-node prune`` deletes old finished executions and nothing else."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent_node.cli.main import cli
from agent_node.store import Txn, store_from_url
from agent_node.store.records import ExecutionRecord


async def _fill(url: str) -> None:
    store = store_from_url(url)
    await store.open()
    try:
        for execution_id, status, age in (
            ("ancient", "completed", 40 * 86400),
            ("failed-long-ago", "failed", 31 * 86400),
            ("yesterday", "completed", 86400),
            ("still-waiting", "waiting", 90 * 86400),
        ):
            at = time.time() - age
            record = ExecutionRecord(
                execution_id, "wf", "1", None, status, "{}", "", 0, None, None, None, at, at
            )
            await store.create(record, lambda txn: _started(txn))
    finally:
        await store.close()


def _started(txn: Txn) -> None:
    txn.event("execution_started", data='{"input":{}}')


async def _ids(url: str) -> set[str]:
    store = store_from_url(url)
    await store.open()
    try:
        return {r.id for r in await store.list_executions()}
    finally:
        await store.close()


def test_prune_older_than_a_month(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    asyncio.run(_fill(url))
    result = CliRunner().invoke(cli, ["prune", "--older-than", "30d", "--store", url])
    assert result.exit_code == 0, result.output
    assert "pruned 2 finished executions older than 30d" in result.output
    assert asyncio.run(_ids(url)) == {"yesterday", "still-waiting"}


@pytest.mark.parametrize("age", ["a while", "30", "0d", "-1d"])
def test_prune_refuses_an_age_it_cannot_read_and_one_without_its_unit(
    tmp_path: Path, age: str
) -> None:
    """A bare ``30`` was read as seconds, and deleted today's executions."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    asyncio.run(_fill(url))
    result = CliRunner().invoke(cli, ["prune", "--older-than", age, "--store", url])
    assert result.exit_code == 2, result.output
    assert "--older-than:" in result.output and "'30d'" in result.output
    assert len(asyncio.run(_ids(url))) == 4
