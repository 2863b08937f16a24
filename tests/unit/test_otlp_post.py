"""The OTLP exporter's HTTP/1.1 connection (agent_node/telemetry/otlp_post.py)
against a scripted server on loopback: each way an answer may be framed, sent
in pieces, interim answers, connections the server closes, a broken answer,
a silent server, and TLS."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.certs import make_certs

from agent_node.settings_telemetry import TracesSettings
from agent_node.telemetry.otlp_post import BadAnswer, PostConnection
from agent_node.telemetry.traces_otlp import OtlpHttpExporter

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 2\r\n\r\n\x0a\x00"


@dataclass
class Script:
    """What the server answers: per request, the answer's pieces, and
    whether it closes the connection after it (answers run out: it closes)."""

    answers: list[tuple[list[bytes], bool]]
    #: Each request as received: (connection number, head, body).
    received: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    connections: int = 0
    port: int = 0


def _serve(
    listener: socket.socket, script: Script, tls: ssl.SSLContext | None, stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        script.connections += 1
        number = script.connections
        try:
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            _requests(conn, number, script)
        except OSError:
            pass
        finally:
            conn.close()


def _requests(conn: socket.socket, number: int, script: Script) -> None:
    buffer = b""
    while script.answers:
        while b"\r\n\r\n" not in buffer:
            got = conn.recv(65536)
            if not got:
                return
            buffer += got
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(buffer) < length:
            buffer += conn.recv(65536)
        body, buffer = buffer[:length], buffer[length:]
        script.received.append((number, head, body))
        pieces, close = script.answers.pop(0)
        for piece in pieces:
            conn.sendall(piece)
            if len(pieces) > 1:
                time.sleep(0.001)
        if close:
            return


@contextmanager
def server(
    *answers: tuple[list[bytes], bool], tls: ssl.SSLContext | None = None
) -> Iterator[Script]:
    script, stop = Script(list(answers)), threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.02)  # accept() wakes to see the stop
    thread = threading.Thread(target=_serve, args=(listener, script, tls, stop), daemon=True)
    thread.start()
    script.port = listener.getsockname()[1]
    try:
        yield script
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def connect(script: Script) -> PostConnection:
    port = script.port
    return PostConnection("127.0.0.1", port, "/v1/traces", {"Content-Type": "x/y", "X-Team": "a"})


def pieces(answer: bytes, size: int = 1) -> list[bytes]:
    return [answer[i : i + size] for i in range(0, len(answer), size)]


def test_a_kept_connection_carries_each_request_whole() -> None:
    with server(([OK], False), ([OK], False)) as script:
        post = connect(script)
        assert post.post(b"one", 5) == 200 and post.post(b"two" * 50_000, 5) == 200
        post.close()
    assert script.connections == 1
    (_, head, body), (_, _, second) = script.received
    assert head.startswith(b"POST /v1/traces HTTP/1.1\r\n")
    lines = head.split(b"\r\n")[1:]
    assert f"Host: 127.0.0.1:{script.port}".encode() in lines
    assert b"Content-Type: x/y" in lines and b"X-Team: a" in lines
    assert b"Content-Length: 3" in lines and body == b"one" and second == b"two" * 50_000


@pytest.mark.parametrize(
    "answer",
    [
        OK,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2;x=y\r\nab\r\n10\r\n" + b"c" * 16 + b"\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["length", "chunked", "continue", "no-content", "http10-kept"],
)
def test_answers_framed_any_way_and_sent_in_pieces_keep_the_connection(answer: bytes) -> None:
    with server((pieces(answer), False), ([OK], False)) as script:
        post = connect(script)
        assert post.post(b"x", 5) in (200, 204)
        assert post.post(b"y", 5) == 200
        post.close()
    assert script.connections == 1 and [b for _, _, b in script.received] == [b"x", b"y"]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy",
        b"HTTP/1.1 200 OK\r\n\r\nto the close",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["close", "to-the-close", "http10"],
)
def test_an_answer_that_ends_the_connection_is_followed_by_a_new_one(answer: bytes) -> None:
    with server(([answer], True), ([OK], False)) as script:
        post = connect(script)
        assert post.post(b"x", 5) in (200, 503)
        assert post.post(b"y", 5) == 200
        post.close()
    assert [n for n, _, _ in script.received] == [1, 2]


def test_a_kept_connection_the_server_closed_while_idle_is_replaced_once() -> None:
    with server(([OK], True), ([OK], False)) as script:  # closes without saying so
        post = connect(script)
        assert post.post(b"x", 5) == 200
        time.sleep(0.1)
        assert post.post(b"y", 5) == 200  # the first try finds it closed
        post.close()
    assert [(n, b) for n, _, b in script.received] == [(1, b"x"), (2, b"y")]


def test_a_broken_answer_closes_the_connection_and_the_next_post_starts_anew() -> None:
    with server(([b"SMTP ready\r\n\r\n"], False), ([OK], False)) as script:
        post = connect(script)
        with pytest.raises(BadAnswer):
            post.post(b"x", 5)
        assert post.post(b"y", 5) == 200
        post.close()
    assert [n for n, _, _ in script.received] == [1, 2]


def test_a_silent_server_costs_the_timeout_and_an_oserror() -> None:
    with server(([], False), ([OK], False)) as script:  # reads, never answers
        post = connect(script)
        began = time.monotonic()
        with pytest.raises(OSError):
            post.post(b"x", 0.3)
        assert 0.25 < time.monotonic() - began < 3
        post.close()


def test_a_header_with_a_line_break_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="line break"):
        PostConnection("h", 80, "/", {"X-Bad": "a\r\nInjected: b"})


def test_the_exporter_posts_over_tls_to_a_collector_it_trusts(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    certs = make_certs(tmp_path, "collector")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs / "collector.pem", certs / "collector-key.pem")
    with server(([OK], False), ([OK], False), tls=tls) as script:
        port = script.port
        settings = TracesSettings(endpoint=f"https://127.0.0.1:{port}/v1/traces")
        exporter = OtlpHttpExporter(
            settings, {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(certs / "ca.pem")}
        )
        assert exporter.export([]) == SpanExportResult.SUCCESS
        assert exporter.export([]) == SpanExportResult.SUCCESS
        exporter.shutdown()
    assert script.connections == 1 and len(script.received) == 2
    # A collector it does not trust: not posted to, and tried again as a broken one.
    with server(([OK], False), tls=tls) as script:
        port = script.port
        settings = TracesSettings(endpoint=f"https://127.0.0.1:{port}/v1/traces")
        exporter = OtlpHttpExporter(settings, {"OTEL_EXPORTER_OTLP_TIMEOUT": "300"})
        assert exporter.export([]) == SpanExportResult.FAILURE
        exporter.shutdown()
    assert script.received == []
