"""Stopping a node over mutual TLS: SIGTERM or Ctrl-C (SIGINT) never crashes it.

A real ``agent-node serve`` with real certificates. Whatever its clients
left open — a keep-alive connection idle past uvicorn's keep-alive timeout
(whose TLS close already waits on the client), one idle within it, a request
in flight — the node drains what is in flight, closes the rest, and exits 0
without a traceback, well within its graceful timeout.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.procs import Child, Spawn, child_env, wait_until
from support.certs import make_certs
from support.nodes import greeter_config
from support.tls import caller_context

from agent_node.transport import GRACEFUL_SHUTDOWN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

V10 = {"A2A-Version": "1.0"}
#: uvicorn's keep-alive timeout (s): a connection idle longer is closed by the server.
KEEP_ALIVE = 5
SIGNALS = [signal.SIGTERM, signal.SIGINT]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("shutdown") / "certs", "greeter", "alice")


async def _serve(tmp_path: Path, certs: Path, spawn: Spawn) -> tuple[Child, str]:
    config = greeter_config(tmp_path)
    args = [sys.executable, "-m", "agent_node.cli.main", "serve", "--config", str(config)]
    args += ["--cert-dir", str(certs), "--identity", "greeter"]
    node = spawn("node", args, child_env(tmp_path / "effects", 0.0))
    await wait_until(lambda: "listening on" in node.out(), "the node", timeout=30, alive=[node])
    url = next(w for w in node.out().split() if w.startswith("https://")).rstrip(".,;")
    return node, url


def _client(certs: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=caller_context(certs, "alice"), timeout=30)


async def _stopped(node: Child, signum: signal.Signals) -> float:
    """Signal the node; how long it took to exit. It must exit 0, no traceback."""
    began = time.monotonic()
    node.send(signum)
    code = await asyncio.to_thread(node.wait, 30)
    took = time.monotonic() - began
    assert code == 0, node.describe()
    assert "Traceback" not in node.err(), node.err()
    return took


async def _send(http: httpx.AsyncClient, url: str, name: str) -> dict[str, Any]:
    message = {"messageId": name, "role": "ROLE_USER", "parts": [{"data": {"name": name}}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    answer = (await http.post(f"{url}/a2a", json=body, headers=V10)).json()
    assert "result" in answer, answer
    task: dict[str, Any] = answer["result"]["task"]
    return task


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_a_connection_idle_past_the_keep_alive_timeout(
    signum: signal.Signals, tmp_path: Path, certs: Path, spawn: Spawn
) -> None:
    node, url = await _serve(tmp_path, certs, spawn)
    async with _client(certs) as stale, _client(certs) as fresh:
        assert (await stale.get(f"{url}/.well-known/agent-card.json")).status_code == 200
        await asyncio.sleep(KEEP_ALIVE + 1.5)  # the server closed it; the client never answered
        assert (await fresh.get(f"{url}/.well-known/agent-card.json")).status_code == 200
        took = await _stopped(node, signum)
    assert took < GRACEFUL_SHUTDOWN, f"stopping took {took:.1f} s"


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_requests_in_flight_are_answered_before_the_node_exits(
    signum: signal.Signals, tmp_path: Path, certs: Path, spawn: Spawn
) -> None:
    node, url = await _serve(tmp_path, certs, spawn)
    async with _client(certs) as idle, _client(certs) as busy:
        assert (await idle.get(f"{url}/.well-known/agent-card.json")).status_code == 200
        # The greeting parks on a 500 ms timer: these blocking sends are in flight.
        sends = [asyncio.create_task(_send(busy, url, f"Ada Lovelace {i}")) for i in range(3)]
        await asyncio.sleep(0.25)
        assert not any(send.done() for send in sends)
        stop = asyncio.create_task(_stopped(node, signum))
        tasks = await asyncio.gather(*sends)
        took = await stop
    for i, task in enumerate(tasks):
        assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
        assert f"Hello, Ada Lovelace {i}!" in str(task["artifacts"]), task
    assert took < GRACEFUL_SHUTDOWN, f"stopping took {took:.1f} s"
