"""What a caller sends cannot write a line of its own into a node's log: a
real ``agent-node serve`` over mutual TLS, refused requests whose path
holds a line feed (found by a hostile walk: an unauthenticated request's
path forged a WARNING line that looked as genuine as the node's own), a
carriage return, a terminal's escape sequence or a bidirectional control
(U+202E shows the rest of the line reversed: "Trojan Source")."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from support.certs import make_certs
from support.nodes import serving_config, serving_mtls
from support.tls import caller_context

pytestmark = pytest.mark.slow

FORGED = "2026-12-07T19:45:00.000+00:00 WARNING agent_node.a2a.server.tasks: FORGED"
#: U+202E (RIGHT-TO-LEFT OVERRIDE) and U+2066 (LEFT-TO-RIGHT ISOLATE) as UTF-8.
BIDI = ("\u202e".encode(), "\u2066".encode())
#: What every line of the text log starts with: its time, level and logger.
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 [A-Z]+ [\w.]+: ")


def _hostile_requests(url: str, certs: Path) -> None:
    with httpx.Client(verify=caller_context(certs, None), timeout=10) as http:
        forged = http.get(f"{url}/x%0A{FORGED.replace(' ', '%20')}")
        assert forged.status_code == 401
        escaped = http.get(f"{url}/y%0D%1B]0;owned%07%1B[2J%C2%9B")
        assert escaped.status_code == 401
        reversed_ = http.get(f"{url}/z%E2%80%AEgpj.exe%E2%81%A6")
        assert reversed_.status_code == 401
    # What uvicorn itself logs (a request it cannot parse) takes the same form.
    port = int(url.rsplit(":", 1)[1])
    tls = caller_context(certs, None)
    tls.set_alpn_protocols(["http/1.1"])
    with tls.wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1"
    ) as raw:
        raw.sendall(b"GARBAGE\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400 ")


def test_a_path_with_a_line_feed_stays_on_its_line(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", "greeter")
    node = tmp_path / "node"
    node.mkdir()
    with serving_mtls(node, certs) as url:
        _hostile_requests(url, certs)
    logged = (node / "node.err").read_bytes()
    for byte in (b"\x1b", b"\r", b"\x07", "\u009b".encode(), *BIDI):
        assert byte not in logged, logged
    said, *lines = logged.decode().splitlines()
    assert said.startswith("skills: "), said  # serve's own words, then its log
    assert lines and all(LINE.match(line) for line in lines), lines
    [forged] = [line for line in lines if "FORGED" in line]
    assert "/x\\n2026-12-07T19:45:00" in forged
    [escaped] = [line for line in lines if "/y" in line]
    assert "/y\\r\\x1b]0;owned\\x07\\x1b[2J\\x9b" in escaped
    [bidi] = [line for line in lines if "/z" in line]
    assert bidi.endswith("(GET /z\\u202egpj.exe\\u2066)"), bidi
    assert any(
        line.endswith(" WARNING uvicorn.error: Invalid HTTP request received.") for line in lines
    )


def test_json_logs_keep_each_record_one_object(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", "greeter")
    node = tmp_path / "node"
    node.mkdir()
    config = node / "agent-node.yaml"
    with serving_mtls(node, certs):
        pass  # writes the greeter's configuration
    flags = ["--cert-dir", str(certs), "--identity", "greeter", "--log-format", "json"]
    with serving_config(node, config, flags) as url:
        _hostile_requests(url, certs)
    logged = (node / "node.err").read_bytes()
    for byte in (b"\x1b", b"\r", b"\x07", "\u009b".encode(), *BIDI):
        assert byte not in logged, logged
    assert b"/z\\u202egpj.exe\\u2066" in logged  # JSON's escapes, in the line itself
    records = [json.loads(line) for line in logged.decode().splitlines()]
    [forged] = [r for r in records if "FORGED" in r["message"]]
    assert f"/x\n{FORGED}" in forged["message"]
    [escaped] = [r for r in records if "/y" in r["message"]]
    assert "/y\r\x1b]0;owned\x07\x1b[2J\u009b" in escaped["message"]
    [bidi] = [r for r in records if "/z" in r["message"]]
    assert "/z\u202egpj.exe\u2066" in bidi["message"]  # the same path to a JSON reader
    [uvicorn] = [r for r in records if r["logger"] == "uvicorn.error"]
    assert uvicorn["message"] == "Invalid HTTP request received."


def test_a_jwt_subject_with_a_line_feed_stays_on_its_line(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", "greeter")
    node = tmp_path / "node"
    node.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    (node / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    auth = (
        'auth: {jwt: {issuer: "https://issuer.test", audience: greeter,'
        " jwks_file: jwks.json, algorithms: [ES256]}}\n"
        "policy: {skills: {book: [alice]}}\n"
    )
    now = time.time()
    claims = {"iss": "https://issuer.test", "aud": "greeter", "iat": now, "exp": now + 300}
    sub = f"mallory\n{FORGED}\x1b]0;owned\x07"
    token = jwt.encode({**claims, "sub": sub}, key, algorithm="ES256", headers={"kid": "k1"})
    message = {
        "messageId": "m1",
        "role": "ROLE_USER",
        "parts": [{"text": "Rome"}],
        "metadata": {"skill": "book"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    with serving_mtls(node, certs, auth) as url:
        with httpx.Client(verify=caller_context(certs, None), timeout=10) as http:
            headers = {"A2A-Version": "1.0", "Authorization": f"Bearer {token}"}
            refused = http.post(f"{url}/a2a", json=body, headers=headers)
    assert refused.status_code in (200, 403), refused.text
    logged = (node / "node.err").read_text()
    assert "\x1b" not in logged and "\x07" not in logged, logged
    _, *lines = logged.splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    [named] = [line for line in lines if "FORGED" in line]
    assert "mallory\\n2026-12-07T19:45:00" in named and "\\x1b]0;owned\\x07" in named
