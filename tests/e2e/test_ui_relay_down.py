"""The inbox of ``agent-node ui`` when the node in the middle of a chain
is down, in a real headless Chromium over three real nodes on mutual TLS
(A → B → C; C asks, B relays the question up to A). B is killed before
the UI starts, and the UI knows the nodes by their URLs alone: it never
saw B's certificate, so only A can tell it who B is (the identity B's
certificate named to A) and where A's question came from."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e.procs import CLI, Spawn, child_env, wait_until
from e2e.test_delegation import BOOK, Net, finished, send_text
from e2e.test_ui import OPERATORS
from playwright.async_api import Browser, expect
from support.browser import chromium_browser
from support.certs import make_certs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
expect.set_options(timeout=15_000)


@pytest.fixture
def net(tmp_path: Path, spawn: Spawn) -> Net:
    return Net(tmp_path, make_certs(tmp_path / "certs", "a", "b", "c", "alice", "ui"), spawn)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium_browser() as launched:
        yield launched


async def test_a_question_whose_relaying_node_is_down_is_answered_only_where_it_can_be(
    net: Net, spawn: Spawn, browser: Browser
) -> None:
    net.configure("c", {"book": Path(f"{BOOK}:wf")}, [], OPERATORS)
    relay_b = net.relay("b", "c", "book", as_text=True, keep="text")
    net.configure("b", {"relay": relay_b}, ["c"], OPERATORS)
    net.configure("a", {"relay": net.relay("a", "b", "relay", as_text=True)}, ["b"], OPERATORS)
    children = {name: await net.start(name) for name in ("c", "b", "a")}
    task = await send_text(net, "a", {"parts": [{"text": "Lisbon"}]})
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    children["b"].send(signal.SIGKILL)
    children["b"].wait(10)

    peers = [f"--peer={name}={net.url(name)}" for name in ("a", "b", "c")]
    args = [*CLI, "ui", *peers, "--cert-dir", str(net.certs), "--identity", "ui", "--port", "0"]
    ui = spawn("ui", args, child_env(net.root / "effects", 0.0))
    await wait_until(lambda: "agent-node ui: http://" in ui.out(), "the UI", timeout=30, alive=[ui])
    found = re.search(r"agent-node ui: (http://127\.0\.0\.1:\d+/)(\?token=[\w-]+)", ui.out())
    assert found, ui.describe()
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.goto(found.group(1) + found.group(2))
    await expect(page.locator('.node-card[data-node="b"] .status')).to_have_text("unreachable")
    await page.click("a[data-view='inbox']")

    # C's question once, at A, where its answer goes the way B would take it.
    items = page.locator(".item")
    await expect(items).to_have_count(1)
    await expect(items).to_have_attribute("data-node", "a")
    await expect(items.locator(".relayed")).to_have_text("asked by c, relayed by b to a")
    await expect(page.locator("#inbox-items form.answer")).to_have_count(1)
    await expect(page.locator("#inbox-count")).to_have_text("1")
    await items.locator("input[name='answer']").fill("in May")
    await items.locator("button[type='submit']").click()
    await expect(page.locator("#flash")).to_contain_text("answer sent to a")

    # A took the answer, to pass it down once B is back; C still asks B,
    # and the page says why it is not answered here — after a reload too.
    for _ in range(2):
        await expect(items).to_have_count(1)
        await expect(items).to_have_attribute("data-node", "c")
        why = items.locator(".why")
        await expect(why).to_contain_text("not answerable from here: its caller b")
        await expect(why).to_contain_text("is unreachable since ")
        await expect(page.locator("#inbox-items form.answer")).to_have_count(0)
        await page.reload()

    # B back: A's answer goes down to C, and everything ends.
    children["b"] = await net.start("b")
    await expect(items).to_have_count(0, timeout=30_000)
    await wait_until(lambda: finished(net.store("a"), task["id"]), "A's task", timeout=30)
    ui.reap()
