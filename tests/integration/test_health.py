"""Readiness follows the node's phase, its engine and its store (real stores)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from agent_node.runtime import Runtime
from agent_node.telemetry.health import CHECK_TTL, Health


async def probe(health: Health, path: str, method: str = "GET") -> tuple[int, bytes]:
    transport = httpx.ASGITransport(app=health)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        answer = await client.request(method, path)
    return answer.status_code, answer.content


async def test_ready_only_while_serving_with_a_running_engine_and_a_store(tmp_path: Path) -> None:
    runtime = Runtime(f"sqlite:///{tmp_path / 'h.db'}")
    health = Health(runtime.store, runtime.engine)
    assert await probe(health, "/readyz") == (503, b'{"status": "starting"}')
    assert await probe(health, "/healthz") == (200, b'{"status": "ok"}')
    await runtime.start()
    assert await health.readiness() == "starting"  # until the node says it serves
    health.serving()
    assert await probe(health, "/readyz") == (200, b'{"status": "ready"}')
    assert await probe(health, "/readyz", "HEAD") == (200, b"")
    await runtime.engine.stop()  # an engine that stopped takes no work
    assert await health.readiness() == "unavailable"
    await runtime.close()


async def test_a_store_that_fails_makes_the_node_unready(tmp_path: Path) -> None:
    runtime = Runtime(f"sqlite:///{tmp_path / 'h.db'}")
    await runtime.start()
    health = Health(runtime.store, runtime.engine)
    health.serving()
    assert await health.readiness() == "ready"
    await runtime.store.close()  # every read fails now
    await asyncio.sleep(CHECK_TTL)  # the last check is not reused after that
    assert await probe(health, "/readyz") == (503, b'{"status": "unavailable"}')
    health.draining()
    assert await probe(health, "/readyz") == (503, b'{"status": "draining"}')
    assert await probe(health, "/healthz") == (200, b'{"status": "ok"}')
    await runtime.engine.stop()
