"""Chaos: A → B → C over mutual TLS with ~20 tasks in flight while a random
node is SIGKILLed every 2-5 s and started again (see ``e2e/chaos.py``).
Every task must complete with the chain's output for its input, and every
node must hold exactly one task per task sent: 0 failed, 0 lost, 0
duplicated. The result table is printed (``-s``); ``bench/chaos`` runs the
same scenario for longer.

``AGENT_NODE_CHAOS_SECONDS`` (60) and ``AGENT_NODE_CHAOS_SEED`` change the
run; the time allowed to finish after the last kill is generous, as CI
machines are shared (the measured time is in the table).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e.chaos import ChaosConfig, ChaosResult, run_chaos

SECONDS = float(os.environ.get("AGENT_NODE_CHAOS_SECONDS", "60"))
SEED = int(os.environ.get("AGENT_NODE_CHAOS_SEED", "12"))
FINISH = 300.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + FINISH + 180)]


def _check(result: ChaosResult) -> None:
    print("\n" + result.table())
    problems = "\n".join(result.problems[:20])
    assert result.tasks >= 20, f"too few tasks ran:\n{result.table()}"
    assert sum(result.kills.values()) >= SECONDS / 5 - 1, "too few kills"
    assert (result.failed, result.wrong, result.lost, result.duplicated) == (0, 0, 0, 0), problems
    assert not result.crashes, problems
    assert result.completed == result.tasks
    assert result.held == {"a": result.tasks, "b": result.tasks, "c": result.tasks}


async def test_chaos_on_sqlite(tmp_path: Path) -> None:
    config = ChaosConfig(store="sqlite", duration=SECONDS, seed=SEED, finish_timeout=FINISH)
    _check(await run_chaos(config, tmp_path))


@pytest.mark.postgres
async def test_chaos_with_two_replicas_of_a_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    config = ChaosConfig(
        store="postgres",
        replicas=2,
        pg_url=pg_url,
        duration=SECONDS,
        seed=SEED,
        finish_timeout=FINISH,
    )
    _check(await run_chaos(config, tmp_path))
