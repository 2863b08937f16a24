"""Bearer JWTs: a caller presents a token an issuer signed; its claims name the caller.

A token is accepted when, all of them:

* its header's ``alg`` is one of ``auth.jwt.algorithms``, which may name
  asymmetric algorithms only (RS*, PS*, ES*, EdDSA): ``none`` and HMAC are
  refused whatever the token says, so a public key can never be used as an
  HMAC secret;
* its signature verifies with the issuer's key of the header's ``kid`` (a
  JWK Set without ``kid``s: its only key), of the same family as ``alg``;
* ``iss`` is ``auth.jwt.issuer``, ``aud`` holds ``auth.jwt.audience``, ``exp``
  is present and not past, ``nbf`` and ``iat`` not in the future (each with
  ``leeway`` seconds of clock skew).

The identity is ``auth.jwt.identity`` with the token's claims filled in
(``{sub}`` by default; ``{iss}#{sub}`` when several issuers' subjects could
meet), so ``policy:`` names JWT callers as it names certificates.

Keys come from a JWK Set (:mod:`agent_node.security.jwks`): a file, a URL,
or the ``jwks_uri`` of the issuer's OpenID Connect discovery document,
kept for ``jwks_ttl`` seconds and fetched again at once for a ``kid`` the
set lacks, so a new key is picked up without a restart and a key rotated
out is refused once the set is fetched again; a slow or hostile issuer
never holds up requests while a set is held. Verified tokens are
remembered (at most 4096, each until its ``exp``, forgotten whenever the
set changes): the signature is checked once per token, not per request.

RFC 7519's dates (``exp``, ``nbf``, ``iat``) must be numbers and ``sub`` a
string: a signed token that breaks that is refused saying so.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt

from agent_node.security.jwks import KeySet
from agent_node.security.refused import Refused
from agent_node.settings_auth import ASYMMETRIC

__all__ = ["InvalidToken", "JwtVerifier"]

_REMEMBERED = 4096
#: The key type (JWK ``kty``) each family of ``auth.jwt.algorithms`` (by the
#: first two letters) verifies with.
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class InvalidToken(Refused):
    """A token that names nobody; the message says why, for the caller."""


class JwtVerifier:
    """Verifies bearer tokens of one issuer (see the module doc).

    ``keys``: where the JWK Set comes from — a file, or an ``https`` URL
    fetched with ``http`` (``oidc``: the URL is the discovery document's)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        identity: str = "{sub}",
        leeway: float = 60.0,
        jwks_file: Path | None = None,
        jwks_url: str | None = None,
        oidc: bool = False,
        jwks_ttl: float = 300.0,
        jwks_min_refresh: float = 5.0,
        jwks_deadline: float = 10.0,
        http: Callable[[], httpx.AsyncClient] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        wrong = sorted(set(algorithms) - ASYMMETRIC)
        if wrong or not algorithms:
            raise ValueError(f"JWT algorithms must be asymmetric ones; not {wrong or algorithms}")
        if (jwks_file is None) == (jwks_url is None):
            raise ValueError("give exactly one of a JWK Set file or URL")
        self.issuer = issuer
        self.audience = audience
        self.algorithms = list(algorithms)
        self.identity = identity
        self.leeway = leeway
        self.keys = KeySet(
            file=jwks_file,
            url=jwks_url,
            oidc=oidc,
            ttl=jwks_ttl,
            min_refresh=jwks_min_refresh,
            deadline=jwks_deadline,
            http=http or (lambda: httpx.AsyncClient(timeout=10, trust_env=False)),
            clock=clock,
        )
        self._clock = clock
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.keys.changed = self._verified.clear

    async def identity_of(self, token: str) -> str:
        """The identity ``token`` names; :class:`InvalidToken` for any token
        that does not hold (its message says why)."""
        now = self._clock()
        known = self._verified.get(token)
        if known is not None and known[1] > now - self.leeway:
            self._verified.move_to_end(token)
            return known[0]
        header = _header(token)
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken(f"the bearer token's algorithm {str(alg)[:20]!r} is not accepted")
        key = await self._key(header.get("kid"))
        if _KEY_TYPES[alg[:2]] != key.key_type:  # PyJWT would raise TypeError
            kid = header.get("kid")
            which = f"the key of kid {kid[:40]!r}" if isinstance(kid, str) else "the issuer's key"
            raise InvalidToken(f"{which} is {key.key_type}, the token says {alg}")
        claims = _signed_claims(token, key, alg)
        _check_types(claims)
        try:
            # The signature held: the claims are checked without it again.
            jwt.decode(
                token,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                # PyJWT checks nothing it is not told to without the signature.
                options={
                    "verify_signature": False,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    "verify_sub": True,
                    "require": _REQUIRED,
                },
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the bearer token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the bearer token is not meant for this agent (aud)") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the bearer token's issuer is not trusted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the bearer token lacks the {exc.claim!r} claim") from None
        except (jwt.InvalidTokenError, TypeError, ValueError):
            raise InvalidToken("the bearer token's claims do not hold") from None
        identity = self._identity(claims)
        self._remember(token, identity, _seconds(claims["exp"]))
        return identity

    def _identity(self, claims: Mapping[str, Any]) -> str:
        strings = {k: v for k, v in claims.items() if isinstance(v, str)}
        try:
            identity = self.identity.format_map(strings)
        except (KeyError, ValueError, IndexError):
            raise InvalidToken(
                f"the bearer token lacks a claim the identity needs ({self.identity})"
            ) from None
        if not identity:
            raise InvalidToken("the bearer token names nobody")
        return identity

    def _remember(self, token: str, identity: str, expires: float) -> None:
        self._verified[token] = (identity, expires)
        if len(self._verified) > _REMEMBERED:
            self._verified.popitem(last=False)

    async def _key(self, kid: Any) -> jwt.PyJWK:
        try:
            key = await self.keys.find(kid if isinstance(kid, str) else None)
        except ValueError as exc:
            raise InvalidToken(f"the issuer's keys cannot be had: {exc}") from None
        if key is None:
            raise InvalidToken(f"the bearer token's key {str(kid)[:40]!r} is not the issuer's")
        return key


_REQUIRED = ["exp", "iss", "aud"]
#: RFC 7519's dates: NumericDate, a JSON number (PyJWT takes "9999999999").
_DATES = ("exp", "nbf", "iat")


def _signed_claims(token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
    """The token's claims, once its signature verifies with ``key``; none checked."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except (jwt.InvalidTokenError, jwt.PyJWKError, TypeError, ValueError, RecursionError):
        # PyJWT's own errors, and what a key or a token it cannot use
        # raises (a key the wrong curve for alg; a payload nested past
        # what json reads): whatever the token holds, it is refused.
        raise InvalidToken("the bearer token's signature does not verify") from None
    return claims


def _check_types(claims: Mapping[str, Any]) -> None:
    """Refuse signed claims of the wrong type, each for what it is: dates that
    are not numbers, a ``sub`` that is not a string."""
    for name in _DATES:
        value = claims.get(name, 0)
        # isfinite of an int past a float's range raises: such ints are fine.
        finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
        if isinstance(value, bool) or not finite:
            raise InvalidToken(f"the bearer token's {name!r} is not a date (a number of seconds)")
    if "sub" in claims and not isinstance(claims["sub"], str):
        raise InvalidToken("the bearer token's 'sub' is not a string")


def _header(token: str) -> dict[str, Any]:
    """The token's header, read to pick the key (PyJWT's own reader costs
    several times this; the signature check that follows reads it again)."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: "[[[[…"
        raise InvalidToken("the bearer token is not a JWT") from None
    if not isinstance(header, dict) or token.count(".") != 2:
        raise InvalidToken("the bearer token is not a JWT")
    return header


def _seconds(exp: Any) -> float:
    """``exp`` (PyJWT checked it is a number) as seconds; past what a float
    holds, forever."""
    try:
        return float(exp)
    except OverflowError:
        return float("inf")
