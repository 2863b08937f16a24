"""A real ``agent-node serve`` under a low descriptor limit (RLIMIT_NOFILE
256), flooded with connections that send nothing: it keeps answering, and
its log stays a few lines. And one over mutual TLS with a cap of three
connections: past it an idle HTTP/2 connection gives its place to a new
one (before: only HTTP/1.1 ones did, and a node whose clients held HTTP/2
connections open refused every new one), never one following a task."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import h2.events
import httpx
import pytest
from support.certs import make_certs
from support.h2_client import Raw
from support.nodes import greeter_config, serving_mtls
from support.tls import caller_context

pytestmark = pytest.mark.slow

DESCRIPTORS = 256
#: What the node holds at most under that limit: a quarter is kept for the rest.
CAP = DESCRIPTORS - DESCRIPTORS // 4
FLOOD = 300


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


@contextmanager
def node(directory: Path, limits: str) -> Iterator[tuple[int, Path]]:
    """A node whose requests wait 30 s (no read timeout in the way) within
    ``limits``, started under RLIMIT_NOFILE 256; its port and log."""
    config = greeter_config(directory, f"limits: {{read_timeout: 30, {limits}}}\n")
    log = directory / "node.err"
    command = [sys.executable, "-m", "agent_node.cli.main", "serve", "--config", str(config)]
    with log.open("w") as err:
        process = subprocess.Popen(
            [*command, "--insecure-dev"],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=_low_limit,
        )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on" in first, first + log.read_text()
        yield int(first.split()[-1].rsplit(":", 1)[1].rstrip("/")), log
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)


def flood(port: int, count: int, stack: ExitStack) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        sockets.append(sock)
    time.sleep(0.5)
    return sockets


def closed_by_node(sockets: list[socket.socket]) -> int:
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def healthz(port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code


def test_past_its_cap_the_node_closes_its_idlest_connections_and_keeps_answering(
    tmp_path: Path,
) -> None:
    with node(tmp_path, "max_connections: 0") as (port, log), ExitStack() as stack:
        sockets = flood(port, FLOOD, stack)
        assert healthz(port) == 200  # its connection took the place of an idle one
        assert closed_by_node(sockets) >= FLOOD - CAP
        assert healthz(port) == 200
    text = log.read_text()
    assert "Too many open files" not in text and len(text.splitlines()) < 20, text[-3000:]


def test_out_of_descriptors_anyway_the_node_logs_one_line_and_recovers(tmp_path: Path) -> None:
    with node(tmp_path, "max_connections: 1000") as (port, log):  # above what the process has
        with ExitStack() as stack:
            sockets = flood(port, FLOOD, stack)
            assert closed_by_node(sockets) > 0  # refused at once, not left waiting
        time.sleep(0.5)
        assert healthz(port) == 200  # serving again once descriptors are free
    text = log.read_text()
    assert "out of descriptors" in text
    assert "Traceback" not in text and len(text.splitlines()) < 20, text[-3000:]


# HTTP/2: an idle connection (no stream open) is idle to the cap too.

V10 = {"a2a-version": "1.0"}


def booking(text: str, task_id: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"messageId": text, "role": "ROLE_USER", "parts": [{"text": text}]}
    message["metadata"] = {"skill": "book"}
    if task_id is not None:
        message["taskId"] = task_id
    return {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}


async def h2_connection(port: int, certs: Path) -> Raw:
    """A raw HTTP/2 connection as alice, its server's SETTINGS read: the
    node serves it (its connection is one of those the cap counts)."""
    tls = caller_context(certs, "alice")
    tls.set_alpn_protocols(["h2"])
    raw = Raw(*await asyncio.open_connection("127.0.0.1", port, ssl=tls))
    raw.h2.initiate_connection()
    raw.flush()
    while not any(isinstance(e, h2.events.RemoteSettingsChanged) for e in raw.events):
        assert await raw.read()
    return raw


def post(raw: Raw, body: dict[str, Any]) -> int:
    sid: int = raw.h2.get_next_available_stream_id()
    fields = [(":method", "POST"), (":scheme", "https"), (":path", "/a2a")]
    fields += [(":authority", "127.0.0.1"), ("content-type", "application/json")]
    raw.h2.send_headers(sid, [*fields, *V10.items()])
    raw.h2.send_data(sid, json.dumps(body).encode(), end_stream=True)
    raw.flush()
    return sid


async def body_of(raw: Raw, sid: int, until: bytes | None = None) -> bytes:
    """What ``sid`` answered, once it ended (or once ``until`` is in it)."""
    while True:
        data = b"".join(
            e.data
            for e in raw.events
            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        if until is not None and until in data:
            return data
        if any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in raw.events):
            return data
        assert await raw.read(), "the connection closed"


async def still_served(raw: Raw) -> None:
    """``raw``'s connection answers a PING: the node kept it."""
    raw.h2.ping(b"12345678")
    raw.flush()
    while not any(isinstance(e, h2.events.PingAckReceived) for e in raw.events):
        assert await raw.read(), "the node closed an idle connection it did not need"


async def test_past_its_cap_an_idle_http2_connection_gives_way_never_an_event_stream(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path / "certs", "greeter", "alice")
    (tmp_path / "node").mkdir()
    with serving_mtls(tmp_path / "node", certs, "limits: {max_connections: 3}\n") as url:
        port = int(url.rsplit(":", 1)[1])
        # The oldest connection: idle at first, then an event stream open.
        follower = await h2_connection(port, certs)
        asked = json.loads(await body_of(follower, post(follower, booking("Rome"))))
        task = asked["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", asked
        subscribe = {"jsonrpc": "2.0", "id": 2, "method": "SubscribeToTask"}
        followed = post(follower, {**subscribe, "params": {"id": task["id"]}})
        await body_of(follower, followed, until=b"TASK_STATE_INPUT_REQUIRED")
        idlest, idle = await h2_connection(port, certs), await h2_connection(port, certs)

        # A fourth connection, past the cap: it takes the idlest one's place.
        async with httpx.AsyncClient(
            http2=True, verify=caller_context(certs, "alice"), timeout=10
        ) as client:
            answered = await client.post(
                f"{url}/a2a", json=booking("early May", task["id"]), headers=V10
            )
        assert answered.http_version == "HTTP/2" and answered.status_code == 200, answered.text

        ended = await idlest.closed()
        assert any(isinstance(e, h2.events.ConnectionTerminated) for e in ended), ended
        streamed = await body_of(follower, followed)  # followed to the end, never cut
        assert b"TASK_STATE_COMPLETED" in streamed, streamed
        await still_served(idle)  # the other idle one
        for raw in (follower, idle):
            await raw.close()


# gRPC: its port's connections count with the HTTP port's, and an idle one
# gives its place the same way; a client that never ends its TLS handshake
# is let go after limits.read_timeout (before: asyncio's 60 s, and the
# port had no cap at all).


async def grpc_port_of(url: str, certs: Path) -> int:
    async with httpx.AsyncClient(verify=caller_context(certs, "alice"), timeout=10) as client:
        card = (await client.get(f"{url}/.well-known/agent-card.json")).json()
    found = [i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC"]
    return int(found[0].rsplit(":", 1)[1].strip("/"))


async def test_grpc_connections_count_toward_the_cap_and_an_idle_one_gives_way(
    tmp_path: Path,
) -> None:
    pytest.importorskip("grpc")
    from support.grpc_calls import Caller, mtls_channel

    certs = make_certs(tmp_path / "certs", "greeter", "alice")
    (tmp_path / "node").mkdir()
    limits = "limits: {max_connections: 3, read_timeout: 2}\n"
    with serving_mtls(tmp_path / "node", certs, limits, grpc=True) as url:
        port = await grpc_port_of(url, certs)
        silent = socket.create_connection(("127.0.0.1", port))  # no ClientHello, ever
        started = time.monotonic()
        silent.settimeout(10)
        assert silent.recv(1) == b""  # let go once its handshake's time is up
        assert time.monotonic() - started < 6
        silent.close()

        idlest, idle = await h2_connection(port, certs), await h2_connection(port, certs)
        follower = await h2_connection(int(url.rsplit(":", 1)[1]), certs)  # the HTTP port
        asked = json.loads(await body_of(follower, post(follower, booking("Rome"))))
        assert asked["result"]["task"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"

        # A fourth connection, to the gRPC port, past the cap of the process:
        # the idlest connection (a gRPC one) gives its place.
        async with mtls_channel(f"127.0.0.1:{port}", certs, "alice") as channel:
            task = await Caller(channel).call("GetTask", {"id": asked["result"]["task"]["id"]})
        assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", task
        ended = await idlest.closed()
        assert any(isinstance(e, h2.events.ConnectionTerminated) for e in ended), ended
        await still_served(idle)  # the other idle one
        for raw in (follower, idle):
            await raw.close()
