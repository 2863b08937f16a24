"""Reads and starts against a large store: the same time with 1,000,000 finished
executions as with none (issue 18, "Large stores").

    .venv/bin/python bench/stores/large_store.py [--executions 1000000] \
        [--store sqlite:///<scratch>/large.db | --store postgresql://…] [--samples 300]

Fills the store through the store's own API (``Store.create`` in concurrent
batches, so rows, indexes and the caller column are exactly what a node
writes): finished executions of 20 callers in 1,000 contexts, three events
each. A filled SQLite file is kept and reused when it has enough rows
(``--refill`` to start over). Then serves it with ``agent-node serve
--insecure-dev`` (the echo workflow of bench/a2a) and measures, over HTTP on
loopback, one request at a time:

* ``GetTask`` of random finished tasks;
* ``ListTasks`` as an operator: the first page, a page deep in the list (its
  token), a status filter, a context (alone, and with a status all have),
  changed in the last hour (few match)
  and in the last two days (all match); a status no task has (FAILED), alone
  and with a change in two days (filters that meet: each on its own matches
  none or all);
* the operator API's search by id (``GET /ops/executions?q=``): the start
  of old ids (1,000 and 10,000 match), the end of a new one;
* ``SendMessage`` (starting and finishing an execution);
* ``agent-node executions`` and ``agent-node inspect ID`` (whole commands).

The same on an empty store first, for comparison. Prints a table of p50 /
p99 in milliseconds; targets: GetTask p99 < 5 ms, ListTasks p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "bench" / "a2a" / "echo_workflow.py"
CALLERS = [f"spiffe://bench/agent/caller-{n}" for n in range(20)]
V10 = {"A2A-Version": "1.0"}


async def fill(url: str, count: int, batch: int = 2000) -> int:
    from agent_node.store import Txn, store_from_url
    from agent_node.store.records import ExecutionRecord

    store = store_from_url(url)
    await store.open()
    try:
        have = await store.count_executions()
        start = time.time() - count * 0.01 - 86400
        made = have

        def plan(txn: Txn) -> None:
            txn.event("execution_started", data='{"workflow":"echo@1","input":{"text":"hi"}}')
            txn.event("node_completed", "echo", 1, data='{"duration":0.0001,"next":null}')
            txn.event("execution_completed", data='{"output":{"text":"hi"}}')

        began = time.perf_counter()
        while made < count:
            size = min(batch, count - made)
            records = []
            for n in range(made, made + size):
                at = start + n * 0.01
                meta = json.dumps({"caller": CALLERS[n % 20], "traceparent": None})
                records.append(
                    ExecutionRecord(
                        f"task-{n:08d}",
                        "echo",
                        "1",
                        None,
                        "completed",
                        '{"text":"hi"}',
                        '{"v":{"echo":1}}',
                        0,
                        None,
                        f"ctx-{n % 1000}",
                        meta,
                        at,
                        at,
                    )
                )
            await asyncio.gather(*(store.create(r, plan) for r in records))
            made += size
            if made % 100_000 < batch:
                rate = (made - have) / (time.perf_counter() - began)
                print(f"  filled {made:,} ({rate:,.0f}/s)", file=sys.stderr)
        return made
    finally:
        await store.close()


def serve(url: str, scratch: Path) -> tuple[subprocess.Popen[str], str]:
    conf = scratch / "node.yaml"
    conf.write_text(
        "name: large\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: {url}\nskills:\n  - {{id: echo, workflow: '{ECHO}:wf', default: true}}\n"
    )
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_node.cli.main",
            "serve",
            "--insecure-dev",
            "--config",
            str(conf),
        ],
        stdout=subprocess.PIPE,
        stderr=open(scratch / "node.err", "w"),
        text=True,
    )
    assert node.stdout is not None
    first = node.stdout.readline()
    if "listening on" not in first:
        raise SystemExit(f"the node did not start: {first}{(scratch / 'node.err').read_text()}")
    return node, first.split()[-1]


def timed(fn: Any, samples: int) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def measure(
    url: str, store: str, count: int, samples: int, scratch: Path
) -> dict[str, tuple[float, float]]:
    node, base = serve(url, scratch)
    rows: dict[str, tuple[float, float]] = {}
    try:
        with httpx.Client(base_url=base, headers=V10, timeout=30) as http:

            def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
                body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
                answer = http.post("/a2a", json=body).json()
                assert "result" in answer, answer
                return answer["result"]  # type: ignore[no-any-return]

            def ops(params: dict[str, Any]) -> dict[str, Any]:
                answer = http.get("/ops/executions", params=params)
                assert answer.status_code == 200 and answer.json()["executions"], answer.text
                return answer.json()  # type: ignore[no-any-return]

            ids = (
                [f"task-{random.randrange(count):08d}" for _ in range(samples + 1)] if count else []
            )
            if ids:
                it = iter(ids)
                rows["GetTask (random finished task)"] = timed(
                    lambda: rpc("GetTask", {"id": next(it)}), samples
                )
            rows["ListTasks first page (50)"] = timed(
                lambda: rpc("ListTasks", {"pageSize": 50}), samples
            )
            if count:
                token = ""
                page = {}
                for _ in range(5):
                    page = rpc(
                        "ListTasks", {"pageSize": 50, **({"pageToken": token} if token else {})}
                    )
                    token = page["nextPageToken"]
                deep = token
                rows["ListTasks page 6 (token)"] = timed(
                    lambda: rpc("ListTasks", {"pageSize": 50, "pageToken": deep}), samples
                )
            rows["ListTasks status COMPLETED"] = timed(
                lambda: rpc("ListTasks", {"pageSize": 50, "status": "TASK_STATE_COMPLETED"}),
                samples,
            )
            rows["ListTasks one context"] = timed(
                lambda: rpc("ListTasks", {"pageSize": 50, "contextId": "ctx-7"}), samples
            )
            # Filters that each match many: a context's 1,000 and a status all
            # have (the first page counts them: totalSize).
            rows["ListTasks one context, COMPLETED"] = timed(
                lambda: rpc(
                    "ListTasks",
                    {"pageSize": 50, "contextId": "ctx-8", "status": "TASK_STATE_COMPLETED"},
                ),
                samples,
            )
            # By last change: the last hour (the filled ones are a day older:
            # few match) and two days back (every one matches).
            for label, back in (("last hour", 3600), ("two days back", 2 * 86400)):
                since = dt.datetime.fromtimestamp(time.time() - back, dt.UTC).isoformat()
                rows[f"ListTasks changed, {label}"] = timed(
                    lambda since=since: rpc(
                        "ListTasks", {"pageSize": 50, "statusTimestampAfter": since}
                    ),
                    samples,
                )
            # Filters that meet, each of them matching many or none: a status
            # no task has, alone and with a change in two days (all changed).
            failed = {"pageSize": 50, "status": "TASK_STATE_FAILED"}
            rows["ListTasks status FAILED (none)"] = timed(
                lambda: rpc("ListTasks", failed), samples
            )
            two_days = dt.datetime.fromtimestamp(time.time() - 2 * 86400, dt.UTC).isoformat()
            rows["ListTasks FAILED, changed in two days"] = timed(
                lambda: rpc("ListTasks", {**failed, "statusTimestampAfter": two_days}), samples
            )
            if count >= 20_000:
                # The operator API's search by id (the UI's id box): the start
                # of old ids (ids that start alike are of one time, as new
                # ids are), and the end of a new one (looked for among the
                # newest).
                for label, q in (
                    ("1,000 oldest", "task-00012"),
                    ("10,000 oldest", "task-0001"),
                ):
                    rows[f"ops search, id start ({label})"] = timed(
                        lambda q=q: ops({"q": q, "limit": 50}), samples
                    )
                end = f"{count - 10:08d}"[-6:]
                rows["ops search, id end (a new one)"] = timed(
                    lambda: ops({"q": end, "limit": 50}), samples
                )
            message = {"role": "ROLE_USER", "parts": [{"text": "hi"}]}
            rows["SendMessage (start + finish)"] = timed(
                lambda: rpc(
                    "SendMessage", {"message": {**message, "messageId": os.urandom(8).hex()}}
                ),
                samples,
            )
    finally:
        node.terminate()
        node.wait(30)
    cli = [sys.executable, "-m", "agent_node.cli.main"]
    rows["agent-node executions (command)"] = timed(
        lambda: subprocess.run(
            [*cli, "executions", "--store", url], check=True, capture_output=True
        ),
        5,
    )
    target = "task-00000007" if count else None
    if target:
        rows["agent-node inspect ID (command)"] = timed(
            lambda: subprocess.run(
                [*cli, "inspect", target, "--store", url], check=True, capture_output=True
            ),
            5,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--store", default=None, help="default: sqlite in a kept scratch folder")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--refill", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.gettempdir()) / "agent-node-large-store"
    scratch.mkdir(exist_ok=True)
    large = args.store or f"sqlite:///{scratch / 'large.db'}"
    if args.refill and large.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(large.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    empty_dir = Path(tempfile.mkdtemp(prefix="agent-node-empty-"))
    empty = f"sqlite:///{empty_dir / 'empty.db'}" if large.startswith("sqlite") else large
    results = {}
    if large.startswith("sqlite"):
        print("empty store …", file=sys.stderr)
        asyncio.run(fill(empty, 0))
        results["empty"] = measure(empty, empty, 0, args.samples, empty_dir)
    print(f"filling {args.executions:,} finished executions into {large} …", file=sys.stderr)
    began = time.perf_counter()
    made = asyncio.run(fill(large, args.executions))
    print(f"  {made:,} in the store ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    # The filled tasks are task-00000000 on; the store may hold others too
    # (the SendMessage of earlier runs), not theirs to pick from.
    filled = min(made, args.executions)
    results[f"{made:,}"] = measure(large, large, filled, args.samples, scratch)
    names = list(dict.fromkeys(name for rows in results.values() for name in rows))
    print(f"{'ms (p50 / p99)':40}" + "".join(f"{label:>22}" for label in results))
    for name in names:
        cells = "".join(
            f"{rows[name][0]:>11.2f} / {rows[name][1]:<8.2f}" if name in rows else f"{'—':>22}"
            for rows in results.values()
        )
        print(f"{name:40}{cells}")


if __name__ == "__main__":
    main()
