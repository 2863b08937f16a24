"""Clients that hold an HTTP/1.1 connection without sending: a real
``agent-node serve`` closes them after ``limits.read_timeout`` (shrunk here
to a second), and a long response or a slow upload that keeps moving is
not cut."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from support.certs import make_certs
from support.nodes import greeter_config, serving_config, serving_mtls
from support.served import served

from agent_node.config import Limits

pytestmark = pytest.mark.slow

READ_TIMEOUT = 1.0
LIST_TASKS = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}).encode()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    directory = tmp_path_factory.mktemp("slow")
    limits = f"limits: {{read_timeout: {READ_TIMEOUT}, max_concurrent_per_caller: 4}}\n"
    with serving_config(directory, greeter_config(directory, limits), ["--insecure-dev"]) as url:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        yield host, int(port)


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    certs = make_certs(tmp_path_factory.mktemp("slow-tls") / "certs", "greeter", "alice")
    directory = tmp_path_factory.mktemp("slow-tls-node")
    with serving_mtls(directory, certs, f"limits: {{read_timeout: {READ_TIMEOUT}}}\n") as url:
        host, port = url.removeprefix("https://").rstrip("/").split(":")
        yield host, int(port)


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address)
    sock.settimeout(READ_TIMEOUT + 5)
    return sock


def answer_of(sock: socket.socket) -> tuple[bytes, float]:
    """What the node sent before closing ``sock``, and when it closed (s from now)."""
    started, received = time.monotonic(), b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except (ssl.SSLEOFError, ConnectionResetError):  # closed without TLS's goodbye
        pass
    return received, time.monotonic() - started


def post(address: tuple[str, int], body: bytes) -> bytes:
    with connect(address) as sock:
        sock.sendall(
            b"POST /a2a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        return answer_of(sock)[0]


def test_a_connection_that_sends_nothing_is_closed(node: tuple[str, int]) -> None:
    sockets = [connect(node) for _ in range(20)]
    for sock in sockets:
        received, after = answer_of(sock)
        assert received == b"" and after < READ_TIMEOUT + 1
        sock.close()


def test_a_tls_handshake_that_does_not_finish_is_dropped(tls_node: tuple[str, int]) -> None:
    sockets = [connect(tls_node) for _ in range(20)]  # no ClientHello
    for sock in sockets:
        received, after = answer_of(sock)
        assert received == b"" and after < READ_TIMEOUT + 1  # asyncio's own: 60 s
        sock.close()


def test_a_tls_connection_without_a_certificate_or_request_is_closed(
    tls_node: tuple[str, int],
) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    sockets = [context.wrap_socket(connect(tls_node)) for _ in range(20)]
    for sock in sockets:
        received, after = answer_of(sock)
        assert received == b"" and after < READ_TIMEOUT + 1
        sock.close()


def test_a_request_head_sent_a_byte_at_a_time_is_cut(node: tuple[str, int]) -> None:
    head = b"POST /a2a HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    with connect(node) as sock:
        started = time.monotonic()
        try:
            for byte in head:  # each byte well within the timeout; the whole head not
                sock.sendall(bytes([byte]))
                time.sleep(READ_TIMEOUT / 5)
        except OSError:  # closed under it
            pass
        received, _ = answer_of(sock)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert time.monotonic() - started < READ_TIMEOUT + 2


def test_a_body_that_stops_is_answered_408_and_frees_its_callers_slots(
    node: tuple[str, int],
) -> None:
    stalled = [connect(node) for _ in range(4)]  # the anonymous caller's 4 slots
    for sock in stalled:
        sock.sendall(
            b"POST /a2a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"jsonrpc"'
        )
    for sock in stalled:
        received, after = answer_of(sock)
        assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received
        assert after < READ_TIMEOUT + 2
        sock.close()
    assert post(node, LIST_TASKS).startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_kept_alive_connection_still_waits_its_keep_alive(node: tuple[str, int]) -> None:
    with connect(node) as sock:
        sock.sendall(
            b"POST /a2a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(LIST_TASKS) + LIST_TASKS
        )
        answer = sock.makefile("rb")
        assert answer.readline() == b"HTTP/1.1 200 OK\r\n"
        headers = dict(line.split(b":", 1) for line in iter(answer.readline, b"\r\n"))
        answer.read(int(headers[b"content-length"]))
        sock.settimeout(READ_TIMEOUT * 2)
        with pytest.raises(TimeoutError):  # keep_alive (30 s) rules between requests
            sock.recv(1)


# A long response and a slow upload, served by the node's transport.


async def events(request: Request) -> StreamingResponse:
    async def ticks() -> AsyncIterator[bytes]:
        for tick in range(8):
            await asyncio.sleep(READ_TIMEOUT / 2)
            yield f"data: {tick}\n\n".encode()

    return StreamingResponse(ticks(), media_type="text/event-stream")


async def upload(request: Request) -> JSONResponse:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return JSONResponse({"size": size})


APP = Starlette(routes=[Route("/events", events), Route("/upload", upload, methods=["POST"])])


async def test_a_long_event_stream_is_not_cut() -> None:
    async with (
        served(APP, None, limits=Limits(read_timeout=READ_TIMEOUT)) as url,
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{url}/events") as response,
    ):
        lines = [line async for line in response.aiter_lines() if line]
    assert lines == [f"data: {tick}" for tick in range(8)]  # 4 s: 4 read timeouts


async def test_a_slow_upload_that_keeps_sending_is_not_cut() -> None:
    async def slowly() -> AsyncIterator[bytes]:
        for _ in range(8):
            await asyncio.sleep(READ_TIMEOUT / 2)
            yield b"x" * 1000

    async with (
        served(APP, None, limits=Limits(read_timeout=READ_TIMEOUT)) as url,
        httpx.AsyncClient(timeout=10) as client,
    ):
        response = await client.post(f"{url}/upload", content=slowly())
    assert response.json() == {"size": 8000}
