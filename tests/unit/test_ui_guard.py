"""Where the UI's guard (agent_node/ui/guard.py) sends a browser that opened
an address with the right token: the same path of this server, never
another site (``GET //evil.com/?token=…`` was answered ``303 Location:
//evil.com/``, an open redirect)."""

from __future__ import annotations

import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from agent_node.ui.guard import Guard

TOKEN = "a-token-of-sixteen-chars"
PORT = 8480


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("the page")(scope, receive, send)


async def opened(path: str, query: str) -> tuple[int, dict[str, str]]:
    """The status and headers the guard answers ``GET path?query`` with."""
    guard = Guard(page, TOKEN)
    guard.port = PORT
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"host", f"127.0.0.1:{PORT}".encode())],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        ("/", f"token={TOKEN}&view=x", "/?view=x"),
        ("/api/nodes", f"token={TOKEN}", "/api/nodes"),
        ("//evil.com/", f"token={TOKEN}", "/evil.com/"),
        ("///evil.com", f"token={TOKEN}&a=b", "/evil.com?a=b"),
        ("/\\evil.com/", f"token={TOKEN}", "/%5Cevil.com/"),
        ("/a\r\nSet-Cookie: x=y", f"token={TOKEN}", "/a%0D%0ASet-Cookie:%20x=y"),
    ],
)
async def test_the_token_is_exchanged_for_a_path_of_this_server(
    path: str, query: str, location: str
) -> None:
    status, headers = await opened(path, query)
    assert status == 303
    assert headers["location"] == location
    assert headers["set-cookie"].startswith(f"agent_node_ui_{PORT}={TOKEN};")
