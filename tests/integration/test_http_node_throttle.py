"""The http node told to come back later: a 429, or a 503 with ``Retry-After``,
parks the visit on its durable timer for as long as the server asked,
without using an attempt; a wait longer than the node allows fails at once.
A real uvicorn server on loopback answers from a script; the real engine
runs a YAML workflow on SQLite."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agent_node import RunResult
from agent_node.transport import uvicorn_config
from agent_node.workflow.yaml_loader import load_yaml_text


@dataclass
class Server:
    """Answers each request with the next scripted ``(status, headers)``, then 200."""

    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    seen: list[tuple[float, str]] = field(default_factory=list)

    async def answer(self, request: Request) -> Response:
        self.seen.append((time.monotonic(), request.headers["idempotency-key"]))
        if self.script:
            status, headers = self.script.pop(0)
            return PlainTextResponse("slow down", status_code=status, headers=headers)
        return JSONResponse({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    served = Server(f"http://127.0.0.1:{sock.getsockname()[1]}")
    app = Starlette(routes=[Route("/hook", served.answer, methods=["POST"])])
    uv = uvicorn.Server(uvicorn_config(app, None))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        assert not task.done(), "the test server did not start"
        await asyncio.sleep(0.01)
    try:
        yield served
    finally:
        uv.should_exit = True
        await task
        sock.close()


async def run(
    runtime_factory: Any, server: Server, tmp_path: Path, retry: dict[str, Any]
) -> RunResult:
    document = {
        "workflow": {
            "id": "throttled",
            "version": "1",
            "state_schema": {"answer": {}},
            "start": "call",
        },
        "nodes": {
            "call": {
                "type": "http",
                "method": "POST",
                "url": f"{server.url}/hook",
                "body": {"a": 1},
                "output": "answer",
                "retry": {"initial_delay": 0.01, "jitter": 0, **retry},
                "next": "done",
            },
            "done": {"type": "end"},
        },
    }
    workflow = load_yaml_text(yaml.safe_dump(document), file="throttled.yaml")
    runtime = await runtime_factory(f"sqlite:///{tmp_path}/store.db")
    result: RunResult = await runtime.run(workflow, {})
    return result


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after", "least", "most"),
    [(429, "1", 1.0, 1.0), (503, "date+2", 1.0, 2.0), (429, None, 1.0, 1.0)],
    ids=["429-seconds", "503-http-date", "429-bare"],
)
async def test_a_come_back_later_parks_for_its_retry_after_without_using_an_attempt(
    runtime_factory: Any,
    server: Server,
    tmp_path: Path,
    status: int,
    retry_after: str | None,
    least: float,
    most: float,
) -> None:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = http_date(2) if retry_after == "date+2" else retry_after
    server.script.append((status, headers))
    result = await run(runtime_factory, server, tmp_path, {})
    assert result.status == "completed", result.error
    assert result.state.answer == {"ok": True}  # type: ignore[attr-defined]
    (first, key), (second, again) = server.seen
    assert second - first >= least  # not before the server said (bare 429: at least 1 s)
    assert key == again == f"{result.execution_id}/call/1"
    (failed,) = [e.data or {} for e in result.events if e.kind == "node_failed"]
    assert failed["throttled"] is True and least - 1 <= failed["wait"] <= most
    assert f"answered {status}" in failed["error"]
    starts = [e.attempt for e in result.events if e.kind == "node_started" and e.node == "call"]
    assert starts == [1, 1]  # the same attempt again: none was used


async def test_a_503_without_retry_after_is_an_ordinary_retry(
    runtime_factory: Any, server: Server, tmp_path: Path
) -> None:
    server.script.append((503, {}))
    result = await run(runtime_factory, server, tmp_path, {})
    assert result.status == "completed", result.error
    (failed,) = [e.data or {} for e in result.events if e.kind == "node_failed"]
    assert "throttled" not in failed
    starts = [e.attempt for e in result.events if e.kind == "node_started" and e.node == "call"]
    assert starts == [1, 2]


@pytest.mark.parametrize(
    ("retry_after", "retry", "said"),
    [
        (
            "120",
            {},
            "come back in 120.0 s (Retry-After), later than the node waits"
            " (60 s, its retry.max_delay)",
        ),
        (
            "date+86400",
            {"max_delay": "2h"},
            "later than the node waits (3600 s, the most any node waits)",
        ),
    ],
    ids=["over-max-delay", "http-date-over-an-hour"],
)
async def test_a_retry_after_longer_than_the_node_waits_fails_at_once(
    runtime_factory: Any,
    server: Server,
    tmp_path: Path,
    retry_after: str,
    retry: dict[str, Any],
    said: str,
) -> None:
    value = http_date(86400) if retry_after == "date+86400" else retry_after
    server.script.append((429, {"Retry-After": value}))
    result = await run(runtime_factory, server, tmp_path, retry)
    assert result.status == "failed"
    error = result.error or ""
    assert f"http node 'call': POST {server.url}/hook answered 429 Too Many" in error
    assert said in error
    assert len(server.seen) == 1
