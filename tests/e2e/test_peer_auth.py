"""Our delegate node calling a peer that wants credentials (issue 15, client
side): a2a-sdk 1.x serving the scenario contract behind an auth hook that
refuses (401) any A2A request without the right header, pushing back to us
without a client certificate (and @a2a-js/sdk 1.x behind the same hook).
Each scheme of ``peers[].auth``: a bearer token from a file, an API key in a
header, OAuth 2.0 client credentials from a token endpoint the test serves
(the token fetched once for every delegation). The secrets never reach our
store or our log; ``inspect``'s event says the scheme.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from e2e.foreign.js_peers import js_install, js_peer
from e2e.foreign.python_peers import python_peer
from e2e.procs import Spawn, child_env, wait_until
from e2e.test_delegation import D, Net, events_of
from e2e.test_foreign_peers import RELAY, _answer, _card_served, _said, _send, _settled
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.certs import make_certs
from support.served import served

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "tok-3f9a1c"  # what the peer wants
KEY = "key-77b2e0"
CLIENT_SECRET = "cs-5d1e88"


class TokenEndpoint:
    """An OAuth 2.0 token endpoint: client credentials for ``a``, counted."""

    def __init__(self) -> None:
        self.issued = 0
        #: Tokens to issue before the right one (revoked early, say).
        self.stale: list[str] = []

    async def token(self, request: Request) -> JSONResponse:
        expected = base64.b64encode(f"a:{CLIENT_SECRET}".encode()).decode()
        form = await request.form()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "client_credentials" or form.get("scope") != "a2a":
            return JSONResponse({"error": "invalid_request"}, 400)
        self.issued += 1
        token = self.stale.pop(0) if self.stale else TOKEN
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600})


@pytest.fixture
async def tokens() -> AsyncIterator[tuple[TokenEndpoint, str]]:
    endpoint = TokenEndpoint()
    app = Starlette(routes=[Route("/token", endpoint.token, methods=["POST"])])
    async with served(app, None) as url:
        yield endpoint, f"{url}/token"


async def start(
    tmp_path: Path, spawn: Spawn, require: str, auth: str, *, js: bool = False
) -> tuple[Net, Path]:
    """The peer ``f`` wanting ``require`` (HEADER=VALUE) — a2a-sdk 1.x pushing
    without a certificate, or with ``js`` @a2a-js/sdk 1.x pushing with one —
    and our node ``a`` calling it with ``auth`` (YAML)."""
    certs = make_certs(tmp_path / "certs", "a", "f", "alice")
    net = Net(tmp_path, certs, spawn)
    log = tmp_path / "peer.jsonl"
    launcher, extra = python_peer, ["--require", require, "--push-anonymously"]
    if js:
        js_install("1")
        launcher, extra = js_peer, ["--require", require]
    argv, env = launcher(
        "1",
        port=net.port("f"),
        certs=certs,
        name="f",
        log=log,
        push=True,
        streaming=False,
        extra=extra,
    )
    peer = spawn("f", argv, {**child_env(tmp_path / "effects", 0.0), **env})
    await wait_until(lambda: _card_served(net), "the peer to serve", timeout=120, alive=[peer])
    relay = tmp_path / "relay.yaml"
    relay.write_text(RELAY % 10.0)  # the first poll late: the push brings the news
    config = net.configure("a", {"relay": relay}, ["f"])
    config.write_text(config.read_text().replace(f"'{D}/f'}}", f"'{D}/f', auth: {auth}}}"))
    await net.start("a")
    return net, log


async def delegate(net: Net, text: str) -> dict[str, Any]:
    task = await _send(net, text)
    return await _settled(net, task["id"], {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED"})


def secrets_kept_out(net: Net, *secrets: str) -> None:
    """None of ``secrets`` in A's store file, its WAL or its log."""
    paths = [*net.root.glob("a.db*"), *net.root.glob("a.out"), *net.root.glob("a.err")]
    assert len(paths) >= 3, paths
    for path in paths:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, (secret, path)


async def test_a_bearer_token_from_a_file(tmp_path: Path, spawn: Spawn) -> None:
    (tmp_path / "f-token").write_text(TOKEN + "\n")
    net, log = await start(
        tmp_path, spawn, f"Authorization=Bearer {TOKEN}", "{bearer: {file: f-token}}"
    )
    for word in ("complete", "slow 300"):
        task = await delegate(net, word)
        assert task["status"]["state"] == "TASK_STATE_COMPLETED", _said(task)
        assert _answer(task)["text"] == f"done: {word}"
        events = await events_of(net.store("a"), task["id"])
        sent = next(e.data for e in events if e.kind == "delegation_sent")
        assert sent["auth"] == "bearer"
    via = [e.data["payload"]["via"] for e in events if e.kind == "wait_resolved"]
    assert via == ["push"]  # its push came without a certificate, on the token alone
    assert "refused" not in log.read_text()
    secrets_kept_out(net, TOKEN)


async def test_a_bearer_token_to_a_js_sdk_peer(tmp_path: Path, spawn: Spawn) -> None:
    (tmp_path / "f-token").write_text(TOKEN)
    net, log = await start(
        tmp_path, spawn, f"Authorization=Bearer {TOKEN}", "{bearer: {file: f-token}}", js=True
    )
    for word in ("complete", "slow 300"):
        task = await delegate(net, word)
        assert _answer(task)["text"] == f"done: {word}", _said(task)
    events = await events_of(net.store("a"), task["id"])
    assert next(e.data for e in events if e.kind == "delegation_sent")["auth"] == "bearer"
    assert "refused" not in log.read_text()
    secrets_kept_out(net, TOKEN)


async def test_a_wrong_token_fails_the_delegation_saying_so(tmp_path: Path, spawn: Spawn) -> None:
    (tmp_path / "f-token").write_text("not-the-token")
    net, _ = await start(
        tmp_path, spawn, f"Authorization=Bearer {TOKEN}", "{bearer: {file: f-token}}"
    )
    task = await delegate(net, "complete")
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    assert "HTTP 401" in _said(task) and "not-the-token" not in _said(task)


async def test_an_api_key_in_the_header_configured(tmp_path: Path, spawn: Spawn) -> None:
    (tmp_path / "f-key").write_text(KEY)
    net, _ = await start(
        tmp_path,
        spawn,
        f"X-Peer-Key={KEY}",
        "{api_key: {file: f-key}, api_key_header: X-Peer-Key}",
    )
    task = await delegate(net, "slow 300")
    assert _answer(task)["text"] == "done: slow 300"
    sent = next(
        e.data for e in await events_of(net.store("a"), task["id"]) if e.kind == "delegation_sent"
    )
    assert sent["auth"] == "apiKey"
    secrets_kept_out(net, KEY)


async def test_oauth2_client_credentials_fetched_once_for_every_delegation(
    tmp_path: Path, spawn: Spawn, tokens: tuple[TokenEndpoint, str]
) -> None:
    endpoint, url = tokens
    (tmp_path / "client-secret").write_text(CLIENT_SECRET)
    auth = (
        f"{{oauth2: {{token_url: '{url}', client_id: a, scopes: [a2a],"
        " client_secret: {file: client-secret}}}"
    )
    net, _ = await start(tmp_path, spawn, f"Authorization=Bearer {TOKEN}", auth)
    endpoint.stale.append("revoked-early")  # the first token: refused by the peer
    for word in ("complete", "slow 200", "complete"):
        task = await delegate(net, word)
        assert _answer(task)["text"] == f"done: {word}"
    # Refused once (401): a new token at once, then cached across delegations.
    assert endpoint.issued == 2
    secrets_kept_out(net, TOKEN, CLIENT_SECRET)
