"""The identity the operator API names a node's store by
(agent_node/a2a/server/ops_store.py, agent_node/store/store_id.py): a
random id kept in the store, the same for every process that opens it, and
nothing that can be worked out from the store's URL (a hostile peer named
the digest of the host name and the file's path, and the UI took it for
the node's replica)."""

from __future__ import annotations

import re
import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import pytest
from integration.test_ops_views import get, ops_node
from support.certs import make_certs

from agent_node import Runtime

READ = "SELECT value FROM schema_info WHERE key = 'store_id'"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("store-id") / "certs", "node", "ops")


async def kept(url: str) -> list[str]:
    """The ``store_id`` rows of the store at ``url``, read past the store."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [str(value) for (value,) in conn.execute(READ)]
    conn = await asyncpg.connect(url)
    try:
        return [str(row[0]) for row in await conn.fetch(READ)]
    finally:
        await conn.close()


async def named(url: str, certs: Path, processes: int = 1) -> list[str]:
    """The store that ``processes`` nodes on ``url`` name on ``/ops/node``."""
    async with AsyncExitStack() as stack:
        stores = []
        for _ in range(processes):
            runtime = await stack.enter_async_context(Runtime(url, scope="all"))
            node = await stack.enter_async_context(ops_node(runtime, certs))
            stores.append((await get(f"{node}/ops/node", certs))["store"])
    return stores


async def test_every_process_of_a_store_names_the_random_id_kept_in_it(
    durable_url: str, certs: Path
) -> None:
    stores = await named(durable_url, certs, processes=2)
    kind = "sqlite" if durable_url.startswith("sqlite") else "postgresql"
    found = re.fullmatch(rf"{kind}:([0-9a-f]{{32}})", stores[0])
    assert found is not None, stores
    assert stores == [stores[0], stores[0]]
    assert await kept(durable_url) == [found[1]]


async def test_a_new_store_at_the_same_path_is_another(tmp_path: Path, certs: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    first = await named(url, certs)
    for made in tmp_path.glob("store.db*"):
        made.unlink()
    assert await named(url, certs) != first
