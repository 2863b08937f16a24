"""Delegation round trip A -> B when B is a server we did not write.

    .venv/bin/python bench/delegation/foreign_rtt_bench.py \
        [--kinds ours,a2a-sdk-1,a2a-sdk-0.3,a2a-js-1,a2a-js-0.3] [--paths push,sse,poll] \
        [--n 200] [--warmup 20] [--poll 0.2] [--repeat 1] [--json bench/results/foreign_rtt.json]

A is an ``agent-node serve`` process whose skill ``relay`` is one delegate
node to peer ``f`` (its ``poll``: ``--poll`` s), then the end. B (``f``) is,
per kind, a real process over mutual TLS serving the scenario contract of
``tests/e2e/foreign`` (the official SDKs: a2a-sdk 1.x and 0.3.x in Python,
``@a2a-js/sdk`` 1.x and 0.3.x on Node.js, each from its cached venv or npm
folder), or ``ours``: another ``agent-node serve`` whose skill finishes at
once (one python step). Each delegation asks for ``slow 0``: the peer
answers A's ``returnImmediately`` send with its task WORKING and completes it
right after, so the result comes back by the path under test:

* ``push``: the peer's card declares push; A asks for pushes and the SDK's
  own push sender delivers to A's ``/a2a/push``;
* ``sse``: no push, streaming: A follows the task (``SubscribeToTask``);
* ``poll``: neither: A's watchdog polls ``GetTask`` (first after ``--poll``).

The foreign peers are the tests' scenario servers, which log each request
and push to a file on their critical path: here they log only with
``--keep`` (whose folders are for reading the logs).

For ``ours`` B, ``sse`` is B with push disabled (its card still streams);
``poll`` is not offered by our node (it always streams) and is skipped.

The figure: from A's delegate node starting (its ``node_started``) to A's
resume (``wait_resolved``; or the node's completion when the send's answer
was already final), read from A's event log after the run, for ``--n``
sequential blocking sends to A after ``--warmup``; p50 and p99 in ms, the
client's end-to-end p50, and how many resumed by each path. All kinds run
in the same invocation, one after the other, so their figures compare;
``--repeat K`` runs the whole sequence K times and ends with the median of
each case's p50 and p99, and of its p50 minus ours' in the same repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from e2e.procs import Child, child_env, opened, wait_until  # noqa: E402
from e2e.test_delegation import V10, Net  # noqa: E402
from e2e.test_foreign_peers import KINDS as FOREIGN  # noqa: E402
from e2e.test_foreign_peers import PATHS, RELAY  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from support.certs import make_certs  # noqa: E402
from support.ports import free_port  # noqa: E402
from support.tls import caller_context  # noqa: E402

KINDS = ("ours", *FOREIGN)
FINAL = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED"}
TOKEN_HEADER = "x-a2a-notification-token"
INSTANT = Path(f"{ROOT / 'bench' / 'delegation' / 'instant.py'}:wf")


class Spawner:
    """The children of one case, all reaped when it ends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.children: list[Child] = []

    def __call__(self, name: str, args: Any, env: dict[str, str]) -> Child:
        child = Child(name, args, env, self.root)
        self.children.append(child)
        return child

    def reap(self) -> None:
        for child in self.children:
            child.reap()


async def _start_peer(net: Net, spawn: Spawner, kind: str, path: str, keep: bool) -> Child:
    push, streaming = PATHS[path]
    if kind == "ours":
        config = net.configure("f", {"work": INSTANT}, [])
        if not push:
            allowed, off = "push: {allow: [127.0.0.0/8]}", "push: {enabled: false}"
            config.write_text(config.read_text().replace(allowed, off))
        return await net.start("f")
    launcher, generation = FOREIGN[kind]
    # The tests' peers log every request and push to a file, on their
    # critical path; a benchmark's logs only when its folder is kept.
    log = net.root / "peer.jsonl" if keep else None
    argv, env = launcher(
        generation, port=net.port("f"), certs=net.certs, name="f", log=log, push=push,
        streaming=streaming,
    )  # fmt: skip
    peer = spawn("f", argv, {**child_env(net.root / "effects", 0.0), **env})
    await wait_until(lambda: _served(net), f"the {kind} peer", timeout=180, alive=[peer])
    return peer


async def _served(net: Net) -> bool:
    try:
        async with httpx.AsyncClient(verify=caller_context(net.certs, "alice"), timeout=2) as http:
            return (await http.get(f"{net.url('f')}/.well-known/agent-card.json")).is_success
    except httpx.HTTPError:
        return False


async def _round_trips(net: Net, n: int, warmup: int) -> tuple[list[str], list[float]]:
    """``warmup`` + ``n`` blocking sends to A, one at a time: the measured
    task ids and the client's latency of each (s)."""
    ids: list[str] = []
    latencies: list[float] = []
    async with httpx.AsyncClient(verify=caller_context(net.certs, "alice"), timeout=60) as http:
        for i in range(warmup + n):
            parts = [{"text": f"slow 0 {i}"}]
            message = {"messageId": f"m{i}", "role": "ROLE_USER", "parts": parts}
            params = {"message": message}
            body = {"jsonrpc": "2.0", "id": i, "method": "SendMessage", "params": params}
            began = time.perf_counter()
            answer = (await http.post(f"{net.url('a')}/a2a", json=body, headers=V10)).json()
            took = time.perf_counter() - began
            task = answer.get("result", {}).get("task", {})
            state = task.get("status", {}).get("state")
            if state != "TASK_STATE_COMPLETED":
                raise SystemExit(f"send {i} ended {state}: {json.dumps(answer)[:1500]}")
            if i >= warmup:
                ids.append(task["id"])
                latencies.append(took)
    return ids, latencies


async def _peer_alone(net: Net, n: int, warmup: int) -> list[float]:
    """The peer by itself: ``warmup`` + ``n`` sends of ``slow 0`` straight to
    it (A2A 1.0, ``returnImmediately``, a push config naming a do-nothing
    mTLS receiver this process serves); per send, the time from its start
    to the push that settles the task (s). What any caller of this peer
    waits for at least, on the push path."""
    settled: dict[str, asyncio.Event] = {}

    async def receive(request: Request) -> JSONResponse:
        body = await request.json()
        for shape in ("task", "statusUpdate"):
            found = body.get(shape) if isinstance(body, dict) else None
            if isinstance(found, dict) and (found.get("status") or {}).get("state") in FINAL:
                settled.setdefault(request.headers.get(TOKEN_HEADER, ""), asyncio.Event()).set()
        return JSONResponse({"ok": True})

    port = free_port()
    config = uvicorn.Config(
        Starlette(routes=[Route("/push", receive, methods=["POST"])]),
        host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        ssl_certfile=str(net.certs / "a.pem"), ssl_keyfile=str(net.certs / "a-key.pem"),
        ssl_ca_certs=str(net.certs / "ca.pem"), ssl_cert_reqs=ssl.CERT_OPTIONAL,
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    url, rest = await _card(net)
    spans: list[float] = []
    try:
        async with httpx.AsyncClient(verify=caller_context(net.certs, "a"), timeout=60) as http:
            for i in range(warmup + n):
                token = f"t{i}"
                settled[token] = asyncio.Event()
                message = {"messageId": f"alone{i}", "role": "ROLE_USER"}
                message["parts"] = [{"text": f"slow 0 alone {i}"}]
                push = {"url": f"https://127.0.0.1:{port}/push", "token": token}
                configuration = {"returnImmediately": True, "taskPushNotificationConfig": push}
                params = {"message": message, "configuration": configuration}
                body = {"jsonrpc": "2.0", "id": i, "method": "SendMessage", "params": params}
                began = time.perf_counter()
                answer = (await http.post(url, json=params if rest else body, headers=V10)).json()
                if ("task" if rest else "result") not in answer:
                    raise SystemExit(f"the peer refused a send: {json.dumps(answer)[:800]}")
                await asyncio.wait_for(settled[token].wait(), 30)
                if i >= warmup:
                    spans.append(time.perf_counter() - began)
    finally:
        server.should_exit = True
        await serving
    return spans


async def _card(net: Net) -> tuple[str, bool]:
    """Where the peer takes a send, as its card names it: its JSON-RPC
    endpoint, else (a peer serving HTTP+JSON only) its REST ``message:send``
    resource; and whether that is REST."""
    async with httpx.AsyncClient(verify=caller_context(net.certs, "a"), timeout=10) as http:
        card = (await http.get(f"{net.url('f')}/.well-known/agent-card.json")).json()
    interfaces = card.get("supportedInterfaces") or []
    for interface in interfaces:
        if interface.get("protocolBinding", "JSONRPC") == "JSONRPC":
            return str(interface["url"]), False
    if "url" in card:
        return str(card["url"]), False
    for interface in interfaces:
        if interface.get("protocolBinding") == "HTTP+JSON":
            return str(interface["url"]).rstrip("/") + "/message:send", True
    raise SystemExit(f"the peer's card names no JSON-RPC or HTTP+JSON interface: {card}")


async def _resumes(net: Net, ids: list[str]) -> tuple[list[float], list[float], dict[str, int]]:
    """Per execution: A's delegate node start -> resume (s); its first leg,
    start -> the send's answer recorded (``delegation_sent``); and how many
    resumed by each path (``via`` of ``wait_resolved``, ``answer`` when the
    send's answer was final)."""
    spans: list[float] = []
    sends: list[float] = []
    via: dict[str, int] = {}
    async with opened(net.store("a")) as store:
        for execution_id in ids:
            events = [e for e in await store.events(execution_id) if e.node == "ask"]
            started = next(e.at for e in events if e.kind == "node_started")
            resolved = next((e for e in events if e.kind == "wait_resolved"), None)
            sent = next((e.at for e in events if e.kind == "delegation_sent"), None)
            if sent is not None:
                sends.append(sent - started)
            if resolved is None:
                end = next(e.at for e in events if e.kind == "node_completed")
                how = "answer"
            else:
                end = resolved.at
                how = str((json.loads(resolved.data or "{}").get("payload") or {}).get("via", "?"))
            spans.append(end - started)
            via[how] = via.get(how, 0) + 1
    return spans, sends, via


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_case(kind: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"foreign-rtt-{kind}-{path}-") as scratch:
        root = (
            Path(tempfile.mkdtemp(prefix=f"foreign-rtt-{kind}-{path}-"))
            if args.keep
            else Path(scratch)
        )
        spawn = Spawner(root)
        try:
            net = Net(root, make_certs(root / "certs", "a", "f", "alice"), spawn)
            await _start_peer(net, spawn, kind, path, args.keep)
            relay = root / "relay.yaml"
            relay.write_text(RELAY % args.poll)
            net.configure("a", {"relay": relay}, ["f"])
            await net.start("a")
            ids, latencies = await _round_trips(net, args.n, args.warmup)
            spans, sends, via = await _resumes(net, ids)
            alone: list[float] = []
            if path == "push" and not kind.endswith("0.3"):
                alone = await _peer_alone(net, args.n, args.warmup)
        finally:
            spawn.reap()
    return {
        "kind": kind,
        "path": path,
        "n": len(spans),
        "p50_ms": 1e3 * statistics.median(spans),
        "p99_ms": 1e3 * _pct(spans, 0.99),
        "client_p50_ms": 1e3 * statistics.median(latencies),
        "send_p50_ms": 1e3 * statistics.median(sends) if sends else None,
        "peer_alone_p50_ms": 1e3 * statistics.median(alone) if alone else None,
        "via": via,
        "root": str(root),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep each case's folder (printed)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the whole sequence this many times"
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    head = f"{'peer':<13} {'path':<5} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'send p50':>9}"
    print(f"{head} {'client p50':>10} {'peer alone':>10}  via")
    for _ in range(args.repeat):
        for kind in args.kinds.split(","):
            for path in args.paths.split(","):
                if kind == "ours" and path == "poll":
                    continue
                row = await run_case(kind, path, args)
                if args.keep:
                    print(f"kept {row['root']}", file=sys.stderr)
                rows.append(row)
                print(
                    f"{kind:<13} {path:<5} {row['n']:>4} {row['p50_ms']:>8.2f}"
                    f" {row['p99_ms']:>8.2f} {row['send_p50_ms'] or 0:>9.2f}"
                    f" {row['client_p50_ms']:>10.2f} {row['peer_alone_p50_ms'] or 0:>10.2f}"
                    f"  {row['via']}",
                    flush=True,
                )
    if args.repeat > 1:
        _summary(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def _summary(rows: list[dict[str, Any]]) -> None:
    """Per peer and path, the median over the repeats of each run's p50 and
    p99, and of its p50 minus ours' on the same path in the same repeat (runs
    next to each other share the machine's load, so the gap is steadier than
    either figure)."""
    keys = list(dict.fromkeys((r["kind"], r["path"]) for r in rows))
    repeats = [rows[i : i + len(keys)] for i in range(0, len(rows), len(keys))]
    print("\nmedian over repeats (gap: p50 minus ours' p50 on that path in the same repeat)")
    for kind, path in keys:
        runs = [r for repeat in repeats for r in repeat if (r["kind"], r["path"]) == (kind, path)]
        gaps = [
            mine["p50_ms"] - ours["p50_ms"]
            for repeat in repeats
            for mine in repeat
            for ours in repeat
            if (mine["kind"], mine["path"]) == (kind, path)
            and (ours["kind"], ours["path"]) == ("ours", path)
        ]
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        gap = f"{statistics.median(gaps):+8.2f}" if gaps else "       -"
        print(f"{kind:<13} {path:<5} p50 {p50:8.2f}  p99 {p99:8.2f}  gap {gap}  ({len(runs)} runs)")


if __name__ == "__main__":
    asyncio.run(main())
