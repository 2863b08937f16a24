"""What a hostile client sends a real ``agent-node serve`` (mutual TLS, bearer
JWTs, gRPC): each answered with the protocol's own error, on every binding,
and no traceback in the node's log."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support.nodes import serving_mtls
from support.tls import caller_context

from agent_node.a2a.protocol.grpc.messages import message_class
from agent_node.security import pki
from agent_node.telemetry.http_methods import HTTP_METHODS

pytestmark = pytest.mark.slow

DOMAIN = "spiffe://example.org/agent"
ISSUER = "https://issuer.test"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
AUTH = f"""
auth:
  jwt: {{issuer: "{ISSUER}", audience: greeter, jwks_file: jwks.json,
         algorithms: [ES256, RS256]}}
policy:
  callers: ["{DOMAIN}/alice", "carol"]
  operators: ["{DOMAIN}/ops-*"]
"""
LIST_TASKS = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
#: A Unicode digit ('²' in Latin-1, as a header's bytes are read): str.isdigit() holds.
SUPERSCRIPT = b"\xb2.0"


class Node:
    def __init__(self, url: str, directory: Path, certs: Path, grpc_port: int) -> None:
        self.url, self.directory, self.certs, self.grpc_port = url, directory, certs, grpc_port

    def log(self) -> str:
        return (self.directory / "node.err").read_text()

    def client(self, name: str | None = "alice", http2: bool = False) -> httpx.Client:
        return httpx.Client(verify=caller_context(self.certs, name), http2=http2, timeout=10)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    certs = tmp_path_factory.mktemp("hostile") / "certs"
    pki.init_ca(certs, trust_domain="example.org")
    for name in ("greeter", "alice", "ops-1"):
        pki.issue(certs, name)
    directory = tmp_path_factory.mktemp("hostile-node")
    ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
    rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True)
    keys = [{**ec_jwk, "kid": "ec-1"}, {**rsa_jwk, "kid": "rsa-1"}]  # as many IdPs' sets
    (directory / "jwks.json").write_text(json.dumps({"keys": keys}))
    with serving_mtls(directory, certs, AUTH, grpc=True) as url:
        with httpx.Client(verify=caller_context(certs, "alice"), timeout=10) as http:
            card = http.get(f"{url}/.well-known/agent-card.json").json()
        grpc_url = next(
            i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC"
        )
        yield Node(url, directory, certs, int(grpc_url.rpartition(":")[2]))


def assert_no_traceback(node: Node) -> None:
    logged = node.log()
    assert "Traceback" not in logged and "Exception in ASGI" not in logged, logged[-3000:]


def raw_http1(node: Node, head: bytes, name: str | None = "alice") -> bytes:
    """``head`` (a request without a body) sent as is over TLS; the answer."""
    port = int(node.url.rpartition(":")[2])
    context = caller_context(node.certs, name)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            tls.sendall(head)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    return answer


async def raw_h2(
    node: Node, port: int, head: list[tuple[bytes, bytes]], body: bytes | None, name: str | None
) -> dict[str, str]:
    """One request of ``head`` (pseudo-headers included) and ``body``, sent
    byte for byte over HTTP/2 (``name``'s certificate); the headers and
    trailers of its answer, and ``reset`` if it was reset."""
    context = caller_context(node.certs, name)
    context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    conn.send_headers(1, head, end_stream=body is None)
    if body is not None:
        conn.send_data(1, body, end_stream=True)
    writer.write(conn.data_to_send())
    got: dict[str, str] = {}
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "the connection closed"
            for event in conn.receive_data(data):
                for field, value in getattr(event, "headers", None) or ():
                    got[field.decode()] = value.decode()
                if isinstance(event, h2.events.StreamReset):
                    got["reset"] = str(event.error_code)
                if isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return got
            writer.write(conn.data_to_send())
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def raw_grpc(
    node: Node,
    fields: list[tuple[bytes, bytes]],
    body: bytes,
    name: str | None = "alice",
    method: str = "ListTasks",
) -> dict[str, str]:
    """One gRPC call of ``method`` with ``fields`` added to its headers, sent
    byte for byte over HTTP/2 (``name``'s certificate); its headers and trailers."""
    head = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", f"/lf.a2a.v1.A2AService/{method}".encode()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        *fields,
    ]
    return await raw_h2(node, node.grpc_port, head, len(body).to_bytes(5, "big") + body, name)


# A2A-Version with a digit int() refuses


def test_a_unicode_digit_in_a2a_version_is_version_not_supported_on_every_binding(
    node: Node,
) -> None:
    body = json.dumps(LIST_TASKS).encode()

    def post(path: bytes, name: str | None) -> bytes:
        return raw_http1(
            node,
            b"POST "
            + path
            + b" HTTP/1.1\r\nHost: localhost\r\nA2A-Version: "
            + SUPERSCRIPT
            + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body,
            name,
        )

    answer = post(b"/a2a", "alice")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"code":-32009' in answer
    anonymous = post(b"/a2a", None)  # the guard's refusal reads the version too
    assert anonymous.startswith(b"HTTP/1.1 401"), anonymous[:300]
    assert b'"code":-32030' in anonymous
    rest = raw_http1(
        node,
        b"GET /a2a/tasks/t1 HTTP/1.1\r\nHost: localhost\r\nA2A-Version: "
        + SUPERSCRIPT
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert rest.startswith(b"HTTP/1.1 400"), rest[:300]
    assert b"VERSION_NOT_SUPPORTED" in rest
    for http2 in (False, True):
        with node.client(http2=http2) as http:
            query = http.post(f"{node.url}/a2a?A2A-Version=%C2%B2.0", json=LIST_TASKS)
            header = http.post(
                f"{node.url}/a2a", json=LIST_TASKS, headers={"A2A-Version": SUPERSCRIPT}
            )
        assert query.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        for answered in (query, header):
            assert answered.status_code == 200, answered.text
            assert answered.json()["error"]["code"] == -32009
    assert_no_traceback(node)


async def test_a_unicode_digit_in_a2a_version_metadata_is_failed_precondition(
    node: Node,
) -> None:
    answer = await raw_grpc(node, [(b"a2a-version", SUPERSCRIPT)], b"")
    assert answer["grpc-status"] == "9", answer  # FAILED_PRECONDITION: VersionNotSupported
    assert "this binding serves 1.0" in answer["grpc-message"]
    assert_no_traceback(node)


# Bearer tokens no issuer made


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims() -> dict[str, Any]:
    return {"iss": ISSUER, "aud": "greeter", "sub": "carol", "exp": time.time() + 300}


def forged(header: bytes) -> str:
    """A token with ``header`` (base64url of it as is) and no valid signature."""
    return f"{b64(header)}.{b64(json.dumps(claims()).encode())}.{b64(b'x' * 64)}"


#: Tokens a client can make without any key, by what is wrong with them.
FORGED = {
    "header-nested-3000-deep": (forged(b"[" * 3000), "the bearer token is not a JWT"),
    "es256-naming-the-rsa-key": (
        forged(b'{"alg":"ES256","kid":"rsa-1"}'),
        "the key of kid 'rsa-1' is RSA, the token says ES256",
    ),
    "rs256-naming-the-ec-key": (
        forged(b'{"alg":"RS256","kid":"ec-1"}'),
        "the key of kid 'ec-1' is EC, the token says RS256",
    ),
    "payload-not-json": (
        ".".join((b64(b'{"alg":"ES256","kid":"ec-1"}'), b64(b"[" * 3000), b64(b"x"))),
        "the bearer token's signature does not verify",
    ),
}


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_a_forged_bearer_token_is_401_with_its_reason(node: Node, http2: bool) -> None:
    for token, reason in FORGED.values():
        with node.client(None, http2=http2) as http:
            answer = http.post(
                f"{node.url}/a2a",
                json=LIST_TASKS,
                headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
            )
            rest = http.get(f"{node.url}/a2a/tasks", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["message"]) == (-32030, reason)
        assert rest.status_code == 401, rest.text
        assert rest.json()["error"]["message"] == reason
    assert_no_traceback(node)


async def test_a_forged_bearer_token_in_grpc_metadata_is_unauthenticated(node: Node) -> None:
    for token, reason in FORGED.values():
        fields = [(b"authorization", f"Bearer {token}".encode())]
        answer = await raw_grpc(node, fields, b"", name=None)
        assert answer["grpc-status"] == "16", answer  # UNAUTHENTICATED
        assert unquote(answer["grpc-message"]) == reason
    assert_no_traceback(node)


def test_tokens_the_issuer_signed_with_either_key_hold(node: Node) -> None:
    for key, alg, kid in ((EC_KEY, "ES256", "ec-1"), (RSA_KEY, "RS256", "rsa-1")):
        token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid})
        with node.client(None) as http:
            answer = http.post(
                f"{node.url}/a2a",
                json=LIST_TASKS,
                headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
            )
        assert answer.status_code == 200 and "result" in answer.json(), answer.text


# What protobuf holds and JSON does not


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
async def test_a_data_part_holding_nan_or_infinity_is_invalid_argument(
    node: Node, number: float
) -> None:
    request = message_class("SendMessageRequest")()
    request.message.message_id, request.message.role = f"m-{number}", 1
    part = request.message.parts.add()
    part.data.struct_value.fields["name"].number_value = number
    answer = await raw_grpc(node, [], request.SerializeToString(), method="SendMessage")
    assert answer["grpc-status"] == "3", answer  # INVALID_ARGUMENT
    assert "NaN or infinite" in unquote(answer["grpc-message"])
    assert_no_traceback(node)


# What a client puts in a method


def http_port(node: Node) -> int:
    return int(node.url.rpartition(":")[2])


def request_head(method: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", b"/a2a"),
    ]


async def test_a_method_is_a_token_within_the_header_cap_and_never_a_metric_label(
    node: Node,
) -> None:
    port = http_port(node)
    huge = await raw_h2(node, port, request_head(b"M" * 30_000), None, None)
    assert huge[":status"] == "431", huge  # the cap counts every pseudo-header
    for bad in (b"GE T", b"G\xe9T", b"GET\x7f"):  # no token: malformed (RFC 9113 §8.1.1)
        malformed = await raw_h2(node, port, request_head(bad), None, None)
        assert malformed.get("reset") == "1", (bad, malformed)  # PROTOCOL_ERROR
    long = b"L" * 2000
    for index in range(20):
        odd = await raw_h2(node, port, request_head(long + str(index).encode()), None, None)
        assert odd[":status"] == "401", odd
    purge = raw_http1(node, b"PURGE /a2a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", None)
    assert purge.startswith(b"HTTP/1.1 401"), purge[:200]  # httptools takes it
    with node.client("ops-1") as ops:
        metrics = ops.get(f"{node.url}/metrics").text
    methods = set(re.findall(r'agent_node_http_requests_total\{[^}]*method="([^"]*)"', metrics))
    assert "other" in methods and methods <= {*HTTP_METHODS, "other"}, methods
    assert len(metrics) < 200_000
    logged = node.log()
    assert "L" * 17 not in logged and "M" * 17 not in logged
    assert re.search(r"no credentials \(L{16}… /a2a\)", logged)
    assert_no_traceback(node)
