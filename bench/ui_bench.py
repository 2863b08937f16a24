"""The web UI's first paint with 100,000 executions in a node's store (issue 17).

    .venv/bin/python bench/ui_bench.py [--executions 100000] [--runs 7] [--dir DIR] [--json FILE|-]

A SQLite store is filled with ``--executions`` finished executions (through
the store's own API, in batches: tests/support/history.py), a real node
serves it over mutual TLS (``agent-node serve``), and a real ``agent-node
ui`` acts as its operator. Headless Chromium (the system's ``chromium``)
then opens the page ``--runs`` times (after a first, "cold" run: the UI's
first call to the node, shown apart), each in a new browser context (no
cache), and the page reports:

* ``first_paint_ms``: its first contentful paint (``performance``);
* ``rows_ms``: when the first page of the executions list (50 rows) is in
  the DOM, from the start of navigation (a MutationObserver);
* ``api_ms``: the UI server's ``/api/executions`` as the page saw it
  (Resource Timing: request start to response end), which is the node's
  ``/ops/executions`` behind one more hop.

It also times ``/ops/executions`` (the first page, 50 rows, unfiltered, by
status, and with its total as the UI asks it: ``count=1``) straight from
the node. p50 and max are printed; the target is
``rows_ms`` < 1 s. Nothing leaves the machine: everything is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.browser import ARGS, find_chromium  # noqa: E402
from support.history import fill  # noqa: E402
from support.ports import free_port  # noqa: E402

from agent_node.security import pki  # noqa: E402
from agent_node.store import store_from_url  # noqa: E402

CLI = [sys.executable, "-m", "agent_node.cli.main"]
#: When the list's first rows entered the DOM, in the page's own clock.
WATCH_ROWS = """
new MutationObserver((_, observer) => {
  if (document.querySelector("#execution-rows tr.row")) {
    window.__rowsAt = performance.now();
    window.__rows = document.querySelectorAll("#execution-rows tr.row").length;
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
"""


async def prepare(folder: Path, count: int) -> tuple[Path, Path]:
    """The filled store and the node's configuration; the certificates."""
    certs = folder / "certs"
    pki.init_ca(certs, trust_domain="example.org")
    for name in ("node", "ui"):
        pki.issue(certs, name)
    store_url = f"sqlite:///{folder / 'node.db'}"
    store = store_from_url(store_url, create=True)
    await store.open()
    began = time.perf_counter()
    await fill(store, count, batch=1000)
    await store.close()
    print(f"filled {count} executions in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    config = folder / "node.yaml"
    config.write_text(
        "name: node\n"
        f"listen: {{host: 127.0.0.1, port: {free_port()}}}\n"
        f"store: {store_url}\n"
        "skills:\n"
        f"  - {{id: greet, workflow: '{ROOT / 'examples/hello/workflow.yaml'}', default: true}}\n"
        "policy: {operators: ['spiffe://example.org/agent/ui']}\n"
    )
    return config, certs


def start(args: list[str], log: Path, ready: str) -> tuple[subprocess.Popen[str], str]:
    """A child process, and its first stdout line that contains ``ready``."""
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=log.parent
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if ready in line:
            return process, line.strip()
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit(f"{args[3]} did not start: {log.read_text()[-2000:]}")


async def measure_page(url: str, runs: int, chromium: str) -> list[dict[str, float]]:
    from playwright.async_api import async_playwright

    found = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=ARGS)
        for _ in range(runs):
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await context.new_page()
            await page.add_init_script(WATCH_ROWS)
            await page.goto(url)
            await page.wait_for_function("() => window.__rowsAt !== undefined", timeout=30_000)
            found.append(await page.evaluate(_READ))
            await context.close()
        await browser.close()
    return found


_READ = """() => {
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  const api = performance.getEntriesByType("resource")
    .find((e) => e.name.includes("/api/executions"));
  return {
    first_paint_ms: paint ? paint.startTime : null,
    rows_ms: window.__rowsAt,
    rows: window.__rows,
    api_ms: api ? api.responseEnd - api.requestStart : null,
  };
}"""


def measure_ops(node_url: str, certs: Path, runs: int) -> dict[str, list[float]]:
    import httpx

    from agent_node.security.tls import client_context

    context = client_context(certs / "ui.pem", certs / "ui-key.pem", [certs / "ca.pem"])
    queries = {
        "ops_first_page_ms": "",
        "ops_by_status_ms": "&status=failed",
        "ops_counted_ms": "&count=1",  # the page's first page: with its total
    }
    timings: dict[str, list[float]] = {key: [] for key in queries}
    with httpx.Client(verify=context, timeout=30) as http:
        for _ in range(runs):
            for key, query in queries.items():
                began = time.perf_counter()
                answer = http.get(f"{node_url}/ops/executions?limit=50{query}")
                timings[key].append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200 and len(answer.json()["executions"]) == 50
    return timings


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 1), "max": round(max(values), 1)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--dir", type=Path, default=None, help="scratch folder (default: a temporary one)"
    )
    parser.add_argument(
        "--json", default=None, help="also write the figures as JSON here (- for stdout)"
    )
    options = parser.parse_args()
    chromium, why = find_chromium()
    if chromium is None:
        raise SystemExit(why)
    folder = options.dir or Path(tempfile.mkdtemp(prefix="ui-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    config, certs = await prepare(folder, options.executions)
    env_args = ["--cert-dir", str(certs)]
    node, line = start(
        [*CLI, "serve", "--config", str(config), *env_args, "--identity", "node"],
        folder / "node.err",
        "listening on",
    )
    node_url = line.split()[-1]
    ui = None
    try:
        ui, line = start(
            [
                *CLI,
                "ui",
                "--peer",
                f"node={node_url}",
                *env_args,
                "--identity",
                "ui",
                "--port",
                "0",
            ],
            folder / "ui.err",
            "agent-node ui:",
        )
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
        assert url, line
        # One more: the first run is the UI's first call to the node (its
        # TLS handshake, its imports), shown apart as "cold".
        pages = await measure_page(url.group(0), options.runs + 1, chromium)
        ops = measure_ops(node_url, certs, options.runs)
    finally:
        for child in (ui, node):
            if child is not None:
                child.terminate()
                child.wait(15)
    assert all(p["rows"] == 50 for p in pages), pages
    cold, pages = pages[0], pages[1:]
    figures: dict[str, Any] = {
        "executions": options.executions,
        "runs": options.runs,
        "cold": cold,
        **{
            key: summary([p[key] for p in pages if p[key] is not None])
            for key in ("first_paint_ms", "rows_ms", "api_ms")
        },
        **{key: summary(values) for key, values in ops.items()},
    }
    for key, value in figures.items():
        if isinstance(value, dict) and "p50" in value:
            print(f"{key:>20}: p50 {value['p50']:>7.1f} ms   max {value['max']:>7.1f} ms")
    print(
        f"{'cold (first run)':>20}: first paint {cold['first_paint_ms']:.0f} ms,"
        f" rows {cold['rows_ms']:.0f} ms, api {cold['api_ms']:.0f} ms"
    )
    verdict = "under" if figures["rows_ms"]["max"] < 1000 else "OVER"
    print(f"list rows in the DOM: {verdict} the 1 s target ({options.executions:,} executions)")
    if options.json == "-":
        print(json.dumps(figures))
    elif options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))
    if options.dir is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
