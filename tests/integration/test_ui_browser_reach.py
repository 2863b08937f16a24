"""A node the UI server cannot reach, as the page's node card shows it, in
a real headless Chromium: the node (its operator API on mutual TLS, a real
uvicorn) is behind a TCP front that can stall — it then forwards nothing
either way and holds new connections unanswered, as a node that hangs or
a network that drops packets does. Nothing ends the UI server's stream of
the node: only its silence tells."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from starlette.applications import Starlette
from starlette.routing import Route
from support.browser import chromium_browser
from support.certs import make_certs
from support.served import served

from agent_node import Runtime
from agent_node.a2a.server.ops import NodeAbout, ops_routes
from agent_node.config import PolicySettings, TlsSettings
from agent_node.security.authz import Policy
from agent_node.security.tls import server_context
from agent_node.telemetry.health import Health
from agent_node.ui.calls import Calls
from agent_node.ui.relay import Watch
from agent_node.ui.server import create_app
from agent_node.ui.targets import build_network

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
expect.set_options(timeout=10_000)

D = "spiffe://example.org/agent"


class Stall:
    """A TCP front to one backend that can stall: stalled, it forwards
    nothing (what it read waits) and connects no new connection onward;
    resumed, it forwards again what it held."""

    def __init__(self, backend: int) -> None:
        self.backend = backend
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.flowing.wait()
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("uir") / "certs", "n1", "ui")


@pytest.fixture
async def stalled(certs: Path, tmp_path: Path) -> AsyncIterator[tuple[Stall, str]]:
    """The stall in front of node n1, and the UI's address (the UI finds a
    stream silent for half a second, and a node silent as long, hung)."""
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(
            Runtime(f"sqlite:///{tmp_path}/n1.db", scope="all", poll_interval=0.05)
        )
        policy = Policy.of(PolicySettings(operators=[f"{D}/ui"]))
        health = Health(runtime.store, runtime.engine)
        health.serving()
        routes = [*ops_routes(runtime, policy, NodeAbout("n1")), Route("/readyz", health)]
        app = Starlette(routes=routes)
        tls = server_context(
            certs / "n1.pem", certs / "n1-key.pem", [certs / "ca.pem"], require_client_cert=False
        )
        node = await stack.enter_async_context(served(app, tls))
        front = Stall(int(node.rsplit(":", 1)[1]))
        await front.start()
        stack.push_async_callback(front.close)
        stack.callback(front.flowing.set)  # nothing held while the rest closes
        tls_ui = TlsSettings(
            cert=str(certs / "ui.pem"), key=str(certs / "ui-key.pem"), trust=[str(certs / "ca.pem")]
        )
        calls = Calls(build_network([], [f"n1=https://127.0.0.1:{front.port}"], tls_ui))
        stack.push_async_callback(calls.aclose)
        ui_app = create_app(calls, watch=Watch(quiet=0.5, answer=0.5))
        ui = await stack.enter_async_context(served(ui_app, None))
        ui_app.port = int(ui.rsplit(":", 1)[1])
        yield front, ui


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium_browser() as launched:
        yield launched


async def test_a_node_that_hangs_is_shown_unreachable_since_then_and_again_when_it_answers(
    stalled: tuple[Stall, str], browser: Browser
) -> None:
    front, ui = stalled
    page = await browser.new_page(viewport={"width": 1300, "height": 900})
    looks: list[int] = []  # the page's answers of /api/nodes
    page.on("response", lambda r: looks.append(r.status) if "/api/nodes" in r.url else None)
    await page.goto(ui)
    await expect(page.locator("#stream-state")).to_have_text("live")
    card = page.locator('.node-card[data-node="n1"]')
    await expect(card.locator(".status")).to_have_text("ready")
    # The page looks at the nodes as it starts and once the node's stream is
    # up: both are done before the node hangs, so only its silence can tell.
    async with asyncio.timeout(10):
        while len(looks) < 2:
            await asyncio.sleep(0.02)

    front.flowing.clear()
    await expect(card.locator(".status")).to_have_text("unreachable")
    await expect(card).to_have_class("card node-card down")
    await expect(card.locator(".reach")).to_contain_text("unreachable since ")
    await expect(card.locator(".reach")).to_contain_text("silent")
    await expect(card.locator(".load")).to_have_count(0)  # its load is not known now
    await expect(page.locator("#stream-state")).to_contain_text("n1 (unreachable)")

    front.flowing.set()
    await expect(card.locator(".status")).to_have_text("ready")
    await expect(card).to_have_class("card node-card")
    await expect(card.locator(".reach")).to_have_count(0)
    await expect(page.locator("#stream-state")).to_have_text("live")
