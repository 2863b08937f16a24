"""HTTP/2 on a node's HTTP port (agent_node.http2.asgi): a real ``agent-node
serve`` over mutual TLS called by httpx with HTTP/2 (ALPN ``h2``), apps served
by the node's transport, and the connection driven frame by frame by a raw
h2 client for what well-behaved clients never send."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import h2.events
import hpack
import httpx
import pytest
from support.certs import make_certs
from support.h2_client import Raw
from support.h2_plain import plain_http2
from support.nodes import ADA, greeter_config, serving_config, serving_mtls
from support.served import served
from support.tls import caller_context

from agent_node.http2.connection import UNREAD_LIMIT
from agent_node.http2.frames import PREFACE
from agent_node.scope import CALLER, WHEN_GONE, WhenGone
from agent_node.security.tls import server_context

V10 = {"a2a-version": "1.0"}


def message(method: str = "SendMessage", key: str = "m1") -> dict[str, Any]:
    parts = [{"data": {"name": "Ada Lovelace"}}]
    params = {"message": {"role": "ROLE_USER", "messageId": key, "parts": parts}}
    return {"jsonrpc": "2.0", "id": key, "method": method, "params": params}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("h2")
    certs = make_certs(folder / "certs", "greeter", "alice")
    (folder / "node").mkdir()
    with serving_mtls(folder / "node", certs) as url:
        yield url, certs


def client(certs: Path, name: str | None = "alice", http2: bool = True) -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=http2, verify=caller_context(certs, name), timeout=20)


async def test_a_client_that_offers_http2_gets_it_on_every_binding(
    node: tuple[str, Path],
) -> None:
    url, certs = node
    async with client(certs) as c:
        card = await c.get(f"{url}/.well-known/agent-card.json")
        assert card.http_version == "HTTP/2" and card.status_code == 200
        assert card.json()["name"]
        sent = await c.post(f"{url}/a2a", json=message(), headers=V10)
        assert sent.http_version == "HTTP/2"
        task = sent.json()["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        assert task["artifacts"][0]["parts"][0]["data"] == ADA
        got = await c.post(
            f"{url}/a2a",
            json={"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task["id"]}},
            headers=V10,
        )
        assert got.json()["result"]["id"] == task["id"]
        rest = await c.post(f"{url}/a2a/message:send", json=message()["params"], headers=V10)
        assert rest.http_version == "HTTP/2" and rest.status_code == 200, rest.text
        assert rest.json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    async with client(certs, http2=False) as c:  # the others: HTTP/1.1, as before
        card = await c.get(f"{url}/.well-known/agent-card.json")
        assert card.http_version == "HTTP/1.1" and card.status_code == 200


async def test_many_event_streams_share_one_connection(node: tuple[str, Path]) -> None:
    url, certs = node

    async def follow(c: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
        events = []
        body = message("SendStreamingMessage", key)
        async with c.stream("POST", f"{url}/a2a", json=body, headers=V10) as response:
            assert response.http_version == "HTTP/2"
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:])["result"])
        return events

    async with client(certs) as c:
        streams = await asyncio.gather(*(follow(c, f"s{i}") for i in range(40)))
        assert len(c._transport._pool.connections) == 1  # type: ignore[attr-defined]
    for events in streams:
        last = events[-1]
        state = (last.get("statusUpdate") or last.get("task") or {}).get("status", {})["state"]
        assert state == "TASK_STATE_COMPLETED", events


def test_curl_streams_a_task_over_http2(node: tuple[str, Path]) -> None:
    """curl speaks HTTP/2 through nghttp2: a client of another implementation."""
    import shutil
    import subprocess

    assert shutil.which("curl"), "curl is needed (.ci/run installs it)"
    url, certs = node
    tls = ["--cacert", str(certs / "ca.pem"), "--cert", str(certs / "alice.pem")]
    tls += ["--key", str(certs / "alice-key.pem")]
    body = json.dumps(message("SendStreamingMessage", "curl-1"))
    headers = ["-H", "content-type: application/json", "-H", "a2a-version: 1.0"]
    done = subprocess.run(
        ["curl", "-sS", "-N", "--http2", "-D", "-", *tls, *headers, "-d", body, f"{url}/a2a"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("HTTP/2 200"), done.stdout[:200]
    events = [json.loads(line[5:]) for line in done.stdout.splitlines() if line.startswith("data:")]
    assert events[-1]["result"]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


@pytest.mark.parametrize("body", ["{}", json.dumps(message())])
def test_curl_gets_an_answer_given_before_its_body_was_read(
    node: tuple[str, Path], body: str
) -> None:
    """A 401 is answered before the request's body is read. RFC 9113 lets a
    server then reset the stream with NO_ERROR, but curl before 8 (Debian
    12's 7.88) takes that reset for a failure of the request it was
    answered: "(92) Stream error in the HTTP/2 framing layer", nothing
    shown. The node lets the body come in instead."""
    import shutil
    import subprocess

    assert shutil.which("curl"), "curl is needed (.ci/run installs it)"
    url, certs = node
    for _ in range(8):
        done = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", str(certs / "ca.pem"), "-d", body, f"{url}/a2a"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert "client certificate is required" in done.stdout, done.stdout


@pytest.mark.parametrize("size", [(1 << 20) + 100_000, 5 << 20])
async def test_a_body_over_the_node_s_limit_is_answered_413_over_http2(
    node: tuple[str, Path], size: int
) -> None:
    """As over HTTP/1.1, at once: the client is not left sending into a
    window that never opens (a 1.1 MB body timed out, found by a walk with
    httpx and the a2a-sdk on HTTP/2)."""
    url, certs = node
    async with client(certs) as c:
        began = asyncio.get_running_loop().time()
        headers = {"content-type": "application/json", **V10}
        refused = await c.post(f"{url}/a2a", content=b"x" * size, headers=headers)
        assert refused.http_version == "HTTP/2" and refused.status_code == 413
        assert asyncio.get_running_loop().time() - began < 5
        sent = await c.post(f"{url}/a2a", json=message(key="after-413"), headers=V10)
        assert sent.status_code == 200  # the connection serves on


async def test_the_same_policy_holds_over_http2(node: tuple[str, Path]) -> None:
    url, certs = node
    async with client(certs, name=None) as c:  # no client certificate
        refused = await c.post(f"{url}/a2a", json=message(), headers=V10)
        assert refused.http_version == "HTTP/2"
        assert refused.status_code == 401
        assert "client certificate is required" in refused.json()["error"]["message"]


async def test_headers_over_the_cap_are_refused_and_the_connection_serves_on(
    node: tuple[str, Path],
) -> None:
    url, certs = node
    async with client(certs) as c:
        huge = {f"x-h{i}": "v" for i in range(150)}  # limits.max_headers: 100
        refused = await c.get(f"{url}/.well-known/agent-card.json", headers=huge)
        assert refused.http_version == "HTTP/2" and refused.status_code == 431
        assert "more than 100 header fields" in refused.text
        card = await c.get(f"{url}/.well-known/agent-card.json")
        assert card.status_code == 200
        assert len(c._transport._pool.connections) == 1  # type: ignore[attr-defined]


async def test_listen_http2_false_serves_http1_only(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", "greeter", "alice")
    config = greeter_config(tmp_path)
    text = config.read_text().replace("port: 0}", "port: 0, http2: false}", 1)
    assert "http2: false" in text
    config.write_text(text)
    tls = ["--cert-dir", str(certs), "--identity", "greeter"]
    with serving_config(tmp_path, config, tls) as url:
        async with client(certs) as c:
            card = await c.get(f"{url}/.well-known/agent-card.json")
    assert card.status_code == 200 and card.http_version == "HTTP/1.1"


# -- apps served by the node's transport, over TLS with ALPN ---------------------


class Recorder:
    """An app whose answers the tests choose by path, recording what it saw."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.told = asyncio.Event()
        self.received = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(scope)
        path = scope["path"]
        if path == "/echo":
            body = b""
            while True:
                part = await receive()
                body += part.get("body", b"")
                if not part.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        elif path == "/count":  # reads what comes, answers how much
            while True:
                part = await receive()
                self.received += len(part.get("body", b""))
                if part["type"] == "http.disconnect" or not part.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 413, "headers": []})
            await send({"type": "http.response.body", "body": str(self.received).encode()})
        elif path == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(5):
                chunk = bytes(range(256)) * 4096  # 1 MiB
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/stream":
            when_gone: WhenGone = scope[WHEN_GONE]
            when_gone.callback = self.told.set
            start = {"type": "http.response.start", "status": 200}
            start["headers"] = [(b"content-type", b"text/event-stream"), (b"connection", b"x")]
            await send(start)
            await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
            while (await receive())["type"] != "http.disconnect":
                pass
            self.gone.set()
        elif path == "/slow":
            await asyncio.sleep(0.5)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"late"})
        elif path == "/crash":
            raise RuntimeError("boom")
        elif path == "/crash-after-start":  # its 200 never went out: a 500 does
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("boom")
        else:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    return make_certs(tmp_path / "certs", "node", "alice")


def tls_of(certs: Path) -> Any:
    return server_context(certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])


async def test_bodies_bigger_than_every_window_flow_both_ways(certs: Path) -> None:
    app = Recorder()
    async with served(app, tls_of(certs)) as url, client(certs) as c:
        payload = bytes(range(256)) * 3000  # 768 KB up
        echoed = await c.post(f"{url}/echo", content=payload)
        assert echoed.http_version == "HTTP/2" and echoed.content == payload
        big = await c.get(f"{url}/big")  # 5 MiB down, over the 64 KiB default window
        assert big.content == (bytes(range(256)) * 4096) * 5
        scope = app.seen[0]
        assert scope["http_version"] == "2" and scope["scheme"] == "https"
        assert scope[CALLER] == "spiffe://example.org/agent/alice"
        assert scope["extensions"]["tls"]["client_cert_chain"][0].startswith("-----BEGIN")
        assert (b"host", url.removeprefix("https://").encode()) in scope["headers"]


async def test_a_body_over_the_limit_is_not_kept(certs: Path) -> None:
    app = Recorder()
    async with served(app, tls_of(certs)) as url, client(certs) as c:
        refused = await c.post(f"{url}/count", content=b"x" * (3 << 20))
        assert refused.status_code == 413
        # limits.max_body_bytes (1 MiB) and a frame kept; the rest dropped unread
        assert 1 << 20 <= app.received <= (1 << 20) + 2 * 16384


async def test_a_stream_whose_client_leaves_is_told(certs: Path) -> None:
    app = Recorder()
    async with served(app, tls_of(certs)) as url:
        c = client(certs)
        async with c.stream("GET", f"{url}/stream") as response:
            assert response.headers["content-type"] == "text/event-stream"
            assert "connection" not in response.headers  # HTTP/2 forbids it
            async for line in response.aiter_lines():
                assert line == "data: 1"
                break
            await c.aclose()  # the connection is gone: the app hears it both ways
            await asyncio.wait_for(app.told.wait(), 5)
            await asyncio.wait_for(app.gone.wait(), 5)


async def test_a_stream_still_open_when_the_stop_s_grace_ends_is_ended(
    certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    import uvicorn

    from agent_node.transport import uvicorn_config, uvicorn_server

    app = Recorder()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server: uvicorn.Server = uvicorn_server(uvicorn_config(app, tls_of(certs)))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    url = f"https://127.0.0.1:{sock.getsockname()[1]}"
    async with client(certs) as c, c.stream("GET", f"{url}/stream") as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "data: 1"
        server.should_exit = True  # the grace (5 s) passes with the stream open
        rest = [line async for line in lines]  # ended, not cut off: no error here
    await asyncio.wait_for(serving, 15)
    sock.close()
    assert rest == [""]
    assert "stopped with GET /stream still running: its response was ended" in caplog.text


async def test_an_app_error_is_a_500_and_the_connection_serves_on(certs: Path) -> None:
    async with served(Recorder(), tls_of(certs)) as url, client(certs) as c:
        crashed = await c.get(f"{url}/crash")
        assert crashed.status_code == 500
        crashed = await c.get(f"{url}/crash-after-start")
        assert crashed.status_code == 500 and crashed.text == "Internal Server Error"
        assert (await c.get(f"{url}/")).status_code == 204
        head = await c.head(f"{url}/big")  # the app writes a body; HEAD's answer has none
        assert head.status_code == 200 and head.content == b""
        assert (await c.get(f"{url}/")).status_code == 204


async def test_http2_can_be_turned_off(certs: Path) -> None:
    async with served(Recorder(), tls_of(certs), http2=False) as url, client(certs) as c:
        answer = await c.get(f"{url}/")
        assert answer.http_version == "HTTP/1.1" and answer.status_code == 204


# -- the connection itself, frame by frame (plain TCP, no TLS) -------------------


class Rig:
    """An :class:`AsgiConnection` server on plain TCP, and raw clients of it."""

    def __init__(self, port: int, app: Recorder, connections: set[Any]) -> None:
        self.port, self.app, self.connections = port, app, connections
        self.opened: list[Raw] = []

    async def open(self) -> Raw:
        raw = await Raw.open(self.port)
        self.opened.append(raw)
        return raw


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    app = Recorder()
    async with plain_http2(app, keep_alive=0.5) as server:
        found = Rig(server.port, app, server.connections)
        yield found
        for raw in found.opened:
            await raw.close()


async def test_a_stop_lets_streams_in_flight_answer_and_refuses_new_ones(
    rig: Rig,
) -> None:
    raw = await rig.open()
    slow = raw.request("/slow", None, content_type="text/plain")
    await raw.read()
    (connection,) = rig.connections
    connection.shutdown()
    late = raw.request("/", None, content_type="text/plain")
    events = await raw.closed()
    refused = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in refused] == [(late, 7)]  # REFUSED_STREAM
    ended = [e for e in events if isinstance(e, h2.events.StreamEnded)]
    assert [e.stream_id for e in ended] == [slow]  # answered whole, before the GOAWAY
    assert [e.data for e in events if isinstance(e, h2.events.DataReceived)] == [b"late"]
    assert isinstance(events[-1], h2.events.ConnectionTerminated)
    assert not rig.connections


async def test_a_stream_its_client_resets_is_told_and_the_connection_serves_on(
    rig: Rig,
) -> None:
    app, raw = rig.app, await rig.open()
    sid = raw.request("/stream", None, content_type="text/plain")
    while not any(isinstance(e, h2.events.DataReceived) for e in raw.events):
        await raw.read()
    raw.h2.reset_stream(sid)
    raw.flush()
    await asyncio.wait_for(app.told.wait(), 5)
    await asyncio.wait_for(app.gone.wait(), 5)
    again = raw.request("/", None, content_type="text/plain")
    assert (await raw.answer(again))[":status"] == "204"


async def test_malformed_requests_are_reset_and_a_reset_flood_ends_the_connection(
    rig: Rig,
) -> None:
    app, raw = rig.app, await rig.open()
    raw.h2.config.validate_outbound_headers = False
    sid = raw.h2.get_next_available_stream_id()  # no :path
    raw.h2.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "t")])
    raw.flush()
    assert await raw.answer(sid) == {}
    reset = [e for e in raw.events if isinstance(e, h2.events.StreamReset)]
    assert reset[0].error_code == 1  # PROTOCOL_ERROR
    assert not app.seen
    for _ in range(300):  # open and reset at once: the rapid reset attack
        sid = raw.request("/slow", None, content_type="text/plain")
        raw.h2.reset_stream(sid)
        raw.flush()
    events = await raw.closed()
    ended = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert ended and ended[0].error_code == 0xB  # ENHANCE_YOUR_CALM
    assert len(app.seen) <= 256


async def test_an_idle_connection_is_closed_with_a_goaway(
    rig: Rig,
) -> None:
    raw = await rig.open()
    sid = raw.request("/", None, content_type="text/plain")
    assert (await raw.answer(sid))[":status"] == "204"
    events = await raw.closed()  # keep_alive: 0.5 s
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    assert not rig.connections


async def test_a_connection_whose_only_request_was_refused_is_still_closed_when_idle(
    rig: Rig,
) -> None:
    """A request refused before the app saw it (431 here) opened no stream:
    the connection is idle as before it (before: its idle timer was dropped
    and the connection held open for good)."""
    raw = await rig.open()
    fields = {f"x-{n}": "v" for n in range(101)}  # max_headers: 100
    sid = raw.request("/", None, content_type="text/plain", **fields)
    assert (await raw.answer(sid))[":status"] == "431"
    events = await raw.closed()  # keep_alive: 0.5 s
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    assert not rig.connections


async def test_a_client_that_sends_without_reading_is_not_read_from_until_it_reads() -> None:
    """The ping flood (CVE-2019-9512): PINGs sent, their ACKs never read.
    The server stops reading once UNREAD_LIMIT bytes wait for the client,
    so what it queues stays bounded; once the client reads, every PING is
    answered and the connection serves on."""
    async with plain_http2(Recorder(), keep_alive=60) as server:
        await ping_flood(server.port, server.connections)


async def ping_flood(port: int, connections: set[Any]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(PREFACE + frame(4, 0, 0, b""))
    pings = frame(6, 0, 0, b"12345678") * 10_000  # 170 KB
    sent, stalled = 0, False
    while sent < 600_000:
        writer.write(pings)
        sent += 10_000
        try:
            await asyncio.wait_for(writer.drain(), 1.0)
        except TimeoutError:
            stalled = True  # the server stopped reading
            break
    assert stalled, "the server read 10 MB of PINGs whose answers nobody read"
    (connection,) = connections
    assert connection.transport.get_write_buffer_size() < UNREAD_LIMIT + 256 * 1024
    frames = FrameReader(reader)
    reading = asyncio.ensure_future(writer.drain())
    acks = 0
    while acks < sent:
        kind, flags, _ = await frames.next()
        acks += kind == 6 and flags & 1
    await reading
    assert acks == sent
    request = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "t")]
    writer.write(frame(1, 5, 1, hpack.Encoder().encode(request)))
    while (await frames.next())[::2] != (1, 1):  # HEADERS on stream 1: answered
        pass
    writer.close()


def frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


class FrameReader:
    """Frames as a server sends them: (type, flags, stream id)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader, self.buffer = reader, b""

    async def next(self) -> tuple[int, int, int]:
        while True:
            if len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) >= 9 + length:
                    kind, flags = self.buffer[3], self.buffer[4]
                    sid = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
                    self.buffer = self.buffer[9 + length :]
                    return kind, flags, sid
            self.buffer += await asyncio.wait_for(self.reader.read(1 << 20), 5)
