"""The UI's page in a real headless Chromium, over a node run in this
process (its operator API on mutual TLS, a real uvicorn): what an operator
sees through a day — steps as they run, a node that goes away, odd ids,
filters kept in the address, a long inbox, a narrow screen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from pydantic import BaseModel
from starlette.applications import Starlette
from support.browser import chromium_browser
from support.certs import make_certs
from support.served import served

from agent_node import Runtime, Workflow
from agent_node.a2a.server.ops import NodeAbout, ops_routes
from agent_node.config import PolicySettings, TlsSettings
from agent_node.security.authz import Policy
from agent_node.security.tls import server_context
from agent_node.ui.calls import Calls
from agent_node.ui.server import create_app
from agent_node.ui.targets import build_network
from agent_node.workflow.compiled import CompiledWorkflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
expect.set_options(timeout=10_000)

D = "spiffe://example.org/agent"
ODD = "walk/ü✈️ مرحبا 🧪 x"


class Note(BaseModel):
    n: int = 0


def slow() -> CompiledWorkflow:
    wf = Workflow("slow", version="1")
    wf.state(Note)

    @wf.step
    async def first(s: Note) -> dict[str, Any]:
        await asyncio.sleep(2)
        return {"n": 1}

    @wf.step
    async def second(s: Note) -> dict[str, Any]:
        await asyncio.sleep(4)
        return {"n": 2}

    wf.end("done")
    return wf.compile()


def holding() -> CompiledWorkflow:
    wf = Workflow("holding", version="1")
    wf.state(Note)
    wf.wait("hold", event="approved")
    wf.end("done")
    return wf.compile()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("uib") / "certs", "n1", "ui")


class Node:
    """Node n1: a runtime and its operator API, which the test may stop."""

    def __init__(self, runtime: Runtime, stack: AsyncExitStack) -> None:
        self.runtime = runtime
        self.stack = stack
        self.serving = True

    async def stop(self) -> None:
        self.serving = False  # its streams say bye, and the server may stop
        await self.stack.aclose()


@pytest.fixture
async def setup(certs: Path, tmp_path: Path) -> AsyncIterator[tuple[Node, str]]:
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(
            Runtime(f"sqlite:///{tmp_path}/n1.db", scope="all", poll_interval=0.05)
        )
        serving = AsyncExitStack()
        node = Node(runtime, serving)
        policy = Policy.of(PolicySettings(operators=[f"{D}/ui"]))
        about = NodeAbout("n1", serving=lambda: node.serving)
        app = Starlette(routes=ops_routes(runtime, policy, about))
        tls = server_context(
            certs / "n1.pem", certs / "n1-key.pem", [certs / "ca.pem"], require_client_cert=False
        )
        url = await serving.enter_async_context(served(app, tls))
        stack.push_async_callback(serving.aclose)
        tls_ui = TlsSettings(
            cert=str(certs / "ui.pem"), key=str(certs / "ui-key.pem"), trust=[str(certs / "ca.pem")]
        )
        calls = Calls(build_network([], [f"n1={url}"], tls_ui))
        stack.push_async_callback(calls.aclose)
        ui_app = create_app(calls)
        ui = await stack.enter_async_context(served(ui_app, None))
        ui_app.port = int(ui.rsplit(":", 1)[1])
        yield node, ui


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium_browser() as launched:
        yield launched


async def opened(browser: Browser, url: str, width: int = 1300) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": 900})
    await page.goto(url)
    await expect(page.locator("#stream-state")).to_have_text("live")
    return page


async def test_steps_show_as_they_run_and_a_node_that_goes_is_said(
    setup: tuple[Node, str], browser: Browser
) -> None:
    node, ui = setup
    page = await opened(browser, ui)
    # The page says "live" once the UI server streams to it; the UI server
    # follows the node's stream a moment later: one execution listed proves it.
    await node.runtime.start_execution(holding(), {}, execution_id="warm-1")
    await expect(page.locator('tr.row[data-id="warm-1"]')).to_have_count(1, timeout=10_000)
    running = asyncio.create_task(node.runtime.run(slow(), {}, execution_id="slow-1"))
    # Created and running: listed at once, not once it ends (6 s later).
    row = page.locator('tr.row[data-id="slow-1"]')
    await expect(row.locator(".status")).to_have_text("running", timeout=2_000)
    await row.click()
    facts = page.locator("#execution .facts")
    await expect(facts).to_contain_text("first#1 running", timeout=2_000)
    # Focus moves to the view's heading (a keyboard user starts there).
    assert await page.evaluate("document.activeElement.tagName") == "H2"
    # The first step ends 2 s in: the open view shows the second running.
    await expect(facts).to_contain_text("second#1 running", timeout=3_000)
    await running

    parked = await node.runtime.start_execution(holding(), {}, execution_id="held-1")
    await page.goto(f"{ui}/#/x/n1/{parked}")
    await expect(page.locator("#execution .head .status")).to_have_text("waiting")
    cancel = page.locator("#execution .actions button.danger")
    await expect(cancel).to_be_enabled()
    await node.stop()
    banner = page.locator("#execution-reach")
    await expect(banner).to_contain_text("node n1 is unreachable since")
    await expect(banner).to_contain_text("last known state")
    await expect(cancel).to_be_disabled()
    await expect(page.locator("#stream-state")).to_contain_text("n1 (unreachable)")
    # What was last known stays on screen.
    await expect(page.locator("#execution .head .status")).to_have_text("waiting")


async def test_odd_ids_open_filters_stay_in_the_address_and_the_inbox_counts_all(
    setup: tuple[Node, str], browser: Browser
) -> None:
    node, ui = setup
    runtime = node.runtime
    await runtime.start_execution(holding(), {}, execution_id=ODD)
    for n in range(60):
        await runtime.start_execution(holding(), {}, execution_id=f"held-{n:02}")
    await runtime.signal(ODD, "approved")
    page = await opened(browser, ui)
    # How many there are, besides how many are shown.
    await expect(page.locator("#list-notes")).to_have_text("61 executions · 50 shown")
    # An id holding "/" (and more) opens.
    await page.goto(f"{ui}/#/x/n1/{quote(ODD, safe='')}")
    await expect(page.locator("#execution .head .id")).to_have_text(ODD)
    await expect(page.locator("#execution .head .status")).to_have_text("completed")
    async with httpx.AsyncClient(base_url=ui) as http:
        missing = await http.get("/api/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"]

    # Filters live in the address: a reload keeps them.
    await page.goto(f"{ui}/#/")
    await page.locator("#filters select[name='status']").select_option("completed")
    await page.locator("#filters button[type='submit']").click()
    await expect(page).to_have_url(f"{ui}/#/?status=completed")
    await expect(page.locator("tr.row")).to_have_count(1)
    await expect(page.locator("#list-notes")).to_have_text("1 execution")
    await page.reload()
    await expect(page.locator("#filters select[name='status']")).to_have_value("completed")
    await expect(page.locator("tr.row")).to_have_count(1)
    await page.go_back()
    await expect(page.locator("tr.row")).to_have_count(50)

    # Sixty wait on a person: the badge says sixty, on the inbox's first page of fifty too.
    await page.goto(f"{ui}/#/inbox")
    await expect(page.locator(".item")).to_have_count(50)
    await expect(page.locator("#inbox-count")).to_have_text("60")
    cancel = page.locator(".item button.danger").first
    assert (await cancel.get_attribute("aria-label") or "").startswith("Cancel task")
    await expect(page.locator("#inbox-items textarea").first).to_have_attribute(
        "aria-label", "data of the event approved, as JSON (optional)"
    )

    # At 375 px the page does not scroll sideways (the table scrolls in its box).
    narrow = await opened(browser, ui, width=375)
    await expect(narrow.locator("tr.row")).to_have_count(50)
    wide = await narrow.evaluate("document.documentElement.scrollWidth")
    assert wide <= 375, wide


async def test_a_page_without_its_token_says_what_to_do(certs: Path, browser: Browser) -> None:
    tls = TlsSettings(
        cert=str(certs / "ui.pem"), key=str(certs / "ui-key.pem"), trust=[str(certs / "ca.pem")]
    )
    calls = Calls(build_network([], ["n1=https://127.0.0.1:9"], tls))
    app = create_app(calls, token="t" * 32)
    async with served(app, None) as ui:
        app.port = int(ui.rsplit(":", 1)[1])
        page = await browser.new_page()
        answer = await page.goto(ui)
        assert answer is not None and answer.status == 401
        await expect(page.locator("p")).to_contain_text("open the address 'agent-node ui' printed")
    await calls.aclose()


async def test_a_list_asked_for_before_another_never_replaces_it(
    setup: tuple[Node, str], browser: Browser
) -> None:
    """Back from a filtered list while its answer is still on the way: the
    list the address now asks for stays, whenever the earlier one comes."""
    node, ui = setup
    for n in range(3):
        await node.runtime.start_execution(holding(), {}, execution_id=f"held-{n}")
    page = await opened(browser, ui)
    await expect(page.locator("tr.row")).to_have_count(3)
    held = asyncio.Event()
    asked: list[Any] = []

    async def hold(route: Any) -> None:
        asked.append(route)
        await held.wait()
        await route.continue_()

    await page.route("**/api/executions?status=waiting*", hold)
    async with page.expect_response("**/api/executions?status=waiting*") as late:
        await page.goto(f"{ui}/#/?status=waiting")
        async with asyncio.timeout(10):
            while not asked:
                await asyncio.sleep(0.02)
        await node.runtime.signal("held-0", "approved")
        await page.go_back()
        await expect(page.locator("tr.row")).to_have_count(3)
        await expect(page.locator('tr.row[data-id="held-0"] .status')).to_have_text("completed")
        held.set()
    await (await late.value).finished()
    # The page has run what the late answer's arrival set off.
    await page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r)))")
    await expect(page.locator("tr.row")).to_have_count(3)
    await expect(page.locator("#filters select[name='status']")).to_have_value("")
