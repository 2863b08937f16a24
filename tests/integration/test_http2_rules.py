"""RFC 9113's rules for what a client sends, as h2spec checks them, on both
of the node's HTTP/2 servers: the HTTP port (over TLS, ALPN ``h2``, the
node's own transport) and the gRPC binding's (plain TCP). Stream states
(frames on streams the client ended or reset, or never opened), malformed
requests (RFC 9113 §8.2, §8.3), a body against its content-length, flow
control, self-dependent priorities, frame sizes. Each breach gets the
stream or connection error the RFC names; a malformed request never reaches
the app; frames a client sent before it knew of our reset are ignored; the
server serves on. Frames are written byte by byte: well-behaved client
libraries refuse to send these."""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hpack
import pytest
from support.certs import make_certs
from support.served import served
from support.tls import caller_context

from agent_node.a2a.server.grpc.calls import Call, Method
from agent_node.a2a.server.grpc.server import Http2Server
from agent_node.http2 import asgi, wire
from agent_node.http2.frames import PREFACE
from agent_node.security.tls import server_context
from agent_node.transport import listening_socket

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 2, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, PRIORITY_FLAG = 0x1, 0x4, 0x20
PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR = 0x1, 0x3, 0x5, 0x6
NO_ERROR = 0x0


def frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    length = len(payload)
    return struct.pack(">HBBBL", length >> 8, length & 0xFF, kind, flags, sid) + payload


@dataclass
class Endpoint:
    """One of the node's HTTP/2 servers, and what a good request to it is."""

    kind: str
    port: int
    tls: ssl.SSLContext | None
    method: str
    path: str
    seen: list[str] = field(default_factory=list)  # the paths its app or binding was given

    def request(self, **changes: str | None) -> list[tuple[str, str]]:
        fields = {":method": self.method, ":scheme": "https" if self.tls else "http"}
        fields |= {":path": self.path, ":authority": "t"}
        if self.kind == "grpc":
            fields |= {"content-type": "application/grpc", "te": "trailers"}
        for name, value in changes.items():
            fields.pop(name.replace("_", "-"), None)
            if value is not None:
                fields[name.replace("_", "-")] = value
        return list(fields.items())


class Client:
    """A raw HTTP/2 connection: frames out as written, frames in as read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder = hpack.Encoder()
        self.frames: list[tuple[int, int, int, bytes]] = []
        self.closed = False
        self._buffer = b""

    @classmethod
    async def open(cls, endpoint: Endpoint) -> Client:
        connection = await asyncio.open_connection("127.0.0.1", endpoint.port, ssl=endpoint.tls)
        client = cls(*connection)
        client.send(PREFACE + frame(SETTINGS, 0, 0, b""))
        return client

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def block(self, fields: list[tuple[str, str]]) -> bytes:
        return self.encoder.encode(fields)

    def headers(self, sid: int, fields: list[tuple[str, str]], *, end: bool = True) -> None:
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, self.block(fields)))

    async def until(self, wanted: Any) -> tuple[int, int, int, bytes] | None:
        """Read frames until one ``wanted(kind, flags, sid, payload)`` holds
        (it, acknowledged SETTINGS and PINGs aside), the connection closes
        (None) or 5 s pass (an error)."""
        checked = 0
        while True:
            for found in self.frames[checked:]:
                if wanted(*found):
                    return found
            checked = len(self.frames)
            if self.closed:
                return None
            try:
                data = await asyncio.wait_for(self.reader.read(65536), 5)
            except (ConnectionError, ssl.SSLError):
                data = b""
            self._read(data)

    def _read(self, data: bytes) -> None:
        if not data:
            self.closed = True
            return
        self._buffer += data
        while len(self._buffer) >= 9:
            high, low, kind, flags, sid = struct.unpack_from(">HBBBL", self._buffer)
            length = (high << 8) | low
            if len(self._buffer) < 9 + length:
                break
            payload, self._buffer = self._buffer[9 : 9 + length], self._buffer[9 + length :]
            self.frames.append((kind, flags, sid, payload))

    async def reset_of(self, sid: int) -> int:
        """The code of the RST_STREAM ``sid`` gets (a GOAWAY first: an error)."""
        found = await self.until(lambda k, f, s, p: (k == RST_STREAM and s == sid) or k == GOAWAY)
        assert found is not None and found[0] == RST_STREAM, f"no RST_STREAM but {found}"
        return int(struct.unpack(">L", found[3])[0])

    async def goaway(self) -> int:
        """The code of the GOAWAY that ends the connection."""
        found = await self.until(lambda k, f, s, p: k == GOAWAY)
        assert found is not None, "the connection closed without a GOAWAY"
        return int(struct.unpack_from(">L", found[3], 4)[0])

    async def answered(self, sid: int) -> None:
        """Wait for the end of ``sid``'s answer (reset or GOAWAY: an error)."""
        found = await self.until(
            lambda k, f, s, p: (
                (s == sid and (k == RST_STREAM or (f & END_STREAM and k in (0, 1)))) or k == GOAWAY
            )
        )
        assert found is not None and found[0] in (DATA, HEADERS), f"{sid} not answered: {found}"

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


@pytest.fixture(params=["http", "grpc"])
async def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Endpoint]:
    if request.param == "grpc":
        found = Endpoint("grpc", 0, None, "POST", "/t.T/Echo")

        async def echo(call: Call, body: bytes) -> bytes:
            found.seen.append("/t.T/Echo")
            return body

        server = Http2Server(
            listening_socket("127.0.0.1", 0), None, max_body_bytes=1 << 20, max_header_bytes=1 << 16
        )
        await server.start({"/t.T/Echo": Method(False, echo)})
        found.port = server.port
        yield found
        await server.stop(0)
        return
    certs = make_certs(tmp_path / "certs", "node", "alice")
    tls = server_context(certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    client_tls = caller_context(certs, "alice")
    client_tls.set_alpn_protocols(["h2"])
    found = Endpoint("http", 0, client_tls, "GET", "/")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        found.seen.append(scope["path"])
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async with served(app, tls) as url:
        found.port = int(url.rpartition(":")[2])
        yield found


async def serves_on(endpoint: Endpoint, client: Client | None = None) -> None:
    """A good request on ``client`` (default: a new connection) is answered."""
    own = client is None
    client = client or await Client.open(endpoint)
    sid = max([s for _, _, s, _ in client.frames] + [99]) + 2
    client.headers(sid, endpoint.request(), end=endpoint.kind != "grpc")
    if endpoint.kind == "grpc":
        client.send(frame(DATA, END_STREAM, sid, b"\x00\x00\x00\x00\x01x"))
    await client.answered(sid)
    if own:
        await client.close()


MALFORMED = {
    "an upper-case name": {"X-Upper": "1"},
    "a name with a space": {"x name": "1"},
    "a value with CR LF": {"x-split": "a\r\nx-injected: 1"},
    "a value with NUL": {"x-nul": "a\x00b"},
    "a value ending in a space": {"x-pad": "a "},
    "an unknown pseudo-header": {":unknown": "1"},
    "a response's pseudo-header": {":status": "200"},
    "a connection-specific field": {"connection": "keep-alive"},
    "transfer-encoding": {"transfer-encoding": "chunked"},
    "te other than trailers": {"te": "gzip"},
    "no :scheme": {":scheme": None},
    "no :path": {":path": None},
    "an empty :path": {":path": ""},
    "no :method": {":method": None},
    "a :method with a space": {":method": "GE T"},
    "a :method with a control": {":method": "GET\x7f"},
    "a :method not ASCII": {":method": "GÉT"},
    "a content-length not a number": {"content-length": "1e3"},
    "a content-length of 5000 digits": {"content-length": "9" * 5000},
}


@pytest.mark.parametrize("case", MALFORMED)
async def test_a_malformed_request_is_reset_before_the_app_sees_it(
    endpoint: Endpoint, case: str
) -> None:
    client = await Client.open(endpoint)
    fields = endpoint.request(**MALFORMED[case])
    if case == "an unknown pseudo-header":  # pseudo-headers come first
        fields.insert(0, fields.pop())
    client.headers(1, fields)
    assert await client.reset_of(1) == PROTOCOL_ERROR
    await serves_on(endpoint, client)
    assert endpoint.seen == [endpoint.path]  # the good request only
    await client.close()


async def test_pseudo_headers_after_a_field_repeated_or_in_trailers_are_malformed(
    endpoint: Endpoint,
) -> None:
    client = await Client.open(endpoint)
    late = endpoint.request()
    late.append((":authority", "again"))  # repeated, and after regular fields
    client.headers(1, late)
    assert await client.reset_of(1) == PROTOCOL_ERROR
    client.headers(3, endpoint.request(), end=False)
    client.headers(3, [(":path", "/trailer")])  # trailers with a pseudo-header
    assert await client.reset_of(3) == PROTOCOL_ERROR
    await serves_on(endpoint, client)
    await client.close()


async def test_a_body_not_as_long_as_its_content_length_is_reset(endpoint: Endpoint) -> None:
    client = await Client.open(endpoint)
    client.headers(1, endpoint.request(content_length="10"), end=False)
    client.send(frame(DATA, END_STREAM, 1, b"short"))
    assert await client.reset_of(1) == PROTOCOL_ERROR
    client.headers(3, endpoint.request(content_length="3"), end=False)
    client.send(frame(DATA, 0, 3, b"ab") + frame(DATA, END_STREAM, 3, b"cd"))
    assert await client.reset_of(3) == PROTOCOL_ERROR
    client.headers(5, endpoint.request(content_length="4"))  # a length, and no body at all
    assert await client.reset_of(5) == PROTOCOL_ERROR
    await serves_on(endpoint, client)
    await client.close()


async def test_frames_on_streams_the_client_ended_or_reset_are_stream_closed(
    endpoint: Endpoint,
) -> None:
    client = await Client.open(endpoint)
    client.headers(1, endpoint.request(), end=False)
    client.send(frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x01x"))
    client.send(frame(DATA, 0, 1, b"more"))  # half closed (remote)
    assert await client.reset_of(1) == STREAM_CLOSED
    client.headers(3, endpoint.request(), end=False)
    client.send(frame(RST_STREAM, 0, 3, struct.pack(">L", 0x8)))
    client.send(frame(DATA, 0, 3, b"after my reset"))
    assert await client.reset_of(3) == STREAM_CLOSED
    await serves_on(endpoint, client)
    await client.close()
    client = await Client.open(endpoint)
    await serves_on(endpoint, client)  # stream 101: answered, closed both ways
    client.headers(101, endpoint.request())  # HEADERS on it again
    assert await client.goaway() == STREAM_CLOSED
    await client.close()


async def test_a_stream_id_the_client_skipped_cannot_be_opened_later(endpoint: Endpoint) -> None:
    client = await Client.open(endpoint)
    client.headers(5, endpoint.request())
    await client.answered(5)
    client.headers(3, endpoint.request())
    assert await client.goaway() == PROTOCOL_ERROR
    await client.close()
    await serves_on(endpoint)


async def test_what_a_client_sent_before_it_knew_of_our_reset_is_ignored(
    endpoint: Endpoint,
) -> None:
    client = await Client.open(endpoint)
    client.headers(1, endpoint.request(X_Upper="1"), end=False)  # reset by us
    assert await client.reset_of(1) == PROTOCOL_ERROR
    client.send(frame(DATA, 0, 1, b"in flight"))
    client.headers(1, [("x-trailer", "1")])  # its trailers, in flight too
    client.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">L", 100)))
    await serves_on(endpoint, client)
    assert not [f for f in client.frames if f[0] == GOAWAY or (f[0] == RST_STREAM and f[2] != 1)]
    client.send(frame(DATA, 0x8, 1, b"\x09abc"))  # padding longer than the frame: still an error
    assert await client.goaway() == PROTOCOL_ERROR
    await client.close()


async def test_a_stream_that_depends_on_itself_is_reset(endpoint: Endpoint) -> None:
    client = await Client.open(endpoint)
    itself = struct.pack(">LB", 1, 255)
    block = itself + client.block(endpoint.request())
    client.send(frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, block))
    assert await client.reset_of(1) == PROTOCOL_ERROR
    client.send(frame(PRIORITY, 0, 3, struct.pack(">LB", 3, 16)))
    assert await client.reset_of(3) == PROTOCOL_ERROR
    client.send(frame(PRIORITY, 0, 7, b"\x00\x00\x00"))  # not 5 bytes
    assert await client.reset_of(7) == FRAME_SIZE_ERROR
    await serves_on(endpoint, client)
    assert endpoint.seen == [endpoint.path]
    await client.close()


@pytest.mark.parametrize(
    ("case", "frames", "code"),
    [
        ("PING of 6 bytes", frame(PING, 0, 0, b"123456"), FRAME_SIZE_ERROR),
        ("PING on a stream", frame(PING, 0, 1, b"12345678"), PROTOCOL_ERROR),
        (
            "RST_STREAM of 3 bytes",
            frame(RST_STREAM, 0, 1, b"\x00\x00\x08"),
            FRAME_SIZE_ERROR,
        ),
        ("RST_STREAM on an even stream", frame(RST_STREAM, 0, 2, b"\0\0\0\x08"), PROTOCOL_ERROR),
        (
            "a window moved past 2^31 - 1 by SETTINGS",
            frame(WINDOW_UPDATE, 0, 1, struct.pack(">L", (1 << 31) - 1 - 65535))
            + frame(SETTINGS, 0, 0, struct.pack(">HL", 0x4, 65536)),
            FLOW_CONTROL_ERROR,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_a_connection_error_gets_the_code_the_rfc_names(
    endpoint: Endpoint, case: str, frames: bytes, code: int
) -> None:
    client = await Client.open(endpoint)
    client.headers(1, endpoint.request(), end=False)  # an open stream
    await asyncio.sleep(0.05)  # opened before what follows
    client.send(frames)
    assert await client.goaway() == code
    await client.close()
    await serves_on(endpoint)


async def test_a_body_answered_unread_is_let_in_or_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app may answer before it reads the body (a 401, a 413). The rest
    of the body is let in and dropped, its window given as for any body,
    with no reset: curl before 8 takes a reset after the answer for a
    failure, and httpx, left without window, waits until it times out. A
    body that does not come within DRAIN seconds is then reset with
    NO_ERROR; one announced longer than DRAIN_BYTES is stopped at once, and
    one of no announced length once more than that came (RFC 9113 §8.1)."""
    monkeypatch.setattr(asgi, "DRAIN", 0.5)
    monkeypatch.setattr(wire, "DRAIN_BYTES", 40_000)
    certs = make_certs(tmp_path / "certs", "node", "alice")
    tls = server_context(certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    client_tls = caller_context(certs, "alice")
    client_tls.set_alpn_protocols(["h2"])

    async def app(scope: Any, receive: Any, send: Any) -> None:  # answers unread
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"who are you?"})

    def resets(sid: int) -> list[Any]:
        return [f for f in client.frames if f[0] == RST_STREAM and f[2] == sid]

    async with served(app, tls) as url:
        endpoint = Endpoint("http", int(url.rpartition(":")[2]), client_tls, "POST", "/")
        client = await Client.open(endpoint)
        chunk = b"x" * 16_000
        client.headers(1, endpoint.request(content_length=str(2 * len(chunk))), end=False)
        await client.answered(1)
        client.send(frame(DATA, 0, 1, chunk) + frame(DATA, END_STREAM, 1, chunk))  # dropped
        client.headers(3, endpoint.request(content_length="4"), end=False)
        await client.answered(3)
        began = asyncio.get_running_loop().time()
        assert await client.reset_of(3) == NO_ERROR  # it never came
        assert asyncio.get_running_loop().time() - began >= 0.4
        client.headers(5, endpoint.request(content_length="50000"), end=False)  # announced longer
        await client.answered(5)
        began = asyncio.get_running_loop().time()
        assert await client.reset_of(5) == NO_ERROR
        assert asyncio.get_running_loop().time() - began < 0.3
        client.headers(7, endpoint.request(), end=False)  # no length: until past DRAIN_BYTES
        await client.answered(7)
        client.send(frame(DATA, 0, 7, chunk) + frame(DATA, 0, 7, chunk))
        await serves_on(endpoint, client)
        assert not resets(7)
        client.send(frame(DATA, 0, 7, chunk))
        assert await client.reset_of(7) == NO_ERROR
        await serves_on(endpoint, client)
        assert not resets(1)
        assert not [f for f in client.frames if f[0] == GOAWAY]
        await client.close()
