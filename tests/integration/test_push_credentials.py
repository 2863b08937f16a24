"""Credentials of our own on pushes (``push.credentials``): a real webhook and
a real OAuth 2.0 token endpoint on loopback, a node's task service on SQLite.
Tokens are fetched once and shared by pushes, renewed when the receiver
answers 401, never written to the store; the caller's own ``authentication``
wins; the longest URL prefix decides; a refused token endpoint gives up
saying why without the secret."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.served import served
from support.webhook import Receiver, receiving
from support.workflows import echo

from agent_node import Runtime, load_workflow
from agent_node.a2a.protocol.models import (
    AuthenticationInfo,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskPushNotificationConfig,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import PushSettings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "cs-push-secret"
CTX = CallContext()


class Endpoint:
    """An OAuth 2.0 token endpoint: numbered tokens, or a refusal."""

    def __init__(self) -> None:
        self.issued = 0
        self.status = 200

    async def token(self, request: Request) -> JSONResponse:
        if self.status != 200:
            return JSONResponse({"error": "invalid_client"}, self.status)
        self.issued += 1
        return JSONResponse({"access_token": f"tok-{self.issued}", "expires_in": 600})


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    state = Endpoint()
    app = Starlette(routes=[Route("/token", state.token, methods=["POST"])])
    async with served(app, None) as url:
        yield state, f"{url}/token"


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


@asynccontextmanager
async def node(store: str, credentials: list[dict[str, Any]]) -> AsyncIterator[TaskService]:
    settings = PushSettings.model_validate({"allow": ["127.0.0.0/8"], "credentials": credentials})
    async with Runtime(store, scope="all", poll_interval=0.05) as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"echo": echo().compile(), "book": book})
        service.push = PushSender(
            runtime.store, service.render_push, settings, owner=str(runtime.engine.owner), poll=0.05
        )
        await service.push.start()
        try:
            yield service
        finally:
            await service.push.close()


def send(
    text: str, push: TaskPushNotificationConfig | None, skill: str, task: str | None = None
) -> SendMessageRequest:
    message = Message(message_id=f"m-{text}", role=Role.USER, parts=[Part(text=text)], task_id=task)
    config = SendMessageConfiguration(task_push_notification_config=push) if push else None
    return SendMessageRequest(message=message, configuration=config, metadata={"skill": skill})


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_oauth2_token_is_shared_renewed_on_401_and_never_stored(
    tmp_path: Path, endpoint: tuple[Endpoint, str], hook: Receiver
) -> None:
    state, token_url = endpoint
    (tmp_path / "secret").write_text(SECRET)
    rule = {
        "url": f"{hook.url}/hooks/",
        "auth": {
            "oauth2": {
                "token_url": token_url,
                "client_id": "node-a",
                "client_secret": {"file": str(tmp_path / "secret")},
            }
        },
    }
    store = f"sqlite:///{tmp_path / 'node.db'}"
    async with node(store, [rule]) as service:
        hook.fail_with = [401]  # the first token is refused: a new one, once
        push = TaskPushNotificationConfig(url=f"{hook.url}/hooks/a", id="p")
        asked = (await service.send_message(send("Lisbon", push, "book"), CTX)).task
        assert asked is not None
        await hook.wait_for(lambda pushes: len(pushes) == 1, "the input-required push")
        await service.send_message(send("May", None, "book", asked.id), CTX)
        await hook.wait_for(lambda pushes: len(pushes) == 2, "the completed push")
        other = TaskPushNotificationConfig(url=f"{hook.url}/hooks/b", id="q")
        await service.send_message(send("hi", other, "echo"), CTX)
        await hook.wait_for(lambda pushes: len(pushes) == 3, "another task's push")
        tokens = [p.headers.get("authorization") for p in hook.pushes]
        assert tokens == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2", "Bearer tok-2"]
        assert [p.status for p in hook.pushes] == [401, 200, 200, 200]
        assert state.issued == 2
        (stored,) = await service.runtime.store.push_configs(asked.id)
        assert stored.last_error is None
    for path in tmp_path.glob("node.db*"):  # the store, its WAL: no token, no secret
        data = path.read_bytes()
        assert b"tok-" not in data and SECRET.encode() not in data, path.name


async def test_the_caller_s_authentication_wins_and_keys_go_along(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_KEY", "k-123")
    monkeypatch.setenv("HOOK_TOKEN", "ours")
    monkeypatch.setenv("SPECIAL_TOKEN", "special")
    rules = [
        {"url": f"{hook.url}/", "auth": {"bearer": {"env": "HOOK_TOKEN"}}},
        {"url": f"{hook.url}/special/", "auth": {"bearer": {"env": "SPECIAL_TOKEN"}}},
        {
            "url": f"{hook.url}/keyed",
            "auth": {"api_key": {"env": "HOOK_KEY"}, "api_key_header": "X-Hook-Key"},
        },
    ]
    async with node(f"sqlite:///{tmp_path / 'node.db'}", rules) as service:
        theirs = AuthenticationInfo(scheme="Bearer", credentials="caller-cred")
        configs = [
            TaskPushNotificationConfig(url=f"{hook.url}/plain", id="1"),
            TaskPushNotificationConfig(url=f"{hook.url}/special/x", id="2"),
            TaskPushNotificationConfig(url=f"{hook.url}/keyed/x", id="3", authentication=theirs),
            TaskPushNotificationConfig(url=f"{hook.url}/special/y", id="4", authentication=theirs),
        ]
        for config in configs:
            await service.send_message(send(config.id, config, "echo"), CTX)
        await hook.wait_for(lambda pushes: len(pushes) == 4, "four pushes")
    by_path = {p.path: p.headers for p in hook.pushes}
    assert by_path["/plain"]["authorization"] == "Bearer ours"
    assert by_path["/special/x"]["authorization"] == "Bearer special"  # the longest prefix
    assert by_path["/keyed/x"]["authorization"] == "Bearer caller-cred"  # the caller's word
    assert by_path["/keyed/x"]["x-hook-key"] == "k-123"
    assert by_path["/special/y"]["authorization"] == "Bearer caller-cred"


async def test_a_refused_token_endpoint_gives_up_saying_why_without_the_secret(
    tmp_path: Path, endpoint: tuple[Endpoint, str], hook: Receiver
) -> None:
    state, token_url = endpoint
    state.status = 401
    (tmp_path / "secret").write_text(SECRET)
    oauth2 = {
        "token_url": token_url,
        "client_id": "a",
        "client_secret": {"file": str(tmp_path / "secret")},
    }
    async with node(
        f"sqlite:///{tmp_path / 'node.db'}", [{"url": hook.url, "auth": {"oauth2": oauth2}}]
    ) as service:
        push = TaskPushNotificationConfig(url=f"{hook.url}/x", id="p")
        task = (await service.send_message(send("hi", push, "echo"), CTX)).task
        assert task is not None

        async def given_up() -> bool:
            (stored,) = await service.runtime.store.push_configs(task.id)
            return stored.settled

        await until(given_up, "the push to be given up")
        (stored,) = await service.runtime.store.push_configs(task.id)
    assert hook.pushes == []
    assert stored.last_error is not None
    assert "its token endpoint refused us (HTTP 401: invalid_client)" in stored.last_error
    assert f"pushes to {hook.url}" in stored.last_error and SECRET not in stored.last_error


def test_push_credentials_are_checked_when_the_configuration_is_read() -> None:
    bearer = {"bearer": {"env": "T"}}
    for bad in (
        {"url": "ftp://hooks.example.com/", "auth": bearer},
        {"url": "https://user@hooks.example.com/", "auth": bearer},
        {"url": "https://hooks.example.com/", "auth": {**bearer, "certificate": False}},
        {
            "url": "https://hooks.example.com/",
            "auth": {"bearer": {"env": "T"}, "api_key": {"env": "K"}},
        },
    ):
        with pytest.raises(ValidationError):
            PushSettings.model_validate({"credentials": [bad]})
    (rule,) = PushSettings.model_validate(
        {"credentials": [{"url": "https://Hooks.Example.com/a2a", "auth": bearer}]}
    ).credentials
    assert rule.covers("https://hooks.example.com/a2a/x") and rule.covers(
        "HTTPS://HOOKS.example.com/a2a"
    )
    assert not rule.covers("https://hooks.example.com/other")
    assert not rule.covers("http://hooks.example.com/a2a/x")
    assert not rule.covers("https://hooks.example.com.evil.org/a2a")
