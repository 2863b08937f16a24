"""``agent-node inspect`` of an execution whose delegation is being retried
says why and when: its state, the attempt, the last error and the next try
(found by a walk: during a 45 s blackhole it said only "sending to b",
while the row held the error and the operator API showed it)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from support.delegation_rig import Rig, delegating, rig

from agent_node.cli.main import cli


@pytest.fixture
async def r(tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig(f"sqlite:///{tmp_path}/store.db") as made:
        yield made


def _inspect(store: str, execution_id: str) -> str:
    result = CliRunner().invoke(
        cli, ["inspect", execution_id, "--store", store], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    return result.output


async def test_inspect_says_the_last_error_the_attempt_and_the_next_try(
    r: Rig, tmp_path: Path
) -> None:
    def unreachable(body: dict[str, Any]) -> httpx.Response | None:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    r.peer.answer = unreachable
    execution_id = await r.start(delegating("hello"))
    await r.drive()  # the send fails: backed off
    row = await r.row(execution_id)
    assert row is not None and row.state == "sending" and row.last_error
    shown = await asyncio.to_thread(_inspect, f"sqlite:///{tmp_path}/store.db", execution_id)
    (line,) = [line for line in shown.splitlines() if line.startswith("delegation")]
    assert "node 'hand' to p: sending, attempt 1" in line
    assert "last error: peer 'p' unreachable" in line
    assert re.search(r"; next try (in \d+ s|now)$", line), line  # backed off ~1 s
