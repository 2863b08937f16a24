"""What our node presents to a peer besides its certificate (``peers[].auth``),
against a real OAuth 2.0 token endpoint on loopback: tokens cached, renewed
before they expire and after a refusal, secrets read when used and never
in an error; API keys where the peer's card says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.served import served

from agent_node.a2a.peers.credentials import PeerCredentials
from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.settings_auth import PeerAuth

SECRET = "cs-very-secret"


class Endpoint:
    def __init__(self) -> None:
        self.issued = 0
        self.status = 200

    async def token(self, request: Request) -> JSONResponse:
        if self.status != 200:
            return JSONResponse({"error": "invalid_client", "secret": SECRET}, self.status)
        self.issued += 1
        return JSONResponse({"access_token": f"t-{self.issued}", "expires_in": 120})


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    state = Endpoint()
    app = Starlette(routes=[Route("/token", state.token, methods=["POST"])])
    async with served(app, None) as url:
        yield state, f"{url}/token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def credentials(auth: dict[str, Any], clock: Clock | None = None) -> PeerCredentials:
    def http() -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=5)

    return PeerCredentials("judge", PeerAuth.model_validate(auth), http, clock or Clock())


async def test_an_oauth2_token_is_cached_renewed_before_expiry_and_after_a_refusal(
    tmp_path: Path, endpoint: tuple[Endpoint, str]
) -> None:
    state, url = endpoint
    (tmp_path / "secret").write_text(SECRET)
    clock = Clock()
    auth = {
        "oauth2": {
            "token_url": url,
            "client_id": "a",
            "client_secret": {"file": str(tmp_path / "secret")},
        }
    }
    creds = credentials(auth, clock)
    first = await creds.present()
    assert first.headers == {"Authorization": "Bearer t-1"}
    assert (await creds.present()).headers == first.headers and state.issued == 1
    clock.now += 59  # 120 s of life, renewed a minute early
    assert (await creds.present()).headers == first.headers
    clock.now += 2
    assert (await creds.present()).headers == {"Authorization": "Bearer t-2"}
    assert creds.renew()  # the peer refused it: the next call fetches anew
    assert (await creds.present()).headers == {"Authorization": "Bearer t-3"}
    assert creds.scheme == "oauth2"


async def test_a_token_endpoint_refusal_is_final_and_says_no_secret(
    tmp_path: Path, endpoint: tuple[Endpoint, str]
) -> None:
    state, url = endpoint
    (tmp_path / "secret").write_text(SECRET)
    state.status = 401
    auth = {
        "oauth2": {
            "token_url": url,
            "client_id": "a",
            "client_secret": {"file": str(tmp_path / "secret")},
        }
    }
    with pytest.raises(PeerError) as refused:
        await credentials(auth).present()
    assert not refused.value.transient and "HTTP 401: invalid_client" in str(refused.value)
    assert SECRET not in str(refused.value)
    state.status = 503
    with pytest.raises(PeerError) as busy:
        await credentials(auth).present()
    assert busy.value.transient


async def test_secrets_are_read_when_used(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("JUDGE_TOKEN", "one")
    creds = credentials({"bearer": {"env": "JUDGE_TOKEN"}})
    assert (await creds.present()).headers == {"Authorization": "Bearer one"}
    monkeypatch.setenv("JUDGE_TOKEN", "two")  # rotated: no restart
    assert (await creds.present()).headers == {"Authorization": "Bearer two"}
    assert not creds.renew()  # a static token: trying again would change nothing
    monkeypatch.delenv("JUDGE_TOKEN")
    with pytest.raises(PeerError, match="the environment variable JUDGE_TOKEN"):
        await creds.present()
    missing = credentials({"bearer": {"file": str(tmp_path / "nope")}})
    with pytest.raises(PeerError, match="cannot read its secret file"):
        await missing.present()


async def test_an_api_key_goes_where_the_card_says(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k-1")
    creds = credentials({"api_key": {"file": str(tmp_path / "key")}})
    assert (await creds.present()).headers == {"X-API-Key": "k-1"}  # no card: the default

    def card(location: str, name: str) -> dict[str, Any]:
        scheme = {"apiKeySecurityScheme": {"location": location, "name": name}}
        return {"securitySchemes": {"key": scheme}}

    assert (await creds.present(card("header", "X-Judge"))).headers == {"X-Judge": "k-1"}
    in_query = await creds.present(card("query", "api_key"))
    assert (in_query.headers, in_query.query) == ({}, {"api_key": "k-1"})
    assert (await creds.present(card("cookie", "session"))).headers == {"Cookie": "session=k-1"}


def test_one_scheme_per_peer_and_secrets_never_inline() -> None:
    for wrong in (
        {},
        {"bearer": {"env": "A"}, "api_key": {"env": "B"}},
        {"bearer": {"value": "inline"}},
        {"bearer": {"env": "A", "file": "f"}},
        {
            "oauth2": {
                "token_url": "http://idp.example/t",
                "client_id": "a",
                "client_secret": {"env": "S"},
            }
        },  # plain HTTP off loopback
    ):
        with pytest.raises(ValueError):
            PeerAuth.model_validate(wrong)
