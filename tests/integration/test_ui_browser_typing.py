"""An answer being typed in the inbox survives the inbox's redraws, in a
real headless Chromium: a node serving A2A and its operator API on mutual
TLS (a real uvicorn, in this process, the greeter's ``book`` skill, which
asks when to travel) behind a real ``agent-node ui`` app. The inbox is
drawn again on every change a node tells (a task created anywhere); before,
each redraw replaced the answer box under the person typing in it: the
text was gone, the keys typed next went nowhere, and Answer (the box is
required) sent nothing."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, expect
from support.browser import chromium_browser
from support.certs import make_certs
from support.served import served
from support.tls import caller_context

from agent_node.config import NodeConfig, TlsSettings, load_config
from agent_node.node import AgentNode
from agent_node.node_parts import NodeParts
from agent_node.transport import uvicorn_config
from agent_node.ui.calls import Calls
from agent_node.ui.server import create_app
from agent_node.ui.targets import build_network

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
expect.set_options(timeout=10_000)

D = "spiffe://example.org/agent"
BOOK = Path(__file__).resolve().parents[2] / "examples/greeter/book.py"


def book_node(root: Path, certs: Path, port: int) -> NodeConfig:
    """Node n1: the ``book`` skill, mutual TLS, the UI its operator."""
    (root / "n1.yaml").write_text(
        f"name: n1\nlisten: {{host: 127.0.0.1, port: {port}}}\n"
        f"store: sqlite:///{root}/n1.db\n"
        f"skills:\n  - {{id: book, workflow: '{BOOK}:wf'}}\n"
        f"tls: {{cert: {certs}/n1.pem, key: {certs}/n1-key.pem, trust: [{certs}/ca.pem]}}\n"
        f"policy: {{operators: ['{D}/ui']}}\n"
    )
    return load_config(root / "n1.yaml")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[NodeParts, str, Path]]:
    """n1 serving, and its URL and the test's certificates."""
    certs = make_certs(tmp_path / "certs", "n1", "ui", "alice")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = book_node(tmp_path, certs, sock.getsockname()[1])
    parts = NodeParts.assemble(config, AgentNode(config).load_workflows(), secure=True)
    await parts.start()
    server = uvicorn.Server(uvicorn_config(parts.app, config.ssl_context(), config.limits))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        parts.health.serving()
        yield parts, f"https://127.0.0.1:{sock.getsockname()[1]}", certs
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await parts.close()


@pytest.fixture
async def ui(node: tuple[NodeParts, str, Path]) -> AsyncIterator[str]:
    _, url, certs = node
    tls = TlsSettings(
        cert=str(certs / "ui.pem"), key=str(certs / "ui-key.pem"), trust=[str(certs / "ca.pem")]
    )
    async with AsyncExitStack() as stack:
        calls = Calls(build_network([], [f"n1={url}"], tls))
        stack.push_async_callback(calls.aclose)
        app = create_app(calls)
        address = await stack.enter_async_context(served(app, None))
        app.port = int(address.rsplit(":", 1)[1])
        yield address


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium_browser() as launched:
        yield launched


async def book(url: str, certs: Path, place: str) -> str:
    """Alice asks n1 to book ``place``: the task's id (it asks when)."""
    message = {"messageId": f"m-{place}", "role": "ROLE_USER", "parts": [{"text": place}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    async with httpx.AsyncClient(verify=caller_context(certs, "alice"), timeout=10) as http:
        answer = (await http.post(f"{url}/a2a", json=body, headers={"A2A-Version": "1.0"})).json()
    task: dict[str, Any] = answer["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", task
    return str(task["id"])


async def test_an_answer_being_typed_stays_when_the_inbox_is_drawn_again(
    node: tuple[NodeParts, str, Path], ui: str, browser: Browser
) -> None:
    parts, url, certs = node
    lisbon = await book(url, certs, "Lisbon")
    page = await browser.new_page(viewport={"width": 1300, "height": 900})
    await page.goto(f"{ui}/#/inbox")
    await expect(page.locator("#stream-state")).to_have_text("live")
    item = page.locator(f'.item[data-id="{lisbon}"]')
    box = item.locator("input[name='answer']")
    await box.click()
    await page.keyboard.type("in ")

    # A task created on the node while the person types: the inbox is drawn
    # again (the new task's question shows).
    porto = await book(url, certs, "Porto")
    await expect(page.locator(f'.item[data-id="{porto}"]')).to_have_count(1)
    await expect(page.locator(".item")).to_have_count(2)
    # What was typed is still there, and the keys typed next go on into it.
    await page.keyboard.type("May")
    await expect(box).to_have_value("in May")
    assert await box.evaluate("(box) => box === document.activeElement")

    await item.locator("button[type='submit']").click()
    await expect(page.locator("#flash")).to_contain_text("answer sent to n1")
    await expect(item).to_have_count(0)
    await expect(page.locator(".item")).to_have_count(1)
    async with asyncio.timeout(10):
        while (done := await parts.runtime.store.get(lisbon)) is None or done.status != "completed":
            await asyncio.sleep(0.05)
    assert json.loads(done.state)["reply"] == "Booked Lisbon for in May."
