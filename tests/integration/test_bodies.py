"""A request body as the JSON bindings read it (agent_node.a2a.server.bodies):
sent unencoded, naming each key of its request object once.

A body sent with ``Content-Encoding: gzip`` was read as plain JSON (a
parse error for a real gzip body, the request served for a body that only
claimed to be one): now 415 with ``Accept-Encoding: identity`` (RFC 7694)
on both bindings. A request object naming ``method`` twice was served as
the last one said, while a gateway that reads the first would have routed
or authorized the other: now -32600 (REST: 400), the handler not called."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from support.fake_handler import FakeHandler

from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.limits import Limits
from agent_node.a2a.server.rest import rest_endpoint

V10 = {"A2A-Version": "1.0", "Content-Type": "application/json"}
GET = b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t1"}}'
SEND = b'{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"hi"}]}}'


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler.with_working_task()


@pytest.fixture
async def client(handler: FakeHandler) -> AsyncIterator[httpx.AsyncClient]:
    caps: dict[str, Any] = {}
    app = create_app(
        CardDocument.of({"name": "t"}),
        jsonrpc_endpoint(handler, capabilities=caps, limits=Limits()),
        rest=rest_endpoint(handler, capabilities=caps, limits=Limits()),
        guard=Guard(),
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as made:
        yield made


@pytest.mark.parametrize(
    ("coding", "body"),
    [("gzip", gzip.compress(GET)), ("gzip", GET), ("br", GET), ("identity, gzip", GET)],
    ids=["gzip", "claimed", "br", "two"],
)
async def test_an_encoded_json_rpc_body_is_415_asking_for_identity(
    client: httpx.AsyncClient, handler: FakeHandler, coding: str, body: bytes
) -> None:
    answer = await client.post("/a2a", content=body, headers={**V10, "Content-Encoding": coding})
    assert answer.status_code == 415
    assert answer.headers["accept-encoding"] == "identity"
    error = answer.json()["error"]
    assert error["code"] == -32005
    assert error["message"] == (
        f"Content-Encoding {coding!r} is not accepted: send the body unencoded"
    )
    assert handler.calls == []


async def test_an_encoded_rest_body_is_415_and_identity_is_taken(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    gzipped = {**V10, "Content-Encoding": "gzip"}
    answer = await client.post("/a2a/message:send", content=gzip.compress(SEND), headers=gzipped)
    assert answer.status_code == 415
    assert answer.headers["accept-encoding"] == "identity"
    error = answer.json()["error"]
    assert (error["code"], error["details"][0]["reason"]) == (415, "CONTENT_TYPE_NOT_SUPPORTED")
    assert handler.calls == []
    plain = {**V10, "Content-Encoding": "identity"}
    answer = await client.post("/a2a/message:send", content=SEND, headers=plain)
    assert answer.status_code == 200 and answer.json()["task"]["status"]["state"]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (
            b'{"jsonrpc":"2.0","id":1,"method":"GetTask","method":"CancelTask","params":{"id":"t1"}}',
            "method",
        ),
        # An escape spells the same key: readers decode it before they compare.
        (
            b'{"jsonrpc":"2.0","id":1,"method":"GetTask","met\\u0068od":"CancelTask","params":{"id":"t1"}}',
            "method",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t1"},"params":{"id":"t2"}}',
            "params",
        ),
        (b'{"jsonrpc":"2.0","id":1,"id":2,"method":"GetTask","params":{"id":"t1"}}', "id"),
    ],
    ids=["method", "escaped", "params", "id"],
)
async def test_a_request_object_naming_a_key_twice_is_invalid_request(
    client: httpx.AsyncClient, handler: FakeHandler, body: bytes, key: str
) -> None:
    answer = await client.post("/a2a", content=body, headers=V10)
    error = answer.json()["error"]
    assert (error["code"], error["message"]) == (-32600, f"the request object names {key!r} twice")
    assert handler.calls == []


async def test_keys_named_again_below_the_request_object_are_its_params_own(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    """``id`` is the envelope's and GetTask's: served (and so are requests with
    many keys, read by the second parse)."""
    assert (await client.post("/a2a", content=GET, headers=V10)).json()["result"]["id"] == "t1"
    many = json.loads(GET) | {f"x{n}": n for n in range(20)}
    answer = await client.post("/a2a", content=json.dumps(many), headers=V10)
    assert answer.json()["result"]["id"] == "t1"
    assert [name for name, _, _ in handler.calls] == ["get_task", "get_task"]


async def test_a_rest_body_naming_a_key_twice_is_a_400(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    message = SEND.decode()[len('{"message":') : -1]
    body = f'{{"message":{message},"message":{message}}}'
    answer = await client.post("/a2a/message:send", content=body, headers=V10)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["details"][0]["reason"] == "INVALID_REQUEST"
    assert error["message"] == "the request object names 'message' twice"
    assert handler.calls == []
