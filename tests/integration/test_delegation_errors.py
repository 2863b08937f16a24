"""A peer's bad answers: what parks, what fails, and what the caller reads.

A peer that answers HTTP 500 with an HTML page, 503, or 429 with
``Retry-After`` is busy or broken for now: the delegation stays parked in
``sending`` (the error kept on its row) and is tried again after a backoff,
the peer's ``Retry-After`` honoured, until the node's ``timeout``. A
JSON-RPC error saying the request is wrong, or a 200 that is not JSON-RPC,
fails it at once. Every error our caller reads names the peer by name and
says what was wrong; none carries a URL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from support.delegation_rig import Rig, delegating, rig


@pytest.fixture
async def r(store_url: str) -> AsyncIterator[Rig]:
    async with rig(store_url) as made:
        yield made


def _sends(r: Rig, response: httpx.Response, times: int = 10**9) -> list[dict[str, Any]]:
    """Answer the first ``times`` sends with ``response``; the sends seen."""
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> httpx.Response | None:
        if body["method"] == "SendMessage":
            seen.append(body)
            if len(seen) <= times:
                return response
        return None

    r.peer.answer = answer
    return seen


HTML_500 = httpx.Response(
    500,
    headers={"content-type": "text/html"},
    text="<html><body><h1>Internal Server Error</h1> see http://10.0.0.7:8080/debug</body></html>",
)


async def test_an_html_500_parks_the_delegation_and_it_completes_when_the_peer_recovers(
    r: Rig,
) -> None:
    seen = _sends(r, HTML_500, times=2)
    execution_id = await r.start(delegating("hello"))
    await r.drive()
    row = await r.row(execution_id)
    assert row is not None and row.state == "sending"
    assert row.last_error == (
        "peer 'p' answered SendMessage with HTTP 500 (text/html): Internal Server Error see <url>"
    )
    assert row.next_poll_at > time.time()  # backed off
    record = await r.finish(execution_id)
    assert record.status == "completed" and len(seen) == 3


async def test_a_peer_that_stays_broken_fails_at_the_timeout_naming_it(r: Rig) -> None:
    _sends(r, HTML_500)
    execution_id = await r.start(delegating("hello", "timeout: 1s"))
    await r.drive()
    deadline = time.time() + 10
    while time.time() < deadline:
        record = await r.runtime.store.get(execution_id)
        assert record is not None
        if record.status == "failed":
            break
        await r.due_now(execution_id)
        await r.drive()
        await asyncio.sleep(0.05)
    assert record.status == "failed"
    assert record.error is not None
    assert "no result from the peer in time" in record.error
    assert "peer 'p' answered SendMessage with HTTP 500 (text/html)" in record.error
    assert "://" not in record.error


async def test_retry_after_is_honoured(r: Rig) -> None:
    _sends(r, httpx.Response(429, headers={"retry-after": "120"}, text="slow down"), times=1)
    execution_id = await r.start(delegating("hello"))
    before = time.time()
    await r.drive()
    row = await r.row(execution_id)
    assert row is not None and row.state == "sending"
    assert row.next_poll_at >= before + 119


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            httpx.Response(
                200,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "error": {"code": -32602, "message": "bad params, see https://x.internal/"},
                },
            ),
            "peer 'p' refused SendMessage: bad params, see <url>",
        ),
        (
            httpx.Response(200, headers={"content-type": "text/html"}, text="<p>Welcome</p>"),
            "peer 'p' answered SendMessage with HTTP 200 (text/html): Welcome",
        ),
        (
            httpx.Response(404, text="no such route"),
            "peer 'p' answered SendMessage with HTTP 404 (text/plain): no such route",
        ),
    ],
)
async def test_a_refusal_fails_at_once(r: Rig, response: httpx.Response, reason: str) -> None:
    seen = _sends(r, response)
    execution_id = await r.start(delegating("hello"))
    await r.drive()
    record = await r.runtime.store.get(execution_id)
    assert record is not None and record.status == "failed"
    assert record.error == f"delegate node 'hand': {reason}"
    assert len(seen) == 1 and await r.row(execution_id) is None


async def test_a_refusal_routes_to_on_failed(r: Rig) -> None:
    _sends(r, httpx.Response(400, text="nope"))
    execution_id = await r.start(delegating("hello", "on_failed: failed"))
    await r.drive()
    record = await r.finish(execution_id)
    assert record.status == "completed"
    events = await r.runtime.store.events(execution_id)
    assert [e.node for e in events if e.kind == "node_completed"] == ["hand", "failed"]


async def test_a_peer_that_keeps_failing_on_the_send_is_not_sent_it_again(r: Rig) -> None:
    """-32603 is worth trying again, but each send the peer took and failed
    on may have run its work (a2a-sdk does not deduplicate sends): after a
    few in a row the delegation fails, saying so (found by an integrator's
    walk: 24 tasks at the peer for one delegation, and an error that said
    the peer 'did not answer' and 'refused')."""
    boom = {"code": -32603, "message": "boom inside the executor"}
    failing = httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "error": boom})
    seen = _sends(r, failing)
    execution_id = await r.start(delegating("hello"))
    record = await r.finish(execution_id)
    assert record.status == "failed", record
    assert len(seen) == 4, len(seen)
    assert record.error is not None
    assert "peer 'p' failed on SendMessage: boom inside the executor" in record.error
    assert "4 times in a row; not sent again" in record.error


# -- answers no peer should send (a hostile peer's walk) ----------------------

_COMPLETED_WITH = (
    b'{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t1","contextId":"c",'
    b'"status":{"state":"TASK_STATE_COMPLETED"},"artifacts":[{"artifactId":"a",'
    b'"parts":[{"data":%s}]}]}}}'
)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # Nested past what Python's JSON reader takes: it was retried forever,
        # a traceback each time ("unexpected failure; will retry").
        (
            b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 200_000 + b"]" * 200_000 + b"}",
            "answered SendMessage with HTTP 200 (application/json, JSON nested too deeply)",
        ),
        # Numbers JSON has no room for, and fields of the wrong types: the
        # delegation hung until its timeout (5 minutes by default).
        (
            _COMPLETED_WITH % b'{"summary":NaN,"words":1e999}',
            "peer 'p' answered SendMessage with HTTP 200 (application/json, NaN is not JSON)",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"result":{"task":{"id":5,"contextId":[],'
            b'"status":"done","artifacts":{"a":1}}}}',
            "peer 'p' answered SendMessage with a task whose id is not a string",
        ),
    ],
    ids=["nested", "nan", "wrong-types"],
)
async def test_an_answer_no_peer_should_send_fails_the_delegation_at_once(
    r: Rig, body: bytes, reason: str
) -> None:
    seen = _sends(
        r, httpx.Response(200, headers={"content-type": "application/json"}, content=body)
    )
    execution_id = await r.start(delegating("hello"))
    await r.drive()
    record = await r.runtime.store.get(execution_id)
    assert record is not None and record.status == "failed", (record, await r.row(execution_id))
    assert record.error is not None and reason in record.error, record.error
    assert len(seen) == 1


class _Endless(httpx.AsyncByteStream):
    """A body that goes on and on (and counts what was taken of it)."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t1","metadata":{"x":"'
        while True:
            self.sent += 64 * 1024
            yield b"a" * (64 * 1024)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_answer_too_large_is_not_read_past_the_cap(
    r: Rig, monkeypatch: pytest.MonkeyPatch, declared: bool
) -> None:
    """A 700 MiB answer was read whole into the caller's memory (RSS 86 →
    815 MB): an answer is read up to ``MAX_ANSWER_BYTES``, and fails for good
    past it."""
    from agent_node.a2a.peers import calls

    monkeypatch.setattr(calls, "MAX_ANSWER_BYTES", 1024 * 1024)
    endless = _Endless()
    headers = {"content-type": "application/json"}
    if declared:
        headers["content-length"] = str(700 * 1024 * 1024)
    _sends(r, httpx.Response(200, headers=headers, stream=endless))
    execution_id = await r.start(delegating("hello"))
    await r.drive()
    record = await r.runtime.store.get(execution_id)
    assert record is not None and record.status == "failed", record
    assert record.error is not None
    assert "peer 'p' answered SendMessage with more than 1048576 bytes" in record.error
    assert endless.sent <= (0 if declared else 1024 * 1024 + 64 * 1024)
