"""Stopping a node: SIGTERM or Ctrl-C (SIGINT) never crashes it.

A real ``agent-node serve``, over mutual TLS with real certificates and over
plain HTTP (``--insecure-dev``), stopped while its clients hold every kind of
connection at once: one idle past uvicorn's keep-alive timeout (the server
is already closing it, and a TLS close waits on the client — the stop that
touched it again crashed, exit 1, cutting the requests in flight), one idle
within it, requests in flight (blocking sends, a stream, and a raw client
that keeps its connection open after its answer). The node answers every
request in flight, records their tasks as completed, closes the rest, and
exits 0 without a traceback, sooner than its graceful timeout.

A request that outlasts the graceful timeout, or that a forced stop (a second
Ctrl-C) cuts, is answered without a traceback — a blocking send with
JSON-RPC -32033 naming its task, a stream is ended — and its task completes
at the next start.
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.procs import CLI, FIVE_STEPS, Child, Spawn, child_env, opened, read_logs, wait_until
from support.certs import make_certs
from support.effects import Effects
from support.tls import caller_context

from agent_node.transport import GRACEFUL_SHUTDOWN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

HEADERS = {"A2A-Version": "1.0", "Content-Type": "application/json"}
#: The keep-alive timeout the node is configured with (s): an idle connection
#: is closed after it (shorter than the default, for the test's sake).
KEEP_ALIVE = 3.0
#: Each of the workflow's five steps sleeps this long: a task takes ~1.5 s.
STEP_SLEEP = 0.3
#: ... or this long: a task outlasts the graceful timeout.
LONG_STEP_SLEEP = 2.0
SIGNALS = [signal.SIGTERM, signal.SIGINT]
MODES = ["mtls", "plain"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("shutdown") / "certs", "stopper", "alice")


@dataclass
class Served:
    """The node under test and how to reach it."""

    node: Child
    url: str
    store: str
    tls: ssl.SSLContext | None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=self.tls or True, timeout=30)


async def _serve(
    mode: str,
    tmp_path: Path,
    certs: Path,
    spawn: Spawn,
    step_sleep: float = STEP_SLEEP,
    name: str = "node",
) -> Served:
    store = f"sqlite:///{tmp_path}/store.db"
    config = tmp_path / "agent-node.yaml"
    config.write_text(
        "name: stopper\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: {store}\nskills:\n  - {{id: five, workflow: '{FIVE_STEPS}', default: true}}\n"
        f"limits: {{keep_alive: {KEEP_ALIVE}}}\n"
    )
    args = [*CLI, "serve", "--config", str(config)]
    if mode == "mtls":
        args += ["--cert-dir", str(certs), "--identity", "stopper"]
    else:
        args += ["--insecure-dev"]
    node = spawn(name, args, child_env(tmp_path / "effects.db", step_sleep))
    await wait_until(lambda: "listening on" in node.out(), "the node", timeout=30, alive=[node])
    url = next(w for w in node.out().split() if w.startswith("http")).rstrip(".,;")
    tls = caller_context(certs, "alice") if mode == "mtls" else None
    return Served(node, url, store, tls)


def _send_body(item: int, method: str = "SendMessage") -> bytes:
    message = {"messageId": f"m{item}", "role": "ROLE_USER", "parts": [{"data": {"item": item}}]}
    rpc = {"jsonrpc": "2.0", "id": item, "method": method, "params": {"message": message}}
    return json.dumps(rpc).encode()


async def _send(http: httpx.AsyncClient, url: str, item: int) -> dict[str, Any]:
    answer = await http.post(f"{url}/a2a", content=_send_body(item), headers=HEADERS)
    payload = answer.json()
    assert "result" in payload, payload
    task: dict[str, Any] = payload["result"]["task"]
    return task


async def _stream(http: httpx.AsyncClient, url: str, item: int) -> list[dict[str, Any]]:
    """The events of a streamed send, to the end of the stream."""
    body = _send_body(item, "SendStreamingMessage")
    events = []
    async with http.stream("POST", f"{url}/a2a", content=body, headers=HEADERS) as answer:
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:])["result"])
    return events


async def _send_raw(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, item: int
) -> tuple[str, dict[str, Any]]:
    """A blocking send from a client that reads its answer and then neither
    closes its connection nor says goodbye over TLS: the response head and
    the task."""
    body = _send_body(item)
    writer.write(
        f"POST /a2a HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"A2A-Version: 1.0\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
    length = int(head.split("content-length:")[1].split("\r\n")[0])
    payload = json.loads(await reader.readexactly(length))
    assert "result" in payload, payload
    return head, payload["result"]["task"]


async def _get_task(http: httpx.AsyncClient, url: str, task_id: str) -> dict[str, Any]:
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}}
    payload = (await http.post(f"{url}/a2a", json=rpc, headers=HEADERS)).json()
    assert "result" in payload, payload
    task: dict[str, Any] = payload["result"]
    return task


async def _stopped(node: Child, *signals: signal.Signals) -> float:
    """Signal the node (a second Ctrl-C forces the stop: it waits for nothing);
    how long it took to exit. It must exit 0, no traceback."""
    began = time.monotonic()
    for n, signum in enumerate(signals):
        if n:
            await asyncio.sleep(1)  # two signals at once are taken as one
        node.send(signum)
    code = await asyncio.to_thread(node.wait, 30)
    took = time.monotonic() - began
    assert code == 0, node.describe()
    assert "Traceback" not in node.err(), node.err()
    assert "stopped" in node.out(), node.describe()
    return took


def _started(effects: Effects) -> int:
    return sum(1 for key in effects.invocations() if key.endswith("/step1/1"))


def _assert_completed(task: dict[str, Any]) -> None:
    assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
    assert "step5" in json.dumps(task["artifacts"]), task


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("mode", MODES)
async def test_a_stop_answers_what_is_in_flight_and_closes_the_rest(
    mode: str, signum: signal.Signals, tmp_path: Path, certs: Path, spawn: Spawn
) -> None:
    served = await _serve(mode, tmp_path, certs, spawn)
    card = f"{served.url}/.well-known/agent-card.json"
    effects = Effects(tmp_path / "effects.db")
    async with served.client() as stale, served.client() as idle, served.client() as busy:
        assert (await stale.get(card)).status_code == 200
        await asyncio.sleep(KEEP_ALIVE + 1.5)  # the server is closing it; the client says nothing
        assert (await idle.get(card)).status_code == 200
        sends = [asyncio.create_task(_send(busy, served.url, item)) for item in (1, 2)]
        stream = asyncio.create_task(_stream(busy, served.url, 3))
        address = served.url.split("//")[1]
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), ssl=served.tls)
        raw = asyncio.create_task(_send_raw(reader, writer, address, 4))
        requests = [*sends, stream, raw]
        await wait_until(
            lambda: _started(effects) == 4 or any(r.done() for r in requests),
            "4 tasks to start",
            timeout=30,
        )
        assert not any(r.done() for r in requests), [r.result() for r in requests if r.done()]
        stop = asyncio.create_task(_stopped(served.node, signum))
        tasks = list(await asyncio.gather(*sends))
        events = await stream
        head, raw_task = await raw
        took = await stop
        assert await reader.read() == b"", "the node exited, the connection is closed"
        writer.close()
    assert took < GRACEFUL_SHUTDOWN, f"stopping took {took:.1f} s"
    for task in [*tasks, raw_task]:
        _assert_completed(task)
    assert "connection: close" in head, head
    first, last = events[0]["task"], events[-1]
    assert last["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED", events
    ids = [task["id"] for task in [*tasks, raw_task]] + [first["id"]]
    async with opened(served.store) as store:
        logs = await read_logs(store, ids)
    assert {record.status for record, _ in logs.values()} == {"completed"}
    assert set(effects.effects().values()) == {1} and len(effects.effects()) == 4 * 5


CUTS = [
    pytest.param("mtls", [signal.SIGTERM], id="mtls-SIGTERM"),
    pytest.param("plain", [signal.SIGINT], id="plain-SIGINT"),
    pytest.param("mtls", [signal.SIGINT, signal.SIGINT], id="mtls-forced"),
]


@pytest.mark.parametrize(("mode", "signals"), CUTS)
async def test_a_request_still_running_when_the_stop_ends_is_answered_unavailable(
    mode: str, signals: list[signal.Signals], tmp_path: Path, certs: Path, spawn: Spawn
) -> None:
    served = await _serve(mode, tmp_path, certs, spawn, step_sleep=LONG_STEP_SLEEP)
    effects = Effects(tmp_path / "effects.db")
    async with served.client() as busy:
        send = asyncio.create_task(
            busy.post(f"{served.url}/a2a", content=_send_body(1), headers=HEADERS)
        )
        stream = asyncio.create_task(_stream(busy, served.url, 2))
        await wait_until(lambda: _started(effects) == 2, "2 tasks to start", timeout=30)
        took = await _stopped(served.node, *signals)
        answer, events = await send, await stream
    if len(signals) == 1:
        assert GRACEFUL_SHUTDOWN <= took < GRACEFUL_SHUTDOWN + 15, f"stopping took {took:.1f} s"
    else:
        assert took < GRACEFUL_SHUTDOWN, f"a forced stop took {took:.1f} s"
    # The blocking send is told the node stops, and which task to ask for.
    assert answer.status_code == 200, answer.text
    error = answer.json()["error"]
    assert error["code"] == -32033 and "stopping" in error["message"], error
    cut = error["data"][0]["metadata"]["taskId"]
    assert f"task {cut} still running" in served.node.err(), served.node.err()
    assert "Traceback" not in served.node.err(), served.node.err()
    stopped_err = served.node.err()
    streamed = events[0]["task"]
    assert "TASK_STATE_COMPLETED" not in json.dumps(events), events

    # Nothing is lost: the next start finishes both tasks.
    served = await _serve(mode, tmp_path, certs, spawn, name="restarted")
    ids = {key.split("/")[0] for key in effects.invocations()}
    assert ids == {streamed["id"], cut}, ids
    async with served.client() as http:

        async def both_completed() -> bool:
            tasks = [await _get_task(http, served.url, task_id) for task_id in ids]
            return all(t["status"]["state"] == "TASK_STATE_COMPLETED" for t in tasks)

        await wait_until(both_completed, "both tasks to complete after the restart", timeout=60)
    if len(signals) == 1:
        # The steps running when the node stopped were let finish (stop_grace_seconds),
        # not cut and run again at the restart: each step body ran once (found by an
        # operator's walk: every rolling restart ran the steps in flight twice).
        assert set(effects.invocations().values()) == {1}, effects.invocations()
        assert "waiting up to 10 s for 2 node visit(s) to finish" in stopped_err, stopped_err
    else:  # forced: no grace, its steps run again at the next start
        assert "waiting up to" not in stopped_err, stopped_err


async def test_a_second_signal_cuts_the_steps_grace_short(
    tmp_path: Path, certs: Path, spawn: Spawn
) -> None:
    """The steps running when the node stops get ``stop_grace_seconds`` (10 s)
    to finish; asked again, it stops at once (its steps run again at the next
    start, as after a crash), exit 0 and no traceback."""
    served = await _serve("plain", tmp_path, certs, spawn, step_sleep=30.0)
    effects = Effects(tmp_path / "effects.db")
    async with served.client() as http:
        body = _send_body(1).replace(
            b'"message"', b'"configuration":{"returnImmediately":true},"message"'
        )
        await http.post(f"{served.url}/a2a", content=body, headers=HEADERS)
        await wait_until(lambda: _started(effects) == 1, "the step to start", timeout=30)
    began = time.monotonic()
    served.node.send(signal.SIGTERM)
    await wait_until(
        lambda: "waiting up to 10 s for 1 node visit(s)" in served.node.err(),
        "the stop to wait for the step",
        timeout=15,
    )
    served.node.send(signal.SIGTERM)
    code = await asyncio.to_thread(served.node.wait, 30)
    took = time.monotonic() - began
    assert code == 0, served.node.describe()
    assert took < 8, f"stopping took {took:.1f} s"
    assert "Traceback" not in served.node.err(), served.node.err()


async def test_a_worker_lets_its_steps_finish_and_a_second_signal_ends_the_wait(
    tmp_path: Path, spawn: Spawn
) -> None:
    """``agent-node worker`` stops as a node does: no more work, the steps
    running in it given ``--stop-grace``, and a second signal ends the wait."""
    from agent_node import load_workflow
    from agent_node.engine.control import Control
    from agent_node.engine.registry import WorkflowRegistry
    from agent_node.runtime import default_executors

    store_url = f"sqlite:///{tmp_path}/work.db"
    effects = Effects(tmp_path / "effects.db")
    env = child_env(tmp_path / "effects.db", 30.0)
    worker = spawn("w", [*CLI, "worker", FIVE_STEPS, "--store", store_url], env)
    await wait_until(lambda: "stop with SIGTERM" in worker.out(), "the worker", timeout=30)
    async with opened(store_url) as store:
        control = Control(store, WorkflowRegistry(load_workflow), default_executors())
        await control.create(load_workflow(FIVE_STEPS), {"item": 1}, "w-1")
    await wait_until(lambda: _started(effects) == 1, "the step to start", timeout=30)
    began = time.monotonic()
    worker.send(signal.SIGTERM)
    await wait_until(
        lambda: "running steps may finish (up to 10 s)" in worker.out(), "the wait", timeout=10
    )
    await asyncio.sleep(1)
    worker.send(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.describe()
    assert time.monotonic() - began < 8, worker.describe()
    assert "stopped" in worker.out() and "Traceback" not in worker.err(), worker.describe()
