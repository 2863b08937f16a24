"""Bearer JWTs against what a hostile token or issuer does: claims of the wrong
type refused for what they are, and an issuer's server on loopback that drips
its JWK Set, sends one too large, or is slow while the node holds a set."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent_node.security.jwks import MAX_DOCUMENT_BYTES
from agent_node.security.jwt_auth import InvalidToken, JwtVerifier

ISSUER, AUDIENCE = "https://issuer.test", "agent-node:b"
KEY = ec.generate_private_key(ec.SECP256R1())
JWKS = {
    "keys": [{**jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "kid": "k1"}]
}


def token(**claims: Any) -> str:
    now = time.time()
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
    body.update(claims)
    return jwt.encode(body, KEY, algorithm="ES256", headers={"kid": "k1"})


def verifier(**options: Any) -> JwtVerifier:
    return JwtVerifier(issuer=ISSUER, audience=AUDIENCE, algorithms=["ES256"], **options)


async def test_signed_claims_of_the_wrong_type_are_refused_for_what_they_are(
    tmp_path: Path,
) -> None:
    (tmp_path / "jwks.json").write_text(json.dumps(JWKS))
    check = verifier(jwks_file=tmp_path / "jwks.json")
    bad = {
        "'sub' is not a string": token(sub=123),
        "'exp' is not a date": token(exp="9999999999"),
        "'nbf' is not a date": token(nbf="soon"),
        "'iat' is not a date": token(iat=True),
    }
    for reason, forged in bad.items():
        with pytest.raises(InvalidToken) as refused:
            await check.identity_of(forged)
        assert reason in str(refused.value), (reason, str(refused.value))
    assert await check.identity_of(token(exp=10**400)) == "alice"  # a date past any clock


@dataclass
class Issuer:
    """A JWK Set server: ``mode`` says how it answers; it counts connections."""

    mode: str = "good"
    connections: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        try:
            if self.mode == "good":
                body = json.dumps(JWKS).encode()
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            elif self.mode == "drip":  # a byte just inside each read timeout
                writer.write(head + b"Content-Length: 1000\r\n\r\n")
                for _ in range(1000):
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(0.2)
            else:  # huge: megabytes of a JSON string
                writer.write(head + b'Content-Length: 100000002\r\n\r\n"')
                for _ in range(100):
                    writer.write(b"x" * 1_000_000)
                    await writer.drain()
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[Issuer, str]]:
    state = Issuer()
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield state, f"http://127.0.0.1:{port}/jwks.json"
    server.close()
    for writer in state.writers:
        writer.close()


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=1.0, trust_env=False)  # 1 s per read


async def test_an_issuer_that_drips_its_set_is_cut_at_the_deadline_and_not_asked_again_at_once(
    issuer: tuple[Issuer, str],
) -> None:
    state, url = issuer
    state.mode = "drip"
    check = verifier(jwks_url=url, jwks_deadline=0.5, jwks_min_refresh=60, http=_client)
    started = time.monotonic()
    async with asyncio.timeout(3):  # the old fetch took ~200 s, read after read
        tries = [check.identity_of(token()) for _ in range(5)]
        refusals = await asyncio.gather(*tries, return_exceptions=True)
    assert time.monotonic() - started < 2
    for refused in refusals:
        assert isinstance(refused, InvalidToken)
        assert "the issuer's keys cannot be had: no answer within 0.5 s" in str(refused)
    assert state.connections == 1  # five tokens, one fetch
    for _ in range(20):  # until jwks_min_refresh, tokens are refused without a fetch
        with pytest.raises(InvalidToken, match=r"no answer within 0\.5 s"):
            await check.identity_of(token())
    assert state.connections == 1


async def test_an_issuer_answering_too_much_is_cut_after_the_cap(
    issuer: tuple[Issuer, str],
) -> None:
    state, url = issuer
    state.mode = "huge"
    check = verifier(jwks_url=url, http=_client)
    with pytest.raises(InvalidToken, match=f"answers over {MAX_DOCUMENT_BYTES} bytes"):
        await check.identity_of(token())


async def test_while_a_set_is_held_a_slow_refresh_holds_up_no_request(
    issuer: tuple[Issuer, str],
) -> None:
    state, url = issuer
    now = [time.time()]
    check = verifier(
        jwks_url=url, jwks_ttl=300, jwks_deadline=30, http=_client, clock=lambda: now[0]
    )
    assert await check.identity_of(token()) == "alice"
    state.mode = "drip"
    now[0] += 301  # the set is stale: refreshed, from a server that drips
    assert await check.identity_of(token(sub="bob")) == "bob"
    async with asyncio.timeout(1):
        while state.connections < 2:  # the refresh is under way, dripping
            await asyncio.sleep(0.01)
        for sub in ("carol", "dave", "erin"):  # new tokens: verified with the held set
            assert await check.identity_of(token(sub=sub)) == sub
    assert state.connections == 2  # one refresh, not one per request
