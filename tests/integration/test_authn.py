"""Callers known by bearer JWTs and API keys (issue 15), against a test JWT
issuer of real keys whose JWK Set and OpenID Connect document are served on
loopback: every kind of bad token refused with its reason, rotation picked up
without a restart, API keys kept as hashes and compared in constant time."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.served import served

from agent_node.security import api_keys
from agent_node.security.api_keys import ApiKeys, add_key, read_keys, revoke_key
from agent_node.security.authn import Authenticator, Refused, authenticator
from agent_node.security.jwt_auth import InvalidToken, JwtVerifier
from agent_node.settings_auth import AuthSettings

ISSUER = "https://issuer.test"
AUDIENCE = "agent-node:b"


@dataclass
class Issuer:
    """A JWT issuer: its signing keys (by kid), and the ones its JWK Set shows."""

    keys: dict[str, Any] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    fetches: int = 0

    def add(self, kid: str, kind: str = "ec") -> None:
        if kind == "ec":
            self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        else:
            self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid in self.published:
            public = self.keys[kid].public_key()
            if isinstance(public, ec.EllipticCurvePublicKey):
                jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
            else:
                jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
            entries.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": entries}

    def token(self, kid: str = "k1", alg: str | None = None, **claims: Any) -> str:
        now = time.time()
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        key = self.keys[kid]
        alg = alg or ("ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256")
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[Issuer, str]]:
    """The issuer and its base URL (plain HTTP on loopback)."""
    state = Issuer()
    state.add("k1")

    async def jwks(_: Request) -> JSONResponse:
        state.fetches += 1
        return JSONResponse(state.jwks())

    async def discovery(request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"issuer": ISSUER, "jwks_uri": f"{base}/jwks.json"})

    app = Starlette(
        routes=[
            Route("/jwks.json", jwks),
            Route("/.well-known/openid-configuration", discovery),
        ]
    )
    async with served(app, None) as url:
        yield state, url


def verifier(url: str, **options: Any) -> JwtVerifier:
    settings: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["ES256", "RS256"],
        "jwks_url": f"{url}/jwks.json",
    }
    settings.update(options)
    return JwtVerifier(**settings)


async def test_a_valid_token_names_its_subject(issuer: tuple[Issuer, str]) -> None:
    state, url = issuer
    state.add("r1", "rsa")
    check = verifier(url)
    assert await check.identity_of(state.token()) == "alice"
    assert await check.identity_of(state.token("r1", sub="bob")) == "bob"
    templated = verifier(url, identity="{iss}#{sub}")
    assert await templated.identity_of(state.token()) == f"{ISSUER}#alice"


def _forge(token: str, **changes: Any) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    raw = json.dumps(claims).encode()
    return f"{head}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{signature}"


async def test_every_kind_of_bad_token_is_refused_with_its_reason(
    issuer: tuple[Issuer, str],
) -> None:
    state, url = issuer
    check = verifier(url, leeway=0)
    now = time.time()
    public_pem = (
        state.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60}, None, "none"
    )
    bad = {
        "has expired": state.token(exp=now - 10),
        "not valid yet": state.token(nbf=now + 3600),
        "not meant for this agent": state.token(aud="someone-else"),
        "issuer is not trusted": state.token(iss="https://evil.test"),
        "algorithm 'none' is not accepted": unsigned,
        # The issuer's public key used as an HMAC secret: refused by algorithm.
        "algorithm 'HS256' is not accepted": _hs256(public_pem),
        "key 'k9' is not the issuer's": _unknown_kid(state),
        "signature does not verify": _forge(state.token(), sub="mallory"),
        "lacks the 'exp' claim": state.token(exp=None),
        "not a JWT": "not-a-token",
    }
    for reason, token in bad.items():
        with pytest.raises(InvalidToken) as refused:
            await check.identity_of(token)
        assert reason in str(refused.value), (reason, str(refused.value))


def _hs256(secret: bytes) -> str:
    """A token signed HS256 with ``secret`` (PyJWT refuses PEM secrets: by hand)."""
    import hashlib
    import hmac

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": time.time() + 60}
    signing = f"{part(header)}.{part(claims)}"
    mac = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _unknown_kid(state: Issuer) -> str:
    state.keys["k9"] = ec.generate_private_key(ec.SECP256R1())  # not published
    return state.token("k9")


async def test_a_new_key_is_picked_up_and_a_key_rotated_out_refused(
    issuer: tuple[Issuer, str],
) -> None:
    state, url = issuer
    check = verifier(url, jwks_ttl=0.5, jwks_min_refresh=0.0)
    old = state.token("k1")
    assert await check.identity_of(old) == "alice"
    state.add("k2")  # rotated in: a token of it fetches the set again at once
    assert await check.identity_of(state.token("k2", sub="bob")) == "bob"
    state.published.remove("k1")  # rotated out
    time.sleep(0.6)  # the set's time to live
    # A stale set is refreshed in the background, served meanwhile; a token
    # of a key it lacks waits for the fetch.
    with pytest.raises(InvalidToken, match="not the issuer's"):
        await check.identity_of(_unknown_kid(state))
    with pytest.raises(InvalidToken, match="not the issuer's"):
        await check.identity_of(old)  # remembered as verified, but the set changed
    fetches = state.fetches
    for _ in range(20):  # a valid token is verified once, not per request
        await check.identity_of(state.token("k2", sub="bob", jti="same"))
    assert state.fetches <= fetches + 1


async def test_keys_found_by_openid_connect_discovery(issuer: tuple[Issuer, str]) -> None:
    state, url = issuer
    settings = AuthSettings.model_validate(
        {"jwt": {"issuer": ISSUER, "audience": AUDIENCE, "oidc": url, "algorithms": ["ES256"]}}
    )
    found = authenticator(settings, Path, "b")
    assert found is not None and found.jwt is not None
    headers = {"authorization": f"Bearer {state.token()}"}
    assert await found.identify(headers.get) == ("alice", "bearer")


#: What an issuer's URL may answer in place of its document, by what it is.
NOT_DOCUMENTS = {"a list": b"[]", "nested deep": b"[" * 100_000, "keys a number": b'{"keys": 5}'}


@pytest.mark.parametrize("oidc", [False, True], ids=["jwks", "discovery"])
@pytest.mark.parametrize("body", NOT_DOCUMENTS.values(), ids=NOT_DOCUMENTS.keys())
async def test_an_issuer_answering_no_document_has_tokens_refused_not_a_crash(
    body: bytes, oidc: bool
) -> None:
    async def answer(_: Request) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/doc", answer)])
    async with served(app, None) as url:
        check = verifier(url, jwks_url=f"{url}/doc", oidc=oidc)
        with pytest.raises(InvalidToken, match="the issuer's keys cannot be had"):
            await check.identity_of(_any_token())


def _any_token() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": time.time() + 60}
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": "k1"})


def test_settings_refuse_symmetric_algorithms_and_two_key_sources() -> None:
    base = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "https://i.test/jwks"}
    for wrong in (
        {**base, "algorithms": ["HS256"]},
        {**base, "algorithms": ["none"]},
        {**base, "jwks_file": "keys.json"},
        {**base, "jwks_url": "http://i.test/jwks"},  # plain HTTP off loopback
    ):
        with pytest.raises(ValueError):
            AuthSettings.model_validate({"jwt": wrong})
    with pytest.raises(ValueError, match=r"auth\.mtls: false needs another scheme"):
        AuthSettings.model_validate({"mtls": False})  # nobody could be named
    assert not AuthSettings.model_validate({"mtls": False, "api_keys": {}}).mtls


# -- API keys -------------------------------------------------------------------------------


def test_api_keys_are_kept_as_hashes_and_name_their_identity(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    key = add_key(path, "ci", "spiffe://example.org/agent/ci")
    assert key.startswith("ank_") and key not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    keys = ApiKeys(path)
    assert keys.identity_of(key) == "spiffe://example.org/agent/ci"
    assert keys.identity_of(key + "x") is None and keys.identity_of("") is None
    with pytest.raises(Exception, match="exists already"):
        add_key(path, "ci")
    assert [k.name for k in read_keys(path)] == ["ci"]


def test_a_revoked_key_is_refused_by_a_running_node(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(api_keys, "_RECHECK", 0.0)
    path = tmp_path / "api-keys.yaml"
    first, second = add_key(path, "one"), add_key(path, "two")
    keys = ApiKeys(path)
    assert keys.identity_of(first) == "one"
    assert revoke_key(path, "one") and not revoke_key(path, "one")
    assert keys.identity_of(first) is None and keys.identity_of(second) == "two"
    third = add_key(path, "three")  # added while running: no restart
    assert keys.identity_of(third) == "three"


def test_every_stored_key_is_compared_whatever_matches(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "api-keys.yaml"
    made = [add_key(path, f"k{i}") for i in range(5)]
    keys = ApiKeys(path)
    compared: list[int] = []
    real = api_keys.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(1)
        return real(a, b)

    monkeypatch.setattr(api_keys.hmac, "compare_digest", counting)
    for presented in (made[0], made[4], "ank_wrong"):
        compared.clear()
        keys.identity_of(presented)
        assert len(compared) == 5  # no early exit: the time does not tell which


async def test_the_authenticator_names_the_scheme_and_refuses_bad_credentials(
    tmp_path: Path, issuer: tuple[Issuer, str]
) -> None:
    state, url = issuer
    path = tmp_path / "api-keys.yaml"
    key = add_key(path, "ci")
    auth = Authenticator(api_keys=ApiKeys(path), jwt=verifier(url), realm="b")
    assert await auth.identify({"x-api-key": key}.get) == ("ci", "apiKey")
    bearer = {"authorization": f"Bearer {state.token()}"}
    assert await auth.identify(bearer.get) == ("alice", "bearer")
    assert await auth.identify({}.get) is None
    for wrong in ({"x-api-key": "ank_nope"}, {"authorization": "Bearer nope"}):
        with pytest.raises(Refused):
            await auth.identify(wrong.get)
    with pytest.raises(Refused, match="no bearer token"):
        await auth.identify({"authorization": "Basic YTpi"}.get)
    assert auth.challenge() == 'Bearer realm="b", ApiKey realm="b", header="x-api-key"'
