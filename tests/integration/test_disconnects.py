"""A caller that dies in the middle of sending its request is not an error of
ours: the A2A endpoint and the push receiver drop the request quietly
(found by the chaos run: each SIGKILLed caller left a traceback logged as
ERROR in its peer's log, "Exception in ASGI application" for a push)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message
from support.delegation_rig import rig
from support.fake_handler import FakeHandler

from agent_node.a2a.peers.push_receiver import PushReceiver
from agent_node.a2a.server.jsonrpc import Limits, jsonrpc_endpoint


async def _cut_off(app: ASGIApp, path: str) -> list[Message]:
    """POST half a body to ``path``, then disconnect; what the app sent back."""
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"jsonrpc": "2.0", "me', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"a2a-version", b"1.0")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return sent


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_caller_gone_mid_request_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = jsonrpc_endpoint(FakeHandler(), capabilities={}, limits=Limits())
    app = Starlette(routes=[Route("/a2a", endpoint, methods=["POST"])])
    with caplog.at_level(logging.DEBUG):
        sent = await _cut_off(app, "/a2a")
    assert sent[0]["status"] == 400
    assert _errors(caplog) == []


async def test_a_peer_gone_mid_push_is_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    async with rig("memory://") as r:
        endpoint = PushReceiver(r.runtime, r.watchdog.delegator, require_identity=False).endpoint
        app = Starlette(routes=[Route("/a2a/push", endpoint, methods=["POST"])])
        with caplog.at_level(logging.DEBUG):
            sent = await _cut_off(app, "/a2a/push")
    assert sent[0]["status"] == 400
    assert _errors(caplog) == []
