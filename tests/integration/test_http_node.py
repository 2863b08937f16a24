"""The http node against a real server: a uvicorn Starlette app on loopback,
run through the real engine from YAML workflows."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from agent_node import RetryPolicy, RunResult, WorkflowDefinitionError
from agent_node.transport import uvicorn_config
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=0)
STATE = {
    "base": "string",
    "item": {"type": "string", "default": "widget"},
    "token": {"type": "string", "default": "s3cret"},
    "answer": {},
    "status": "integer",
    "method": "string",
    "first": "integer",
}
MIB = 1024 * 1024


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    port: int
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    answered_flaky: int = 0

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


def app(server: Server) -> Starlette:
    async def record(request: Request) -> bytes:
        body = await request.body()
        server.seen.append(Seen(request.method, request.url.path, dict(request.headers), body))
        return body

    async def echo(request: Request) -> Response:
        body = await record(request)
        is_json = request.headers.get("content-type") == "application/json"
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "json": json.loads(body) if is_json else None,
                "text": body.decode(),
                "items": [{"id": 7}, {"id": 8}],
            }
        )

    async def flaky(request: Request) -> Response:
        await record(request)
        server.answered_flaky += 1
        if server.answered_flaky == 1:
            return PlainTextResponse("busy, try later", status_code=503)
        return JSONResponse({"ok": True})

    async def missing(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("no such widget\n\nhere", status_code=404)

    async def hop(request: Request) -> Response:
        await record(request)
        status = int(request.path_params["status"])
        return RedirectResponse("/echo/landed", status_code=status)

    async def away(request: Request) -> Response:
        await record(request)
        return RedirectResponse(f"http://localhost:{server.port}/echo/away", status_code=307)

    async def slow(request: Request) -> Response:
        await record(request)
        try:
            await asyncio.wait_for(server.release.wait(), 10)
        except TimeoutError:
            pass
        return PlainTextResponse("late")

    async def huge(request: Request) -> Response:
        await record(request)
        return Response(b"x" * (2 * MIB), media_type="text/plain")

    async def huge_stream(request: Request) -> Response:
        await record(request)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(32):
                yield b"y" * 65536

        return StreamingResponse(chunks(), media_type="text/plain")

    everything = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    return Starlette(
        routes=[
            Route("/echo/{rest:path}", echo, methods=everything),
            Route("/flaky", flaky, methods=everything),
            Route("/missing", missing),
            Route("/hop/{status}", hop, methods=everything),
            Route("/away", away, methods=everything),
            Route("/slow", slow),
            Route("/huge", huge),
            Route("/huge-stream", huge_stream),
        ]
    )


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A real HTTP server on ``127.0.0.1``, in the test's event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    served = Server(f"http://127.0.0.1:{port}", port)
    uv = uvicorn.Server(uvicorn_config(app(served), None))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        assert not task.done(), "the test server did not start"
        await asyncio.sleep(0.01)
    try:
        yield served
    finally:
        served.release.set()
        uv.should_exit = True
        await task
        sock.close()


def workflow(call: dict[str, Any]) -> CompiledWorkflow:
    """A YAML workflow: the http node ``call``, then ``done``."""
    document = {
        "workflow": {"id": "http-test", "version": "1", "state_schema": STATE, "start": "call"},
        "nodes": {"call": {"type": "http", **call, "next": "done"}, "done": {"type": "end"}},
    }
    return load_yaml_text(yaml.safe_dump(document, sort_keys=False), file="http.yaml")


async def run(
    runtime_factory: Any, call: dict[str, Any], server: Server, **state: Any
) -> RunResult:
    runtime = await runtime_factory(state.pop("store", "memory://"))
    result: RunResult = await runtime.run(workflow(call), {"base": server.url, **state})
    return result


def attempts(result: RunResult) -> int:
    return sum(1 for e in result.events if e.kind == "node_started" and e.node == "call")


async def test_sends_the_rendered_request_and_maps_the_answer(
    server: Server, runtime_factory: Any
) -> None:
    call = {
        "method": "post",
        "url": "{{ state.base }}/echo/{{ state.item }}",
        "query": {"q": "find {{ state.item }}", "page": "2"},
        "headers": {"Authorization": "Bearer {{ state.token }}", "X-Trace": "t-1"},
        "body": {"name": "{{ state.item }}", "tags": ["a", "{{ state.token }}"], "n": 3},
        "output": "answer",
        "status_output": "status",
        "fields": {"method": "method", "first": "items.0.id"},
    }
    result = await run(runtime_factory, call, server, item="gear box")
    assert result.status == "completed", result.error
    seen = server.requests_to("/echo/gear box")
    assert len(seen) == 1
    answer = result.state.answer  # type: ignore[attr-defined]
    assert answer["method"] == "POST"
    assert answer["query"] == {"q": "find gear box", "page": "2"}
    assert answer["json"] == {"name": "gear box", "tags": ["a", "s3cret"], "n": 3}
    headers = answer["headers"]
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-trace"] == "t-1"
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == f"{result.execution_id}/call/1"
    assert result.state.status == 200  # type: ignore[attr-defined]
    assert result.state.method == "POST"  # type: ignore[attr-defined]
    assert result.state.first == 7  # type: ignore[attr-defined]
    completed = next(e for e in result.events if e.kind == "node_completed" and e.node == "call")
    record = completed.data["output"]
    assert record["method"] == "POST"
    assert record["url"] == f"{server.url}/echo/gear box"  # as rendered, without the query
    assert record["status"] == 200
    assert record["duration"] > 0


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_503_is_retried_with_the_same_idempotency_key(
    server: Server, runtime_factory: Any, store: str, tmp_path: Path
) -> None:
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/store.db"
    call = {
        "url": "{{ state.base }}/flaky",
        "output": "answer",
        "retry": FAST_RETRY.model_dump(),
    }
    result = await run(runtime_factory, call, server, store=url)
    assert result.status == "completed", result.error
    assert result.state.answer == {"ok": True}  # type: ignore[attr-defined]
    keys = [s.headers["idempotency-key"] for s in server.requests_to("/flaky")]
    assert keys == [f"{result.execution_id}/call/1"] * 2
    failed = [e for e in result.events if e.kind == "node_failed"]
    assert len(failed) == 1
    assert "503" in failed[0].data["error"]
    assert "busy, try later" in failed[0].data["error"]
    assert attempts(result) == 2


async def test_a_404_fails_at_once_naming_the_status(server: Server, runtime_factory: Any) -> None:
    call = {
        "url": "{{ state.base }}/missing",
        "query": {"key": "{{ state.token }}"},
        "retry": FAST_RETRY.model_dump(),
    }
    result = await run(runtime_factory, call, server)
    assert result.status == "failed"
    assert len(server.requests_to("/missing")) == 1
    assert attempts(result) == 1
    error = result.error or ""
    assert "http node 'call'" in error
    assert f"GET {server.url}/missing answered 404 Not Found: no such widget here" in error
    assert "s3cret" not in error  # the query is not shown


@pytest.mark.parametrize(("status", "method"), [(307, "POST"), (303, "GET")])
async def test_a_same_host_redirect_is_followed(
    server: Server, runtime_factory: Any, status: int, method: str
) -> None:
    call = {
        "method": "POST",
        "url": "{{ state.base }}/hop/" + str(status),
        "body": "hello {{ state.item }}",
        "output": "answer",
    }
    result = await run(runtime_factory, call, server)
    assert result.status == "completed", result.error
    answer = result.state.answer  # type: ignore[attr-defined]
    assert answer["path"] == "/echo/landed"
    assert answer["method"] == method
    landed = server.requests_to("/echo/landed")[0]
    assert landed.body == (b"hello widget" if method == "POST" else b"")
    assert landed.headers["idempotency-key"] == f"{result.execution_id}/call/1"
    completed = next(e for e in result.events if e.kind == "node_completed" and e.node == "call")
    assert completed.data["output"]["url"] == f"{server.url}/hop/{status}"
    assert completed.data["output"]["redirected_to"] == f"{server.url}/echo/landed"


async def test_a_redirect_to_another_host_fails_naming_both(
    server: Server, runtime_factory: Any
) -> None:
    call = {
        "url": "{{ state.base }}/away",
        "headers": {"Authorization": "Bearer {{ state.token }}"},
        "retry": FAST_RETRY.model_dump(),
    }
    result = await run(runtime_factory, call, server)
    assert result.status == "failed"
    error = result.error or ""
    hosts = f"from host http://127.0.0.1:{server.port} to host http://localhost:{server.port}"
    assert hosts in error
    assert server.requests_to("/echo/away") == []
    assert attempts(result) == 1


async def test_a_slow_answer_runs_into_the_timeout(server: Server, runtime_factory: Any) -> None:
    call = {"url": "{{ state.base }}/slow", "timeout": "300ms", "retry": 2}
    started = asyncio.get_running_loop().time()
    result = await run(runtime_factory, call, server)
    assert result.status == "failed"
    assert "timed out" in (result.error or "")
    assert len(server.requests_to("/slow")) == 2  # timeouts are retried
    assert asyncio.get_running_loop().time() - started < 5


@pytest.mark.parametrize("path", ["/huge", "/huge-stream"])
async def test_an_answer_over_max_bytes_fails(
    server: Server, runtime_factory: Any, path: str
) -> None:
    call = {"url": "{{ state.base }}" + path, "output": "answer", "max_bytes": MIB}
    result = await run(runtime_factory, call, server)
    assert result.status == "failed"
    assert "larger than max_bytes (1,048,576 bytes)" in (result.error or "")
    assert attempts(result) == 1


@pytest.mark.parametrize(
    ("call", "item", "reason", "sent"),
    [
        (
            {"url": "{{ state.base }}/echo/x", "headers": {"X-Name": "{{ state.item }}"}},
            "a\r\nX-Evil: 1",
            "headers.X-Name: rendered a value HTTP headers cannot carry",
            0,
        ),
        (
            {"url": "{{ state.base }}/echo/x", "fields": {"first": "items.5.id"}},
            "widget",
            "the answer has no 'items.5.id' (items is a list of 2)",
            1,
        ),
        ({"url": "{{ state.item }}"}, "http://me:pw@127.0.0.1:1/", "user info is not allowed", 0),
        ({"url": "{{ state.item }}"}, "file:///etc/passwd", "not an http(s) URL", 0),
    ],
)
async def test_what_another_attempt_cannot_fix_fails_at_once(
    server: Server, runtime_factory: Any, call: dict[str, Any], item: str, reason: str, sent: int
) -> None:
    call = {**call, "retry": FAST_RETRY.model_dump()}
    result = await run(runtime_factory, call, server, item=item)
    assert result.status == "failed"
    assert reason in (result.error or "")
    assert len(server.seen) == sent
    assert attempts(result) == 1


@pytest.mark.parametrize(
    ("call", "field", "reason"),
    [
        ({"output": "nope"}, "output", "unknown state key 'nope'"),
        ({"fields": {"nada": "items.0.id"}}, "fields.nada", "unknown state key 'nada'"),
        ({"headers": {"X-Trace": "{{ state.nope }}"}}, "headers.X-Trace", "'nope'"),
        ({"body": {"user": {"name": "{{ state.nope }}"}}}, "body.user.name", "'nope'"),
        ({"headers": {"Idempotency-Key": "mine"}}, "headers", "sets 'Idempotency-Key'"),
    ],
)
def test_compile_errors_name_the_node_and_field(
    call: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(WorkflowDefinitionError) as caught:
        workflow({"url": "{{ state.base }}/echo", **call})
    error = caught.value
    assert (error.file, error.node, error.field) == ("http.yaml", "call", field)
    assert reason in str(error)


def test_importing_the_package_does_not_import_httpx() -> None:
    code = "import sys, agent_node, agent_node.nodes.http; print('httpx' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
