"""The PostgreSQL store hears the other processes of its database again after
an outage: its LISTEN connection is opened again when lost, and its engines
are told to look for work then (what was notified meanwhile is lost). Found
by an operator's walk: the connection was opened once, and after a
PostgreSQL restart a process heard nothing of the others — no work, no
cancel — and lived on its safety polls. The outage is real to the store: it
reaches the database through a TCP front the test closes and opens again."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from support.front import Front

from agent_node.store import store_from_url
from agent_node.store.pg_write import CHANNEL


async def test_notifications_are_heard_again_after_an_outage(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, database = pg_url.rsplit("/", 1)
    front = Front([("127.0.0.1", int(server.rsplit(":", 1)[1]))])
    await front.start()
    store = store_from_url(f"{server.rsplit(':', 1)[0]}:{front.port}/{database}")
    await store.open()
    heard: list[tuple[str, str]] = []
    store.subscribe(lambda kind, execution_id: heard.append((kind, execution_id)))
    try:
        await notify(pg_url, "work:e1")
        await until(lambda: ("work", "e1") in heard, "a notice before the outage")
        await front.close()  # the database goes away: the listening connection is cut
        await asyncio.sleep(1.5)
        await front.start()
        # Back: told to look again at once, then hears the others as before.
        await until(lambda: ("work", "*") in heard, "a look again once back")
        await notify(pg_url, "work:e2")
        await until(lambda: ("work", "e2") in heard, "a notice after the outage")
    finally:
        await store.close()
        await front.close()
    assert "listening again" in caplog.text
    assert "Traceback" not in caplog.text


async def notify(url: str, payload: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    finally:
        await connection.close()


async def until(check: object, what: str, timeout: float = 15.0) -> None:
    assert callable(check)
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"waited {timeout} s for {what}")


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
