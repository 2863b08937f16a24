"""``agent-node ui`` in a real headless Chromium (issue 17), over a network of
three real nodes on mutual TLS: a task goes A → B → C, and C asks when to
travel (INPUT_REQUIRED, relayed up to A). The page, served by a real
``agent-node ui`` process acting as the operator ``ui`` toward the three
nodes, lists the agents, opens the task, shows its delegations across the
three nodes, answers the question from the inbox and sees the task
complete. A screenshot of each main view is saved in the test's temporary
directory. The page sends nothing but same-origin requests, and nothing
it receives carries key or certificate material."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from e2e.procs import CLI, Child, Spawn, child_env, wait_until
from e2e.test_delegation import BOOK, Net, finished, send_text
from playwright.async_api import Browser, Page, Response, expect
from support.browser import chromium_browser, find_chromium
from support.certs import make_certs
from support.ports import free_ports

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
# Real processes on a busy machine (CI runs two test workers): a view may
# take a few seconds to settle.
expect.set_options(timeout=15_000)

OPERATORS = "policy: {operators: ['spiffe://example.org/agent/ui']}\n"
#: Records what each EventSource of the page receives (its bodies never end,
#: so a response listener cannot read them).
RECORD_STREAMS = """
(() => {
  window.__streamed = [];
  const Original = window.EventSource;
  window.EventSource = function (url, options) {
    const source = new Original(url, options);
    const keep = (event) => window.__streamed.push(String(event.data));
    for (const name of ["changes", "node", "chunk", "end", "overflow", "error", "message"]) {
      source.addEventListener(name, keep);
    }
    return source;
  };
  window.EventSource.prototype = Original.prototype;
})();
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    found, why = find_chromium()
    if found is None:
        pytest.skip(why)
    return found


@pytest.fixture
def net(tmp_path: Path, spawn: Spawn) -> Net:
    certs = make_certs(tmp_path / "certs", "a", "b", "c", "alice", "ui")
    return Net(tmp_path, certs, spawn)


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with chromium_browser(chromium) as launched:
        yield launched


async def start_ui(net: Net, spawn: Spawn) -> tuple[Child, str]:
    configs = [f"--config={net.root / name}.yaml" for name in ("a", "b", "c")]
    args = [*CLI, "ui", *configs, "--cert-dir", str(net.certs), "--identity", "ui", "--port", "0"]
    ui = spawn("ui", args, child_env(net.root / "effects", 0.0))
    await wait_until(lambda: "agent-node ui: http://" in ui.out(), "the UI", timeout=30, alive=[ui])
    found = re.search(r"agent-node ui: (http://127\.0\.0\.1:\d+/\?token=[\w-]+)", ui.out())
    assert found, ui.describe()
    return ui, found.group(1)


def secrets_of(certs: Path) -> list[str]:
    """Pieces of every PEM file of the test's PKI (keys and certificates)."""
    pieces = []
    for pem in certs.glob("*.pem"):
        lines = [line for line in pem.read_text().splitlines() if line and "-----" not in line]
        pieces += lines[:3]
    return [piece for piece in pieces if len(piece) >= 40]


async def test_the_ui_follows_a_task_across_three_nodes_and_answers_its_question(
    net: Net, spawn: Spawn, browser: Browser, tmp_path: Path
) -> None:
    net.configure("c", {"book": Path(f"{BOOK}:wf")}, [], OPERATORS)
    relay_b = net.relay("b", "c", "book", as_text=True, keep="text")
    net.configure("b", {"relay": relay_b}, ["c"], OPERATORS)
    net.configure("a", {"relay": net.relay("a", "b", "relay", as_text=True)}, ["b"], OPERATORS)
    children = {name: await net.start(name) for name in ("c", "b", "a")}
    ui, url = await start_ui(net, spawn)
    task = await send_text(net, "a", {"parts": [{"text": "Lisbon"}]})
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    task_id = task["id"]
    shots = tmp_path / "screenshots"

    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    requested: list[str] = []
    received: list[Response] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("response", lambda response: received.append(response))
    await page.add_init_script(RECORD_STREAMS)
    await page.goto(url)

    # Every node, with its card and health.
    cards = page.locator(".node-card")
    await expect(cards).to_have_count(3)
    assert await page.locator(".node-card .name").all_text_contents() == ["a", "b", "c"]
    await expect(page.locator('.node-card[data-node="c"] .status')).to_have_text("ready")
    await expect(page.locator('.node-card[data-node="c"] .chips')).to_contain_text("book")
    # Who each node is, as its certificate says (never "null").
    for name in ("a", "b", "c"):
        identity = page.locator(f'.node-card[data-node="{name}"] .identity')
        await expect(identity).to_have_text(f"spiffe://example.org/agent/{name}")
    await expect(page.locator("#node-list")).not_to_contain_text("null")
    row = page.locator(f'tr.row[data-node="a"][data-id="{task_id}"]')
    await expect(row).to_be_visible()
    await expect(row.locator(".status")).to_have_text("waiting")
    await page.screenshot(path=str(shots / "overview.png"), full_page=True)
    # The three tasks, made in one second, are told apart by what is shown
    # of their ids, and found by it.
    rows = page.locator("tr.row")
    await expect(rows).to_have_count(3)
    shown = await rows.locator("a.id").all_text_contents()
    assert len(set(shown)) == 3, shown
    search = page.locator("#filters input[name='q']")
    await search.fill(await row.locator("a.id").inner_text())
    await search.press("Enter")
    await expect(rows).to_have_count(1)
    await expect(row).to_be_visible()
    await search.fill("")
    await search.press("Enter")
    await expect(rows).to_have_count(3)

    # The task: its graph, and its delegations across the three nodes.
    await row.click()
    await expect(page.locator("#execution .head .status")).to_have_text("waiting")
    await expect(page.locator('#graph .node.current[data-node="ask"]')).to_have_count(1)
    deepest = page.locator(
        "#tree ul.root > li > ul.tree > li > ul.tree > li > .task[data-node='c']"
    )
    middle = page.locator("#tree ul.root > li > ul.tree > li > .task[data-node='b']")
    await expect(deepest).to_be_visible()
    await expect(middle).to_be_visible()
    await expect(page.locator("#tree .link").first).to_contain_text("now asked")
    await expect(deepest).to_contain_text("book")
    # The skill each task was started for, and each delegation asked for.
    await expect(page.locator("#execution .facts dd.skill")).to_have_text("relay")
    await expect(middle.locator(".skill")).to_have_text("skill relay")
    await expect(deepest.locator(".skill")).to_have_text("skill book")
    await expect(page.locator("#tree .link").nth(1)).to_contain_text("skill book")
    await expect(page.locator("#tree")).not_to_contain_text("null")
    await expect(page.locator("#execution .facts")).not_to_contain_text("null")
    await expect(page.locator("#tree")).to_contain_text("asks: When do you want to go to Lisbon?")
    await page.screenshot(path=str(shots / "execution-asking.png"), full_page=True)

    # The inbox: C's question once, at the top of the chain, and the answer.
    await page.click("a[data-view='inbox']")
    item = page.locator(".item")
    await expect(item).to_have_count(1)
    await expect(item).to_have_attribute("data-node", "a")
    await expect(item.locator(".question")).to_have_text("When do you want to go to Lisbon?")
    await expect(item.locator(".relayed")).to_have_text("asked by c, relayed by b to a")
    await page.screenshot(path=str(shots / "inbox.png"), full_page=True)
    await expect(page.locator("#inbox-count")).to_have_text("1")

    # B, between A and C, is killed: the question is still shown once, at A,
    # and C's copy offers no answer (it would bypass B and A).
    children["b"].send(signal.SIGKILL)
    children["b"].wait(10)
    await expect(page.locator("#stream-state")).to_contain_text("b (unreachable)")
    await page.click("a[data-view='overview']")
    await page.click("a[data-view='inbox']")
    await expect(page.locator("#inbox-notes")).to_contain_text("b:")
    await expect(item).to_have_count(1)
    await expect(item).to_have_attribute("data-node", "a")
    await expect(item.locator(".relayed")).to_have_text("asked by c, relayed by b to a")
    await expect(page.locator("#inbox-items form.answer")).to_have_count(1)
    await expect(page.locator("#inbox-count")).to_have_text("1")
    await page.screenshot(path=str(shots / "inbox-b-down.png"), full_page=True)
    children["b"] = await net.start("b")
    await expect(page.locator("#stream-state")).to_have_text("live", timeout=30_000)
    await item.locator("input[name='answer']").fill("in May")
    await item.locator("button[type='submit']").click()
    await expect(page.locator("#flash")).to_contain_text("answer sent to a")
    await expect(page.locator(".item")).to_have_count(0, timeout=30_000)

    # The task completes, and the page says so as it happens.
    # The page as it is now (the token was exchanged for a cookie): only its fragment changes.
    await page.goto(f"{page.url.split('#')[0]}#/x/a/{task_id}")
    await expect(page.locator("#execution .head .status")).to_have_text("completed", timeout=30_000)
    await expect(deepest.locator(".status")).to_have_text("completed")
    await expect(page.locator("#tree .link").first).to_contain_text("round trip")
    await page.screenshot(path=str(shots / "execution-done.png"), full_page=True)
    await wait_until(lambda: finished(net.store("a"), task_id), "A's task", timeout=10)

    await check_nothing_left_the_page_and_no_secret_came_in(page, url, requested, received, net)
    ui.reap()
    assert all((shots / f"{view}.png").stat().st_size > 10_000 for view in ("overview", "inbox"))


async def test_the_ui_command_the_demo_prints_shows_its_network(
    tmp_path: Path, spawn: Spawn, browser: Browser
) -> None:
    """The demo stops its agents at its end, and prints how to run them by
    hand and the UI over them: run as printed, the page shows the three
    agents and the demo's question across them."""
    home = tmp_path / "demo"
    demo = [*CLI, "demo", "--offline", "--no-live", "--home", str(home)]
    done = subprocess.run(
        [*demo, "--port", str(free_ports(3))],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = [line.strip() for line in done.stdout.splitlines()]
    serve = [shlex.split(line) for line in printed if line.startswith("agent-node serve ")]
    (ui_line,) = [shlex.split(line) for line in printed if line.startswith("agent-node ui ")]
    root = re.search(r"coordinator task ([0-9a-f-]{36})", done.stdout)
    assert len(serve) == 3 and root, done.stdout
    env = child_env(tmp_path / "effects", 0.0)
    agents = [spawn(Path(words[3]).stem, [*CLI, *words[1:]], env) for words in serve]
    for agent in agents:
        listening = f"{agent.name} to listen"
        await wait_until(lambda a=agent: "listening on" in a.out(), listening, timeout=30)
    ui = spawn("demo-ui", [*CLI, *ui_line[1:], "--port", "0"], env)
    await wait_until(lambda: "agent-node ui: http://" in ui.out(), "the UI", timeout=30, alive=[ui])
    url = ui.out().split("agent-node ui: ")[1].split()[0]

    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.goto(url)
    names = page.locator(".node-card .name")
    await expect(names).to_have_text(["coordinator", "researcher", "writer"])
    await expect(page.locator(".node-card .status")).to_have_text(["ready"] * 3)
    await page.locator(f'tr.row[data-node="coordinator"][data-id="{root.group(1)}"]').click()
    await expect(page.locator("#execution .head .status")).to_have_text("completed")
    children = page.locator("#tree ul.root > li > ul.tree > li > .task")
    await expect(children).to_have_count(3)  # the research, and two drafts
    peers = [await c.get_attribute("data-node") for c in await children.all()]
    assert peers == ["researcher", "writer", "writer"]
    await page.screenshot(path=str(tmp_path / "screenshots" / "demo.png"), full_page=True)


async def test_replicas_of_a_node_on_one_database_show_each_task_once(
    net: Net, spawn: Spawn, browser: Browser, pg_url: str
) -> None:
    """Two processes of node c (one configuration, one PostgreSQL database,
    two ports): the page shows both, healthy, as one store; every task once,
    whichever process took it; the inbox counts each question once; a
    change both processes tell updates the task's one row; and the view of
    a task says its skill and its message as a note, not as an error."""
    net.stores["c"] = pg_url
    net.configure("c", {"book": Path(f"{BOOK}:wf")}, [], OPERATORS)
    net.configure("c2", {"book": Path(f"{BOOK}:wf")}, [], OPERATORS, node="c")
    await net.start("c")
    await net.start("c2", identity="c")
    configs = [f"--config={net.root / name}.yaml" for name in ("c", "c2")]
    args = [*CLI, "ui", *configs, "--cert-dir", str(net.certs), "--identity", "ui", "--port", "0"]
    ui = spawn("ui", args, child_env(net.root / "effects", 0.0))
    await wait_until(lambda: "agent-node ui: http://" in ui.out(), "the UI", timeout=30, alive=[ui])
    url = ui.out().split("agent-node ui: ")[1].split()[0]
    lisbon = await send_text(net, "c", {"parts": [{"text": "Lisbon"}]})
    porto = await send_text(net, "c2", {"parts": [{"text": "Porto"}]})

    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.goto(url)
    cards = page.locator(".node-card")
    await expect(cards).to_have_count(2)
    await expect(page.locator(".node-card .status")).to_have_text(["ready", "ready"])
    await expect(page.locator('.node-card[data-node="c"] .shared')).to_contain_text("c-2")
    await expect(page.locator('.node-card[data-node="c-2"] .shared')).to_contain_text("c")
    # Each replica's own share of the work, beside the store's counts.
    await expect(page.locator('.node-card[data-node="c"] .shared')).to_contain_text(
        "steps running in this one: 0"
    )
    rows = page.locator("tr.row")
    await expect(rows).to_have_count(2)
    assert {await r.get_attribute("data-id") for r in await rows.all()} == {
        lisbon["id"],
        porto["id"],
    }
    await expect(page.locator("#list-notes")).to_have_text("2 executions")
    await expect(page.locator("#inbox-count")).to_have_text("2")

    # Answered, the task completes; both processes tell it, one row shows it.
    # The inbox is drawn again on the nodes' changes (both processes tell
    # each): the answer typed stays (test_ui_browser_typing), and the answer
    # is sent before the item is awaited to go.
    await page.click("a[data-view='inbox']")
    await expect(page.locator(".item")).to_have_count(2)
    item = page.locator(f'.item[data-id="{porto["id"]}"]')
    await item.locator("input[name='answer']").fill("in June")
    await item.locator("button[type='submit']").click()
    await expect(page.locator("#flash")).to_contain_text("answer sent to c")
    await expect(item).to_have_count(0, timeout=30_000)
    await expect(page.locator(".item")).to_have_count(1)
    await page.click("a[data-view='overview']")
    row = page.locator(f'tr.row[data-id="{porto["id"]}"]')
    await expect(row.locator(".status")).to_have_text("completed", timeout=30_000)
    await expect(rows).to_have_count(2)

    await row.click()
    await expect(page.locator("#execution .head .status")).to_have_text("completed")
    await expect(page.locator("#execution .facts dd.skill")).to_have_text("book")
    await expect(page.locator("#notes")).to_contain_text("Porto")
    await expect(page.locator("#errors")).to_have_count(0)
    ui.reap()


async def check_nothing_left_the_page_and_no_secret_came_in(
    page: Page, url: str, requested: list[str], received: list[Response], net: Net
) -> None:
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    elsewhere = [r for r in requested if not r.startswith((origin + "/", "data:"))]
    assert elsewhere == [], elsewhere
    texts: list[str] = []
    for response in received:
        if "event-stream" in (response.headers.get("content-type") or ""):
            continue  # read in the page below: a stream's body never ends
        if 300 <= response.status < 400:
            continue  # the printed address's redirect (it sets the token's cookie): no body
        texts.append((await response.body()).decode("utf-8", "replace"))
    streamed: Any = await page.evaluate("window.__streamed")
    texts += [str(data) for data in streamed]
    assert any('"changes"' in t or '"executions"' in t for t in texts)
    everything = "\n".join(texts)
    for marker in ("PRIVATE KEY", "BEGIN CERTIFICATE", "x5c"):
        assert marker not in everything
    for piece in secrets_of(net.certs):
        assert piece not in everything
    assert await page.evaluate("document.cookie") == ""
    kept = "JSON.stringify([Object.keys(localStorage), Object.keys(sessionStorage)])"
    stored = await page.evaluate(kept)
    assert json.loads(stored) == [[], []]
